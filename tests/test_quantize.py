"""Dynamic int8 quantization (shrink.methods.quantize) on a tiny random BERT token classifier."""

import pytest
import torch

from shrink.core.model_size import is_quantized_linear
from shrink.methods.quantize import (
    STATE_FILE,
    int8_size_bytes,
    load_quantized,
    quantize_int8,
    save_quantized,
)


@pytest.fixture(scope="module")
def tiny():
    from transformers import BertConfig, BertForTokenClassification

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=64, num_labels=9)
    model = BertForTokenClassification(config).eval()
    ids = torch.randint(1, 100, (16, 32))
    mask = torch.ones_like(ids)
    mask[8:, 20:] = 0  # half the batch is padded: those positions are ignored below
    batch = {"input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        ref = model(**batch).logits
    return model, batch, ref


def logits(model, batch):
    with torch.no_grad():
        return model(**batch).logits


def test_every_linear_is_quantized_and_embeddings_stay_fp32(tiny):
    model, _, _ = tiny
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert n_linear == 2 * 6 + 1  # q, k, v, attention out, intermediate, output per layer; classifier
    q = quantize_int8(model)
    assert sum(is_quantized_linear(m) for m in q.modules()) == n_linear
    assert not any(isinstance(m, torch.nn.Linear) and not is_quantized_linear(m) for m in q.modules())
    assert q.bert.embeddings.word_embeddings.weight.dtype == torch.float32
    assert isinstance(model.classifier, torch.nn.Linear)  # the input model is left alone by default

    keep_head = quantize_int8(model, include_classifier=False)
    assert sum(is_quantized_linear(m) for m in keep_head.modules()) == n_linear - 1
    assert type(keep_head.classifier) is torch.nn.Linear


def test_logits_close_to_fp32(tiny):
    # Each quantized Linear adds rounding noise: weights int8 per output channel (step = row range/255)
    # and activations 7-bit per tensor (step = range/127, rms step/sqrt(12) ~ 2% of a gaussian input's
    # std for a +-4 std range). Residual connections and LayerNorm keep it from compounding over the
    # 2 layers (measured: 1.8% overall, 3.6% worst token), so 5% overall and 8% per token leave margin
    # without hiding a broken layer (a wrong scale or a dropped bias gives errors of order 100%).
    model, batch, ref = tiny
    out = logits(quantize_int8(model), batch)
    real = batch["attention_mask"].bool()
    diff, ref_r = (out - ref)[real], ref[real]
    assert (diff.norm() / ref_r.norm()).item() < 0.05
    assert (diff.norm(dim=-1) / ref_r.norm(dim=-1)).max().item() < 0.08
    # A random head gives near-ties between labels, so a few argmax flips are expected (measured 99%).
    assert (out.argmax(-1) == ref.argmax(-1))[real].float().mean().item() > 0.95


@pytest.mark.parametrize("include_classifier", [True, False])
def test_save_load_round_trip_is_bitwise(tiny, tmp_path, include_classifier):
    model, batch, _ = tiny
    q = quantize_int8(model, include_classifier=include_classifier)
    save_quantized(q, tmp_path / "int8")
    assert sorted(p.name for p in (tmp_path / "int8").iterdir()) == ["config.json", STATE_FILE]
    loaded = load_quantized(tmp_path / "int8")
    assert is_quantized_linear(loaded.classifier) == include_classifier
    assert torch.equal(logits(loaded, batch), logits(q, batch))


def test_saved_size_matches_parameter_counts(tiny, tmp_path):
    model, _, _ = tiny
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    w = sum(m.weight.numel() for m in linears)  # 1 byte each once quantized
    other = sum(p.numel() for p in model.parameters()) - w  # embeddings, LayerNorms, biases: fp32
    out_channels = sum(m.out_features for m in linears)  # a float64 scale + int64 zero point each
    q = quantize_int8(model)
    # plus a float32 scale and an int64 zero point per module (the unused output qparams)
    payload = w + 4 * other + 16 * out_channels + 12 * len(linears)
    assert int8_size_bytes(q) == payload
    assert int8_size_bytes(model) == 4 * (w + other)

    sizes = save_quantized(q, tmp_path / "int8")
    assert sizes["int8_bytes"] == (tmp_path / "int8" / STATE_FILE).stat().st_size
    assert 4 * (w + other) <= sizes["fp32_bytes"] <= 4 * (w + other) + 16_384  # safetensors: a JSON header
    # torch.save writes a zip: per state-dict entry a 64-byte aligned member, its headers and the
    # pickled key and rebuild call; 768 bytes an entry bounds that (measured ~420).
    n_entries = sum(len(v) if isinstance(v, tuple) else 1 for v in q.state_dict().values())
    assert payload <= sizes["int8_bytes"] <= payload + 768 * n_entries
    # Linear weights alone shrink 4x; the whole file less, as the fp32 rest dominates this tiny model.
    assert sizes["ratio"] >= 4 * (w + other) / (payload + 768 * n_entries) > 1.5


def test_empty_linears_of_a_layer_without_heads_stay_float(tiny_bert, batch):
    from shrink.core.model_size import is_quantized_linear
    from shrink.methods.attention_heads import prune_heads

    model = prune_heads(tiny_bert(), {0: []})  # layer 0 keeps no head: its output projection reads 0 features
    q = quantize_int8(model)
    out = q.bert.encoder.layer[0].attention.output.dense
    assert out.weight.numel() == 0 and not is_quantized_linear(out)
    assert is_quantized_linear(q.bert.encoder.layer[1].attention.output.dense)
    b = {k: v for k, v in batch().items() if k != "labels"}
    assert q(**b).logits.shape == model(**b).logits.shape
