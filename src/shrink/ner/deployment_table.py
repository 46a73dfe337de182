"""The deployment table and figure: every model in every runtime, from the deploy records only (no torch).

The best deployable row is chosen on validation: the fastest at batch 1 among the rows whose
validation F1 keeps `keep` (default 98%) of the teacher's PyTorch fp32 validation F1. Its test F1 and
speed-up are then shown; the test split picks nothing.
"""

import json
from pathlib import Path

import pandas as pd

from ..core.atomic import write_text
from ..core.figures import plt, save_figure

REFERENCE = "pytorch_fp32"


def deployment_frame(record_paths, teacher="teacher"):
    rows = []
    for p in record_paths:
        r = json.loads(Path(p).read_text())
        for runtime, m in r["runtimes"].items():
            s = m["speed"]
            rows.append({"model": r["model"], "runtime": runtime, "val_f1": m["validation"]["f1"],
                         "test_f1": m["test"]["f1"], "latency_ms": s["latency_ms_batch1_median"],
                         "latency_p90_ms": s["latency_ms_batch1_p90"],
                         "sentences_per_s": s["throughput_sentences_per_s"],
                         "file_mb": m["file_bytes"] / 2**20 if "file_bytes" in m else float("nan")})
    df = pd.DataFrame(rows)
    ref = df[(df["model"] == teacher) & (df["runtime"] == REFERENCE)]
    if ref.empty:
        raise ValueError(f"no {REFERENCE} row for the teacher '{teacher}' among the deploy records")
    ref = ref.iloc[0]
    df["val_f1_rel_teacher"] = df["val_f1"] / ref["val_f1"]
    df["test_f1_rel_teacher"] = df["test_f1"] / ref["test_f1"]
    df["speedup"] = ref["latency_ms"] / df["latency_ms"]
    df["throughput_rel_teacher"] = df["sentences_per_s"] / ref["sentences_per_s"]
    return df


def best_deployable(df, keep=0.98):
    """The fastest row at batch 1 whose validation F1 keeps `keep` of the teacher's; None if none does."""
    ok = df[df["val_f1_rel_teacher"] >= keep]
    return None if ok.empty else ok.sort_values("latency_ms", kind="stable").iloc[0]


def write_deployment(record_paths, out_csv, out_md, teacher="teacher", keep=0.98):
    df = deployment_frame(record_paths, teacher)
    write_text(out_csv, df.to_csv(index=False, float_format="%.6g"))
    best = best_deployable(df, keep)
    if best is None:
        verdict = f"No row keeps {keep:.0%} of the teacher's validation F1."
    else:
        verdict = (f"Best deployable, chosen on validation (fastest at batch 1 keeping {keep:.0%} of the teacher's "
                   f"validation F1): {best['model']} in {best['runtime']}, test F1 {best['test_f1']:.4f} "
                   f"({best['test_f1_rel_teacher']:.1%} of the teacher's), {best['speedup']:.2f}x the teacher's "
                   f"{REFERENCE} batch-1 speed.")
    cols = ["model", "runtime", "test_f1", "test_f1_rel_teacher", "val_f1", "val_f1_rel_teacher", "latency_ms",
            "latency_p90_ms", "speedup", "sentences_per_s", "throughput_rel_teacher", "file_mb"]
    wide = [f"Test F1 by runtime (model rows in record order):\n\n{by_runtime(df, 'test_f1', '.4f')}",
            f"Batch-1 median latency in ms by runtime:\n\n{by_runtime(df, 'latency_ms', '.2f')}"]
    write_text(out_md, "\n\n".join([df[cols].to_markdown(index=False, floatfmt=".4g"), verdict, *wide]) + "\n")
    return df, best


def by_runtime(df, value, floatfmt):
    """One row per model, one column per runtime (in the records' order): the whole table at a glance."""
    wide = df.pivot(index="model", columns="runtime", values=value)
    wide = wide.loc[df["model"].unique(), df["runtime"].unique()]
    # a runtime a model was not measured in (bf16 where the CPU emulates it) is left blank, not "nan"
    return wide.astype(object).where(wide.notna(), None).to_markdown(floatfmt=floatfmt, missingval="")


def plot_deployment(record_paths, out, teacher="teacher"):
    """Test F1 against batch-1 latency, one marker per runtime, the teacher's fp32 point starred."""
    df = deployment_frame(record_paths, teacher)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    markers = "osD^v<>Pp*"
    for i, (runtime, g) in enumerate(df.groupby("runtime", sort=True)):
        ax.scatter(g["latency_ms"], g["test_f1"], marker=markers[i % len(markers)], s=30, label=runtime)
    t = df[(df["model"] == teacher) & (df["runtime"] == REFERENCE)]
    ax.scatter(t["latency_ms"], t["test_f1"], marker="*", s=220, color="black", label="teacher, pytorch_fp32", zorder=5)
    ax.set_xscale("log")
    ax.set_xlabel("CPU latency at batch 1 (ms, median, log scale)")
    ax.set_ylabel("test entity F1")
    ax.set_title("Every model in every runtime")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, out)
