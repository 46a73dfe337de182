"""Evaluate a model folder: entity F1 on validation and test, size, CPU speed and memory."""

import json
import resource
import statistics
import time
from pathlib import Path

import torch

from ..core.atomic import write_json
from ..core.batching import Padder
from ..core.model_size import count_parameters, folder_bytes
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
          throughput_batches=10, warmup=3):
    """Median batch-1 latency over test sentences, and batch-32 throughput in the split's own order."""
    model.eval()
    pad = Padder(tokenizer)
    n = len(dataset)

    def run(idx):
        batch = pad(dataset, idx, device)
        batch.pop("labels", None)
        with autocast(device, precision):
            model(**batch)
        return int(batch["attention_mask"].sum())

    for i in range(min(warmup, n)):
        run([i])
    lat = []
    for i in range(min(latency_sentences, n)):
        t0 = time.perf_counter()
        run([i])
        lat.append(time.perf_counter() - t0)
    batches = [list(range(lo, min(lo + batch_size, n))) for lo in range(0, n, batch_size)][:throughput_batches]
    t0, sents, toks = time.perf_counter(), 0, 0
    for idx in batches:
        toks += run(idx)
        sents += len(idx)
    sec = time.perf_counter() - t0
    return {"latency_ms_batch1_median": 1000 * statistics.median(lat), "latency_sentences": len(lat),
            "throughput_batch": batch_size, "throughput_sentences_per_s": sents / sec,
            "throughput_tokens_per_s": toks / sec, "precision": precision, "device": device,
            "threads": torch.get_num_threads()}


def structure(model):
    """Sparsity of the encoder's linear weights, attention heads kept, and weight bits."""
    from ..methods.factorize import encoder_linears

    zeros = total = 0
    for _, lin in encoder_linears(model):
        w = lin.weight
        zeros += int((w == 0).sum())
        total += w.numel()
    heads = [layer.attention.self.num_attention_heads for layer in model.base_model.encoder.layer]
    quantized = any(op["op"] == "quantize_int8" for op in getattr(model.config, "shrink_ops", None) or [])
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
