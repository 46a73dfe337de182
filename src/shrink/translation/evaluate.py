"""Evaluation of a translation model: test-set BLEU/chrF (greedy and beam), size, decoding speed, and
greedy BLEU/chrF on the validation split, on which the report makes its choices (test is only shown)."""

import os
import statistics
import time

import torch

from ..core.batching import sequential_batches
from .decode import translate
from .model import MODEL_FILE, make_batch
from .scoring import score
from .vocab import decode


def structure(model):
    cfg = model.config
    kept = [layer.self_attn.n_heads for layer in model.encoder.layers]
    return {"encoder_heads_total": cfg.encoder_layers * cfg.heads, "encoder_heads_kept": sum(kept),
            "encoder_heads_per_layer": kept}


def decoding_speed(model, src_ids, batch_size, device, latency_sentences):
    """Greedy decoding: sentences/s and generated tokens/s over the whole set, batch-1 latency."""
    t0 = time.perf_counter()
    hyps = translate(model, src_ids, batch_size=batch_size, device=device)
    seconds = time.perf_counter() - t0
    latencies = []
    for s in src_ids[:latency_sentences]:
        t = time.perf_counter()
        translate(model, [s], batch_size=1, device=device)
        latencies.append(1000 * (time.perf_counter() - t))
    return hyps, {"sentences_per_s": round(len(src_ids) / seconds, 2),
                  "generated_tokens_per_s": round(sum(len(h) + 1 for h in hyps) / seconds, 1),
                  "latency_ms_batch1_median": round(statistics.median(latencies), 2) if latencies else None}


@torch.no_grad()
def encoder_ms_per_sentence(model, src_ids, batch_size, device, repeats=3):
    """The encoder alone over the whole set, best of `repeats`: where removing encoder heads can pay off
    (decoding time is dominated by the decoder, which runs once per output token)."""
    batches = [make_batch([src_ids[i] for i in idx], device=device)["src"]
               for idx in sequential_batches([len(s) for s in src_ids], batch_size)]
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for src in batches:
            model.encoder(src)
        best = min(best, time.perf_counter() - t0)
    return round(1000 * best / len(src_ids), 4)


def _translations(model, tok, data, beams, batch_size, device, greedy_ids=None):
    """{decoder: detokenized hypotheses}: greedy, then beam search for each width in `beams`."""
    if greedy_ids is None:
        greedy_ids = translate(model, data.src, batch_size=batch_size, device=device)
    outputs = {"greedy": decode(tok, greedy_ids)}
    for k in beams:
        outputs[f"beam{k}"] = decode(tok, translate(model, data.src, beam=k, batch_size=batch_size, device=device))
    return outputs


def test_scores(model, tok, data, beams=(4,), batch_size=64, device="cpu"):
    """{decoder: {bleu, chrf, ...}} on one more test set (no speed or samples)."""
    model.to(device).eval()
    return {name: score(hyps, data.tgt_text)
            for name, hyps in _translations(model, tok, data, beams, batch_size, device).items()}


def validation_scores(model, tok, data, batch_size=64, device="cpu"):
    """{"greedy": {bleu, chrf, ...}} on the validation split: greedy only, to keep the cost small."""
    return test_scores(model, tok, data, beams=(), batch_size=batch_size, device=device)


def evaluate_translation(model, tok, data, model_dir, beams=(4,), batch_size=64, device="cpu",
                         latency_sentences=50, samples=10, threads=None, validation=None):
    """Metrics dict for `data` (the test split): greedy and beam scores, parameters, speed, samples;
    with `validation` (the validation split), its greedy scores under "validation"."""
    model.to(device).eval()
    greedy_ids, speed = decoding_speed(model, data.src, batch_size, device, latency_sentences)
    outputs = _translations(model, tok, data, beams, batch_size, device, greedy_ids)
    scores = {name: score(hyps, data.tgt_text) for name, hyps in outputs.items()}
    encoder_attention = sum(p.numel() for layer in model.encoder.layers for p in layer.self_attn.parameters())
    return {
        "test": scores,
        **({"validation": validation_scores(model, tok, validation, batch_size, device)}
           if validation is not None else {}),
        "parameters": {"total": model.num_parameters(), "encoder_self_attention": encoder_attention},
        "bytes_on_disk": os.path.getsize(os.path.join(model_dir, MODEL_FILE)),
        "structure": structure(model),
        "speed": {**speed, "encoder_ms_per_sentence": encoder_ms_per_sentence(model, data.src, batch_size, device),
                  "device": device, "threads": threads or torch.get_num_threads(),
                  "batch_size": batch_size},
        "samples": [{"source": data.src_text[i], "reference": data.tgt_text[i],
                     **{name: hyps[i] for name, hyps in outputs.items()}} for i in range(min(samples, len(data)))],
    }


def copy_baseline(data):
    """The source sentence as its own 'translation': what BLEU gives for doing nothing."""
    return {"test": {"greedy": score(list(data.src_text), data.tgt_text)}}
