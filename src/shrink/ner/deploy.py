"""Deploy a model folder: a validated, self-contained ONNX export, and every serving runtime measured
the same way (entity F1 on validation and test, batch-1 latency, batch-32 throughput).

The export folder holds `model.onnx` (fp32; matrices with more than two-thirds zeros stored sparse),
`model.int8-dynamic.onnx` and `model.int8-static.onnx` (ONNX Runtime quantization of it),
`model.fused.onnx` (exported with eager attention, then ONNX Runtime's BERT fusions; ONNX Runtime
only) and `model.fused.int8-dynamic.onnx` (its dynamic int8), the
tokenizer, `labels.json`, and `deploy.json` (the export check and every runtime's numbers). Variants
that plain `from_pretrained` loads (no structural ops) are also saved under `pytorch/`.

Every runtime starts from the variant's float weights; a variant saved int8 (torch.ao) is dequantized
first, because the ONNX exporter cannot trace torch.ao's packed int8 ops. Its `pytorch_int8` row
quantizes those weights again with the same per-channel scheme, which gives back the saved model.
"""

import json
from pathlib import Path

import torch

from ..core.atomic import atomic_dir, write_json
from ..core.batching import Padder
from ..core.errors import ShrinkError
from ..core.model_size import folder_bytes, is_quantized_linear
from ..core.onnx_export import (
    OnnxLogits,
    eager_attention,
    export,
    fuse,
    quantize_dynamic,
    quantize_static,
    store_sparse,
)
from ..core.precision import cpu_bf16_native, machine
from .evaluate import load_tokenized, speed
from .metrics import evaluate_split
from .tokens import REPORT

RUNTIMES = ("pytorch_fp32", "pytorch_bf16", "pytorch_int8", "torch_compile",
            "onnx_fp32", "onnx_int8_dynamic", "onnx_int8_static", "onnx_fused_fp32", "onnx_fused_int8_dynamic")
ONNX_FILES = {"onnx_fp32": "model.onnx", "onnx_int8_dynamic": "model.int8-dynamic.onnx",
              "onnx_int8_static": "model.int8-static.onnx", "onnx_fused_fp32": "model.fused.onnx",
              "onnx_fused_int8_dynamic": "model.fused.int8-dynamic.onnx"}
FUSED = ("onnx_fused_fp32", "onnx_fused_int8_dynamic")
RECORD = "deploy.json"
WINDOWS = "windows.json"


def float_copy(model):
    """The model with every torch.ao dynamic int8 Linear replaced by an fp32 nn.Linear holding its
    dequantized weights (the same function the int8 model computes, less activation rounding);
    returns (model, number of layers dequantized). Float models come back as they are."""
    from ..methods.quantize import _quiet_torch_ao

    names = [n for n, m in model.named_modules() if is_quantized_linear(m)]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        q = getattr(parent, child)
        with _quiet_torch_ao():
            weight, bias = q.weight().dequantize(), q.bias()
        linear = torch.nn.Linear(q.in_features, q.out_features, bias=bias is not None)
        with torch.no_grad():
            linear.weight.copy_(weight)
            if bias is not None:
                linear.bias.copy_(bias)
        setattr(parent, child, linear)
    return model.eval(), len(names)


@torch.no_grad()
def logit_difference(model, onnx_model, dataset, tokenizer, sentences, batch_size=16):
    """Largest |PyTorch - ONNX Runtime| logit over the real (unpadded) positions of the first
    `sentences` rows, in padded batches so the attention mask is exercised too."""
    worst, pad = 0.0, Padder(tokenizer)
    n = min(sentences, len(dataset))
    for lo in range(0, n, batch_size):
        batch = pad.model_inputs(dataset, list(range(lo, min(lo + batch_size, n))))
        ref, got = model(**batch).logits, onnx_model(**batch).logits
        real = batch["attention_mask"].bool()
        worst = max(worst, float((ref - got).abs()[real].max()))
    return worst


def uniform_heads(model):
    """The head count every layer of `model` runs, or None where layers differ (a head-pruned variant)
    or a layer has none: fuse() then leaves attention unfused."""
    from ..methods.architectures import adapter_for

    a = adapter_for(model)
    counts = {a.num_heads(layer) for layer in a.layers(model)}
    return counts.pop() if len(counts) == 1 and 0 not in counts else None


