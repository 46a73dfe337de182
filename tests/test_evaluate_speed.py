"""shrink.ner.evaluate: speed() times with torch.utils.benchmark on inputs collated beforehand, and
structure() counts sparsity from int8 weights too."""

import statistics
import time
from typing import ClassVar

import numpy as np
import pytest
import torch
import torch.utils.benchmark

from shrink.core.model_size import zero_weights
from shrink.methods.quantize import quantize_int8
from shrink.ner import evaluate
from shrink.ner.evaluate import speed, structure

LENGTHS = [5, 9, 14, 7, 22, 11, 3, 17, 8, 12]  # word pieces per sentence, CLS and SEP included


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from shrink.core.encoders import minilm_path

    return AutoTokenizer.from_pretrained(minilm_path())


@pytest.fixture(scope="module")
def dataset():
    from datasets import Dataset

    g = torch.Generator().manual_seed(0)
    rows = [torch.randint(1, 100, (n,), generator=g).tolist() for n in LENGTHS]  # tiny_bert's vocab is 100
    return Dataset.from_dict({"input_ids": rows, "attention_mask": [[1] * len(r) for r in rows],
                              "labels": [[0] * len(r) for r in rows]})


def test_reports_median_p90_and_throughput(tiny_bert, dataset, tokenizer):
    s = speed(tiny_bert(), dataset, tokenizer, latency_sentences=4, batch_size=4, throughput_batches=2, threads=1,
              latency_min_run_time=0.005, throughput_min_run_time=0.02)
    assert 0 < s["latency_ms_batch1_median"] <= s["latency_ms_batch1_p90"]
    assert s["latency_sentences"] == 4 and s["throughput_batch"] == 4
    assert s["throughput_sentences_per_s"] > 0
    # 2 batches of 4 sentences: 8 sentences, the word pieces of the first 8
    tokens_per_sentence = s["throughput_tokens_per_s"] / s["throughput_sentences_per_s"]
    assert tokens_per_sentence == pytest.approx(sum(LENGTHS[:8]) / 8)
    assert s["timer"] == "torch.utils.benchmark" and s["threads"] == 1
    assert {"precision", "device"} <= set(s)


class FakeTimer:
    """Stands in for torch.utils.benchmark.Timer: runs the statement once and reports a chosen time, a
    sentence's length in ms at batch 1 and 0.5 s for the throughput pass."""

    made: ClassVar[list] = []

    def __init__(self, stmt, globals, num_threads, **kwargs):
        self.stmt, self.globals, self.num_threads = stmt, globals, num_threads
        FakeTimer.made.append(self)

    def blocked_autorange(self, min_run_time=0.2, callback=None):
        self.min_run_time = min_run_time
        eval(self.stmt, dict(self.globals))
        args = self.globals["args"]
        single = len(args) == 1 and args[0]["input_ids"].shape[0] == 1
        seconds = int(args[0]["attention_mask"].sum()) / 1000 if single else 0.5
        return torch.utils.benchmark.Measurement(number_per_run=1, raw_times=[seconds],
                                                 task_spec=torch.utils.benchmark.TaskSpec(self.stmt, "pass"))


def test_median_p90_and_throughput_are_computed_from_the_timer(monkeypatch, tiny_bert, dataset, tokenizer):
    FakeTimer.made = []
    monkeypatch.setattr(torch.utils.benchmark, "Timer", FakeTimer)
    s = speed(tiny_bert(), dataset, tokenizer, latency_sentences=10, batch_size=3, throughput_batches=2)
    # one Timer per sentence, then one for the throughput pass over 2 batches of 3
    assert len(FakeTimer.made) == 11
    assert s["latency_ms_batch1_median"] == pytest.approx(statistics.median(LENGTHS))  # 10.0
    assert s["latency_ms_batch1_p90"] == pytest.approx(np.percentile(LENGTHS, 90))  # 17.5
    assert s["throughput_sentences_per_s"] == pytest.approx(6 / 0.5)
    assert s["throughput_tokens_per_s"] == pytest.approx(sum(LENGTHS[:6]) / 0.5)
    # by default the thread count is torch's current one, fixed in every Timer and reported
    assert {t.num_threads for t in FakeTimer.made} == {torch.get_num_threads()} and s["threads"] == torch.get_num_threads()


def test_autocast_wraps_the_timed_model_call(monkeypatch, tiny_bert, dataset, tokenizer):
    monkeypatch.setattr(torch.utils.benchmark, "Timer", FakeTimer)
    model, seen = tiny_bert(), []
    model.register_forward_pre_hook(lambda *_: seen.append(torch.get_autocast_dtype("cpu")
                                                            if torch.is_autocast_enabled("cpu") else None))
    assert speed(model, dataset, tokenizer, precision="bf16", latency_sentences=2, throughput_batches=1)["precision"] == "bf16"
    assert seen == [torch.bfloat16] * 3
    seen.clear()
    speed(model, dataset, tokenizer, precision="fp32", latency_sentences=2, throughput_batches=1)
    assert seen == [None] * 3


