"""Evaluate a model folder: entity F1 on validation and test, size, CPU speed and memory."""

import json
import resource
import statistics
from pathlib import Path

import torch

from ..core.atomic import write_json
from ..core.batching import Padder
from ..core.model_size import (
    count_parameters,
    folder_bytes,
    linear_weights,
    zero_weights,
)
from ..core.precision import autocast, machine, resolve
from ..core.provenance import provenance
from .metrics import evaluate_split


def load_tokenized(tokenized_dir):
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    tokenized_dir = Path(tokenized_dir)
    dd = load_from_disk(str(tokenized_dir / "shards"))
    tok = AutoTokenizer.from_pretrained(str(tokenized_dir / "tokenizer"))
    labels = json.loads((tokenized_dir / "labels.json").read_text())
    return dd, tok, labels


def trained_with(model_dir):
    """The precision the model's newest training step ran in (shrink.ner.train writes it), None if untrained here."""
    from .train import TRAINING_RECORD

    record = Path(model_dir) / TRAINING_RECORD
    return json.loads(record.read_text())["precision"] if record.is_file() else None


@torch.no_grad()
def speed(model, dataset, tokenizer, device="cpu", precision="fp32", latency_sentences=50, batch_size=32,
          throughput_batches=10, threads=None, latency_min_run_time=0.02, throughput_min_run_time=0.2):
    """Batch-1 latency (median and p90 over the first `latency_sentences` test sentences) and batch-32
    throughput over the first `throughput_batches` batches in the split's own order, timed with
    torch.utils.benchmark at a fixed thread count (`threads`, default torch's current one).

    Every input is padded, collated and moved to the device before any clock starts. Each timing is a
    Timer.blocked_autorange: it first runs the statement untimed while it picks a block size (the
    warm-up), then repeats blocks until `min_run_time` seconds have been timed, and its median is used.
    Batch 1: one measurement per sentence (lengths differ, so the spread over sentences is what p90
    reports; per-run noise is absorbed by each measurement's median). That costs about
    latency_min_run_time per sentence plus its warm-up (at least one untimed and one timed call):
    ~35 ms a sentence for the CI's tiny BERT, ~4 calls of ~10 ms for MiniLM-L6 at 1 thread.
    Batch 32: one statement runs all the batches once (an untimed pass, then passes until
    throughput_min_run_time); sentences/s and word pieces/s are their counts over its median time.
    With the CI settings (8 sentences, 3 batches) the whole call takes ~1.5 s for the tiny BERT.
    """
    from torch.utils import benchmark

    model.eval()
    threads = int(threads or torch.get_num_threads())
    pad = Padder(tokenizer)
    n = len(dataset)
    if n == 0:
        raise ValueError("speed() needs at least one sentence")

    def inputs(idx):
        return pad.model_inputs(dataset, idx, device)

    singles = [inputs([i]) for i in range(min(latency_sentences, n))]
    batches = [inputs(list(range(lo, min(lo + batch_size, n))))
               for lo in range(0, min(n, batch_size * throughput_batches), batch_size)]
    sentences = sum(int(b["input_ids"].shape[0]) for b in batches)
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)

    def forward(*group):
        with torch.no_grad(), autocast(device, precision):
            for batch in group:
                model(**batch)

    def seconds(args, min_run_time):
        timer = benchmark.Timer(stmt="forward(*args)", globals={"forward": forward, "args": args},
                                num_threads=threads)
        return timer.blocked_autorange(min_run_time=min_run_time).median

    lat = [1000 * seconds([single], latency_min_run_time) for single in singles]
    sec = seconds(batches, throughput_min_run_time)
    p90 = statistics.quantiles(lat, n=10, method="inclusive")[-1] if len(lat) > 1 else lat[0]
    return {"latency_ms_batch1_median": statistics.median(lat), "latency_ms_batch1_p90": p90,
            "latency_sentences": len(lat), "throughput_batch": batch_size,
            "throughput_sentences_per_s": sentences / sec, "throughput_tokens_per_s": tokens / sec,
            "precision": precision, "device": device, "threads": threads, "timer": "torch.utils.benchmark"}


def structure(model):
    """Sparsity of the encoder's linear weights (int8 ones counted from their packed integers), attention
    heads kept, and weight bits (8 once the encoder's linears are int8)."""
    from ..methods.architectures import adapter_for

    a = adapter_for(model)
    zeros = total = 0
    quantized = any(op["op"] == "quantize_int8" for op in getattr(model.config, "shrink_ops", None) or [])
    layers = a.layers(model)
    for _, w in linear_weights(layers):
        zeros += zero_weights(w)
        total += w.numel()
        quantized = quantized or w.is_quantized
    heads = [a.num_heads(layer) for layer in layers]
    return {"sparsity": zeros / total if total else 0.0, "heads_kept": sum(heads),
            "heads_total": model.config.num_attention_heads * model.config.num_hidden_layers,
            "heads_per_layer": heads, "bits": 8 if quantized else 32}


def evaluate_model(model_dir, tokenized_dir, out_json, name, eval_cfg=None, config=None, seed=None, variant=None):
    from .variants import load_variant

    eval_cfg = eval_cfg or {}
    device = eval_cfg.get("device", "cpu")
    precision = resolve(eval_cfg.get("precision", "auto"), device, "evaluate.precision")
    dd, tok, labels = load_tokenized(tokenized_dir)
    model = load_variant(model_dir).to(device)
    model_labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if model_labels != labels:
        raise ValueError(f"{model_dir} predicts labels {model_labels}, the data has {labels}")
    bs = eval_cfg.get("batch_size", 64)
    result = {"model": name, "model_dir": str(model_dir), "variant": variant or {}}
    for split in ("validation", "test"):
        result[split] = evaluate_split(model, dd[split], tok, labels, batch_size=bs, device=device, precision=precision)
    result["parameters"] = count_parameters(model)
    result["structure"] = structure(model)
    result["disk_bytes"] = folder_bytes(model_dir)
    result["speed"] = speed(model, dd["test"], tok, device=device, precision=precision,
                            latency_sentences=eval_cfg.get("latency_sentences", 50),
                            throughput_batches=eval_cfg.get("throughput_batches", 10))
    # ru_maxrss is KiB on Linux: the peak resident memory of this whole evaluation process
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["precision"] = {"evaluate": precision, "train": trained_with(model_dir)}
    result["machine"] = machine(device)
    result["provenance"] = provenance(config, seed)
    write_json(out_json, result)
    return result