def export_fused(model, sample, folder, int8):
    """`model.fused.onnx` in `folder` (and its dynamic int8 when `int8`): the model exported with eager
    attention, then fused. Returns what the record keeps: the fusions made and the head count used."""
    import tempfile

    heads = uniform_heads(model)
    with tempfile.TemporaryDirectory() as tmp, eager_attention(model):
        eager = Path(tmp) / "eager.onnx"
        export(model, sample, eager)
        fusions = fuse(eager, folder / ONNX_FILES["onnx_fused_fp32"], heads, model.config.hidden_size)
    if int8:
        quantize_dynamic(folder / ONNX_FILES["onnx_fused_fp32"], folder / ONNX_FILES["onnx_fused_int8_dynamic"], fused=True)
    return {"fusions": fusions, "num_heads": heads}


def calibration_feeds(dataset, tokenizer, sentences):
    """The first `sentences` training rows as ONNX Runtime input dicts, one sentence each (no padding,
    so the calibrated activation ranges are those of real tokens)."""
    feeds, pad = [], Padder(tokenizer)
    for i in range(min(sentences, len(dataset))):
        batch = pad.model_inputs(dataset, [i])
        feeds.append({k: v.numpy() for k, v in batch.items()})
    return feeds


def _runner(runtime, model, folder, threads):
    """What `runtime` runs, called like a Hugging Face model, and its autocast precision."""
    if runtime == "pytorch_fp32":
        return model, "fp32"
    if runtime == "pytorch_bf16":
        return model, "bf16"
    if runtime == "pytorch_int8":
        from ..methods.quantize import quantize_int8

        return quantize_int8(model), "fp32"
    if runtime == "torch_compile":
        # dynamic shapes: every batch has its own length, and a recompile per length would dominate
        return torch.compile(model, dynamic=True), "fp32"
    return OnnxLogits(folder / ONNX_FILES[runtime], threads), "fp32"


def measure_runtime(runtime, model, folder, dd, tokenizer, labels, eval_cfg, threads):
    runner, precision = _runner(runtime, model, folder, threads)
    bs = eval_cfg.get("batch_size", 64)
    row = {split: evaluate_split(runner, dd[split], tokenizer, labels, batch_size=bs, precision=precision)
           for split in ("validation", "test")}
    for split in ("validation", "test"):
        row[split].pop("per_type", None)
    row["speed"] = speed(runner, dd["test"], tokenizer, precision=precision, threads=threads,
                         latency_sentences=eval_cfg.get("latency_sentences", 50),
                         throughput_batches=eval_cfg.get("throughput_batches", 10))
    if runtime in ONNX_FILES:
        row["file_bytes"] = (folder / ONNX_FILES[runtime]).stat().st_size
    return row