def test_timer_runs_the_model_at_the_fixed_thread_count(monkeypatch, tiny_bert, dataset, tokenizer):
    made: ClassVar[list] = []

    class SpyTimer(torch.utils.benchmark.Timer):
        def __init__(self, *args, **kwargs):
            made.append(kwargs.get("num_threads"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(torch.utils.benchmark, "Timer", SpyTimer)
    model = tiny_bert()
    seen, batch1 = [], []

    def hook(mod, args, kwargs):
        seen.append(torch.get_num_threads())
        batch1.append(kwargs["input_ids"].shape[0] == 1)

    model.register_forward_pre_hook(hook, with_kwargs=True)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        s = speed(model, dataset, tokenizer, latency_sentences=3, batch_size=4, throughput_batches=1, threads=1,
                  latency_min_run_time=0.002, throughput_min_run_time=0.005)
        assert torch.get_num_threads() == 2  # restored afterwards
    finally:
        torch.set_num_threads(before)
    assert made == [1] * 4 and s["threads"] == 1
    assert seen and set(seen) == {1}  # every model call, timed or warm-up, ran with 1 thread
    # each sentence ran at least twice: the Timer's untimed warm-up, then the timed repeats
    assert sum(batch1) >= 2 * 3 and batch1.count(False) >= 2


def test_collation_is_outside_the_timed_region(monkeypatch, tiny_bert, dataset, tokenizer):
    """A collator that sleeps 0.3 s: in the timed region it would put every latency above 300 ms and cap
    throughput at 4 sentences / 0.3 s; the tiny model itself takes ~1 ms per call."""
    nap, calls, timing = 0.3, [], []

    class SlowPadder(evaluate.Padder):
        def __call__(self, *args, **kwargs):
            calls.append(bool(timing))
            time.sleep(nap)
            return super().__call__(*args, **kwargs)

    class SpyTimer(torch.utils.benchmark.Timer):
        def blocked_autorange(self, *args, **kwargs):
            timing.append(True)
            return super().blocked_autorange(*args, **kwargs)

    monkeypatch.setattr(evaluate, "Padder", SlowPadder)
    monkeypatch.setattr(torch.utils.benchmark, "Timer", SpyTimer)
    s = speed(tiny_bert(), dataset, tokenizer, latency_sentences=4, batch_size=4, throughput_batches=2, threads=1,
              latency_min_run_time=0.005, throughput_min_run_time=0.02)
    assert len(calls) == 4 + 2 and not any(calls)  # every input collated before the first Timer ran
    assert s["latency_ms_batch1_median"] < 1000 * nap / 2
    assert s["throughput_sentences_per_s"] > 4 / nap


def hand_sparsity(model):
    """Zeros over all weights of the encoder's six linears per layer, counted directly."""
    zeros = total = 0
    for layer in model.bert.encoder.layer:
        for lin in (layer.attention.self.query, layer.attention.self.key, layer.attention.self.value,
                    layer.attention.output.dense, layer.intermediate.dense, layer.output.dense):
            zeros += int((lin.weight == 0).sum())
            total += lin.weight.numel()
    return zeros / total


def half_pruned(model):
    """Zero the smaller half (by magnitude) of every encoder linear's weights, and some classifier weights."""
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, torch.nn.Linear) and ".encoder." in f".{name}.":
                w = mod.weight
                w[w.abs() <= w.abs().flatten().kthvalue(w.numel() // 2).values] = 0
        model.classifier.weight[:, :3] = 0  # outside the encoder: must not count
    return model


def test_structure_counts_float_linears_like_a_hand_count(tiny_bert):
    model = tiny_bert()
    assert structure(model)["sparsity"] == 0.0
    with torch.no_grad():
        model.bert.encoder.layer[1].intermediate.dense.weight[:5] = 0
    st = structure(model)
    assert st["sparsity"] == pytest.approx(hand_sparsity(model)) and 0 < st["sparsity"] < 0.1
    pruned = half_pruned(tiny_bert())
    st = structure(pruned)
    assert st["sparsity"] == pytest.approx(hand_sparsity(pruned)) == pytest.approx(0.5)
    assert st["bits"] == 32 and st["heads_kept"] == st["heads_total"] == 16


def test_structure_of_an_int8_model_reads_the_packed_weights(tiny_bert):
    model = quantize_int8(half_pruned(tiny_bert()))
    assert not any(isinstance(m, torch.nn.Linear) for m in model.bert.encoder.modules())
    st = structure(model)
    # int8 rounding can only add zeros (weights below half a quantization step); magnitude pruning left
    # none that small here, so the 50% comes through nearly exactly
    assert 0.5 <= st["sparsity"] < 0.51
    assert st["bits"] == 8 and st["heads_kept"] == 16
    int8 = quantize_int8(tiny_bert())
    assert structure(int8)["sparsity"] < 0.03 and structure(int8)["bits"] == 8


def test_zero_weights_of_quantized_tensors_use_their_zero_points():
    w = torch.tensor([[0.0, 1.0, -1.0, 0.0], [0.5, 0.0, 0.25, 2.0]])
    assert zero_weights(w) == 3
    per_tensor = torch.quantize_per_tensor(w, scale=0.05, zero_point=7, dtype=torch.quint8)
    assert zero_weights(per_tensor) == 3  # the stored value 7 means 0.0
    per_channel = torch.quantize_per_channel(w, torch.tensor([0.01, 0.02]), torch.tensor([3, -2]), 0, torch.qint8)
    assert zero_weights(per_channel) == 3
    assert zero_weights(torch.quantize_per_tensor(w + 3, scale=0.05, zero_point=0, dtype=torch.quint8)) == 0
