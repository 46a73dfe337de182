"""The deployment target's ONNX Runtime rows beside OpenVINO and NNCF, on the same teacher export, the
same data, the same entity F1 code and the same timer, in ONE run.

    pip install -e '.[peers]'
    python perf/deploy_peers.py results/deploy/teacher results/data/tokenized
    python perf/deploy_peers.py results/deploy/teacher results/data/tokenized --also results/deploy/kd_4layer

Rows, all from export folders the `deployment` target wrote (docs/deploy.md):
  pytorch_fp32            the teacher in PyTorch eager (its `pytorch/` folder): the reference of the ratios
  onnx_fp32, onnx_int8_dynamic, onnx_int8_static, onnx_fused_fp32, onnx_fused_int8_dynamic
                          this project's files (those the folder has), in ONNX Runtime
  openvino_fp32           the same model.onnx compiled by OpenVINO, f32 inference forced (on CPUs with
                          bf16 OpenVINO would otherwise pick bf16)
  openvino_int8_nncf      NNCF post-training quantization of that model (transformer preset, min/max
                          calibration on the same training sentences as onnx_int8_static)
--also adds the ONNX Runtime rows of other export folders (a compressed variant) to the same run.

The last lines compare, among the rows that keep --keep (98%) of the teacher's PyTorch fp32 validation
F1, this project's fastest row at batch 1 with the peers' fastest: the same choice on validation as
the deployment table's (shrink.ner.deployment_table.best_deployable), test F1 shown, never chosen on.

  ort_fused_fp32          Hugging Face optimum's ONNX Runtime path, rebuilt from the onnxruntime calls it
                          makes (optimum-onnx 0.1.0, the newest on PyPI, requires transformers<4.58 and
                          this project runs transformers 5): the teacher exported with eager attention,
                          then ORT's BERT graph fusions (what ORTOptimizer's O2 level runs:
                          EmbedLayerNormalization, Attention, SkipLayerNormalization, BiasGelu)
  ort_fused_int8_dynamic  that fused model through quantize_dynamic with optimum's documented
                          avx512_vnni dynamic setting (int8 weights per tensor, per_channel=False)
Intel Neural Compressor and torchao are not measured (torchao's CPU path: shrink/methods/quantize.py).
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from shrink.core.onnx_export import OnnxLogits
from shrink.core.precision import describe
from shrink.ner.deploy import ONNX_FILES, calibration_feeds
from shrink.ner.deployment_table import best_deployable
from shrink.ner.evaluate import load_tokenized, speed
from shrink.ner.metrics import evaluate_split


class OpenVinoLogits:
    """An OpenVINO compiled model called like a Hugging Face model (`model(**batch).logits`)."""

    class _Output:
        def __init__(self, logits):
            self.logits = logits

    def __init__(self, model, threads, precision="f32"):
        import openvino as ov

        self.compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": int(threads),
                                                              "INFERENCE_PRECISION_HINT": precision})
        self.inputs = [i.get_any_name() for i in self.compiled.inputs]

    def eval(self):
        return self

    def __call__(self, **batch):
        feed = {n: batch[n].cpu().numpy().astype(np.int64) for n in self.inputs}
        return self._Output(torch.from_numpy(np.asarray(self.compiled(feed)[0])))


def nncf_int8(onnx_path, feeds):
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(onnx_path))
    return nncf.quantize(model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(feeds))


def ort_fused(pytorch_dir, sample, workdir):
    """optimum's ORTOptimizer (O2) and ORTQuantizer (avx512_vnni, dynamic) on the teacher, as the two
    onnxruntime calls they wrap: returns the fused fp32 and the fused int8 file and the fusions made.
    The fused fp32 file is the deployment target's `model.fused.onnx` made the same way; the int8 file
    differs from `model.fused.int8-dynamic.onnx` in optimum's per-tensor weight scales."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModelForTokenClassification

    from shrink.core.onnx_export import eager_attention, export, fuse

    model = AutoModelForTokenClassification.from_pretrained(pytorch_dir).eval()
    eager, fused, int8 = (workdir / f for f in ("eager.onnx", "fused.onnx", "fused.int8.onnx"))
    with eager_attention(model):
        export(model, {k: torch.from_numpy(v) for k, v in sample.items()}, eager)
    fusions = fuse(eager, fused, model.config.num_attention_heads, model.config.hidden_size)
    # onnx shape inference does not know ORT's fused ops (com.microsoft), so the quantizer is told
    # their outputs are float
    quantize_dynamic(fused, int8, weight_type=QuantType.QInt8, per_channel=False,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return fused, int8, fusions


def measure(name, runner, dd, tok, labels, args):
    row = {"row": name}
    for split in ("validation", "test"):
        row[f"{split}_f1"] = evaluate_split(runner, dd[split], tok, labels, batch_size=64)["f1"]
    s = speed(runner, dd["test"], tok, threads=args.threads, latency_sentences=args.latency_sentences,
              throughput_batches=args.throughput_batches)
    row.update(latency_ms=s["latency_ms_batch1_median"], latency_p90_ms=s["latency_ms_batch1_p90"],
               sentences_per_s=s["throughput_sentences_per_s"])
    print(f"{name}: validation F1 {row['validation_f1']:.4f}, test F1 {row['test_f1']:.4f}, "
          f"batch-1 {row['latency_ms']:.2f} ms, {row['sentences_per_s']:.1f} sentences/s", flush=True)
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("export", type=Path, help="the teacher's export folder (results/deploy/teacher)")
    p.add_argument("tokenized", type=Path, help="results/data/tokenized")
    p.add_argument("--also", type=Path, nargs="*", default=[], help="more export folders: their ONNX Runtime rows")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--calibration-sentences", type=int, default=128)
    p.add_argument("--latency-sentences", type=int, default=100)
    p.add_argument("--throughput-batches", type=int, default=20)
    p.add_argument("--keep", type=float, default=0.98, help="share of the teacher's validation F1 a row must keep")
    p.add_argument("--json", type=Path, help="write the rows here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(describe("fp32"), f"threads {args.threads}", flush=True)

    from transformers import AutoModelForTokenClassification

    dd, tok, labels = load_tokenized(args.tokenized)
    if not (args.export / "pytorch").is_dir():
        raise SystemExit(f"{args.export}/pytorch: missing; give the teacher's export folder (a plain model)")
    rows = [measure("pytorch_fp32", AutoModelForTokenClassification.from_pretrained(args.export / "pytorch").eval(),
                    dd, tok, labels, args)]
    for folder in [args.export, *args.also]:
        prefix = "" if folder == args.export else f"{folder.name} "
        for runtime, file in ONNX_FILES.items():
            if (folder / file).is_file():
                rows.append(measure(prefix + runtime, OnnxLogits(folder / file, args.threads), dd, tok, labels, args))
    onnx_fp32 = args.export / ONNX_FILES["onnx_fp32"]
    ours = len(rows)
    rows.append(measure("openvino_fp32", OpenVinoLogits(str(onnx_fp32), args.threads), dd, tok, labels, args))
    feeds = calibration_feeds(dd["train"], tok, args.calibration_sentences)
    rows.append(measure("openvino_int8_nncf", OpenVinoLogits(nncf_int8(onnx_fp32, feeds), args.threads),
                        dd, tok, labels, args))
    with tempfile.TemporaryDirectory() as tmp:
        fused, int8, fusions = ort_fused(args.export / "pytorch", feeds[0], Path(tmp))
        print("ORT fusions:", fusions, flush=True)
        rows.append(measure("ort_fused_fp32", OnnxLogits(fused, args.threads), dd, tok, labels, args))
        rows.append(measure("ort_fused_int8_dynamic", OnnxLogits(int8, args.threads), dd, tok, labels, args))

    ref = rows[0]
    print(f"\n{'row':42s} {'val F1':>7s} {'test F1':>7s} {'ms b1':>7s} {'x b1':>6s} {'sent/s':>8s} {'x b32':>6s}")
    for r in rows:
        r["speedup"] = ref["latency_ms"] / r["latency_ms"]
        r["throughput_ratio"] = r["sentences_per_s"] / ref["sentences_per_s"]
        print(f"{r['row']:42s} {r['validation_f1']:7.4f} {r['test_f1']:7.4f} {r['latency_ms']:7.2f} "
              f"{r['speedup']:6.2f} {r['sentences_per_s']:8.1f} {r['throughput_ratio']:6.2f}")
    verdict = compare(rows, ours, args.keep)
    print(verdict)
    if args.json:
        args.json.write_text(json.dumps({"machine": describe("fp32"), "threads": args.threads, "rows": rows,
                                         "verdict": verdict}, indent=1))


def compare(rows, ours, keep):
    """rows[0] is the reference, rows[1:ours] this project's, rows[ours:] the peers'; each side's fastest
    row at batch 1 among those keeping `keep` of the reference's validation F1, and their ratio."""
    df = pd.DataFrame(rows)
    df["val_f1_rel_teacher"] = df["validation_f1"] / df["validation_f1"].iloc[0]
    df = df.rename(columns={"row": "runtime"})
    mine, peer = best_deployable(df.iloc[1:ours], keep), best_deployable(df.iloc[ours:], keep)

    def say(r):
        if r is None:
            return "none"
        return (f"{r['runtime']} ({r['latency_ms']:.2f} ms, {r['speedup']:.2f}x the reference, validation F1 "
                f"{r['validation_f1']:.4f}, test F1 {r['test_f1']:.4f})")

    line = f"fastest at batch 1 keeping {keep:.0%} of the reference's validation F1: ours {say(mine)}; peers {say(peer)}"
    if mine is not None and peer is not None:
        line += f"; ours / peers {peer['latency_ms'] / mine['latency_ms']:.2f}x"
    return line


if __name__ == "__main__":
    main()