def deploy_model(model_dir, tokenized_dir, out_dir, name, deploy_cfg, eval_cfg=None, threads=None):
    """Export `model_dir` to `out_dir` (atomically), check the export, and measure every runtime in
    `deploy_cfg["runtimes"]`. Raises ShrinkError when ONNX Runtime's logits differ from PyTorch's by
    more than `deploy.logit_tolerance`."""
    from .variants import load_variant

    eval_cfg = eval_cfg or {}
    threads = int(threads or torch.get_num_threads())
    runtimes = list(deploy_cfg["runtimes"])
    unknown = sorted(set(runtimes) - set(RUNTIMES))
    if unknown:
        raise ShrinkError(f"config key deploy.runtimes: unknown {unknown} (choose from {', '.join(RUNTIMES)})")
    if "pytorch_fp32" not in runtimes:  # every speed-up and F1 share is relative to it
        raise ShrinkError("config key deploy.runtimes: pytorch_fp32 is the reference of the table and must stay")
    dd, tok, labels = load_tokenized(tokenized_dir)
    saved = load_variant(model_dir)
    plain = not (getattr(saved.config, "shrink_ops", None) or [])
    model, dequantized = float_copy(saved)
    record = {"model": name, "model_dir": str(model_dir), "runtimes": {}, "skipped": {},
              "machine": machine("cpu"), "threads": threads}
    with atomic_dir(out_dir) as tmp:
        # the exporter drops an input the graph never reads (attention_mask, once every head is pruned)
        sample = Padder(tok).model_inputs(dd["test"], list(range(min(2, len(dd["test"])))))
        export(model, sample, tmp / ONNX_FILES["onnx_fp32"])
        dense_bytes = (tmp / ONNX_FILES["onnx_fp32"]).stat().st_size
        # ONNX Runtime's quantizers do not read sparse initializers ("unknown initializers"), so the int8
        # files are made from the dense export, and only then is model.onnx stored sparse
        if "onnx_int8_dynamic" in runtimes:
            quantize_dynamic(tmp / ONNX_FILES["onnx_fp32"], tmp / ONNX_FILES["onnx_int8_dynamic"])
        if "onnx_int8_static" in runtimes:
            feeds = calibration_feeds(dd["train"], tok, deploy_cfg["calibration_sentences"])
            quantize_static(tmp / ONNX_FILES["onnx_fp32"], tmp / ONNX_FILES["onnx_int8_static"], feeds)
            record["calibration"] = {"split": "train", "sentences": len(feeds), "method": "minmax"}
        if set(FUSED) & set(runtimes):
            record["fused"] = export_fused(model, sample, tmp, "onnx_fused_int8_dynamic" in runtimes)
            store_sparse(tmp / ONNX_FILES["onnx_fused_fp32"])
        moved = store_sparse(tmp / ONNX_FILES["onnx_fp32"])
        onnx_fp32 = OnnxLogits(tmp / ONNX_FILES["onnx_fp32"], threads)
        worst = logit_difference(model, onnx_fp32, dd["test"], tok, deploy_cfg["check_sentences"])
        tolerance = deploy_cfg["logit_tolerance"]
        record["export"] = {
            "inputs": onnx_fp32.inputs, "max_abs_logit_difference": worst, "logit_tolerance": tolerance,
            "check_sentences": min(deploy_cfg["check_sentences"], len(dd["test"])),
            "dequantized_int8_layers": dequantized, "dense_bytes": dense_bytes,
            "bytes": (tmp / ONNX_FILES["onnx_fp32"]).stat().st_size,
            "sparse_initializers": {k: {"zeros": z, "dense_bytes": d, "sparse_bytes": s} for k, (z, d, s) in moved.items()},
        }
        checked = {ONNX_FILES["onnx_fp32"]: worst}
        if "fused" in record:
            fused = OnnxLogits(tmp / ONNX_FILES["onnx_fused_fp32"], threads)
            checked[ONNX_FILES["onnx_fused_fp32"]] = record["fused"]["max_abs_logit_difference"] = logit_difference(
                model, fused, dd["test"], tok, deploy_cfg["check_sentences"])
        for file, diff in checked.items():
            if diff > tolerance:
                raise ShrinkError(f"{name}: ONNX Runtime logits of {file} differ from PyTorch's by up to {diff:.3g} on "
                                  f"the first {deploy_cfg['check_sentences']} test sentences, over "
                                  f"deploy.logit_tolerance {tolerance}")
        tok.save_pretrained(tmp)
        (tmp / "labels.json").write_text(json.dumps(labels))
        # the window sizes the data was tokenized with, so shrink.ner.serve splits long text the same way
        windows = json.loads((Path(tokenized_dir) / REPORT).read_text())
        (tmp / WINDOWS).write_text(json.dumps({k: windows[k] for k in ("max_length", "stride")}))
        if plain:
            saved.save_pretrained(tmp / "pytorch")
            tok.save_pretrained(tmp / "pytorch")
        for runtime in runtimes:
            if runtime == "pytorch_bf16" and not cpu_bf16_native():
                record["skipped"][runtime] = "this CPU emulates bf16 (10-50x slower than fp32, docs/precision.md)"
                continue
            record["runtimes"][runtime] = measure_runtime(runtime, model, tmp, dd, tok, labels, eval_cfg, threads)
            r = record["runtimes"][runtime]
            print(f"{name} {runtime}: validation F1 {r['validation']['f1']:.4f}, test F1 {r['test']['f1']:.4f}, "
                  f"batch-1 {r['speed']['latency_ms_batch1_median']:.2f} ms", flush=True)
        done = record["runtimes"]
        if "pytorch_fp32" in done and "onnx_fp32" in done:
            record["export"]["test_f1_difference"] = done["onnx_fp32"]["test"]["f1"] - done["pytorch_fp32"]["test"]["f1"]
        record["bytes"] = folder_bytes(tmp)
        write_json(tmp / RECORD, record)
    return record
