"""Figures comparing compressed variants, from metrics JSON and step logs only (no torch).

The Pareto front is chosen on validation F1 and then shown at its members' test F1: the test split
never picks anything.
"""

import json
from pathlib import Path

import pandas as pd

from ..core.figures import plt, save_figure

AXES = {
    "params": ("parameters[total]", "parameters", True),
    "latency": ("speed[latency_ms_batch1_median]", "CPU latency at batch 1 (ms, median)", False),
}


def load_metrics(paths):
    rows = []
    for p in paths:
        m = json.loads(Path(p).read_text())
        v = m.get("variant") or {}
        last = (v.get("steps") or [{}])[-1].get("params", {})
        rows.append({"model": m["model"], "val_f1": m["validation"]["f1"], "test_f1": m["test"]["f1"],
                     "params": m["parameters"]["total"],
                     "latency": m["speed"]["latency_ms_batch1_median"], "method": v.get("method", "fine-tune"),
                     "sparsity": m.get("structure", {}).get("sparsity", 0.0),
                     "pattern": last.get("pattern", "unstructured"), "lambda": last.get("lambda"),
                     "heads_kept": m.get("structure", {}).get("heads_kept"),
                     "heads_total": m.get("structure", {}).get("heads_total")})
    return pd.DataFrame(rows)


CHOOSE_ON = "val_f1"  # the Pareto front is chosen on validation F1, never on test F1


def pareto_front(df, x):
    """Rows not dominated by another with smaller-or-equal x and higher-or-equal validation F1, in
    order of x. Chosen on validation only; the rows keep their test F1, which is what the figure shows."""
    front, best = [], float("-inf")
    for _, r in df.sort_values([x, CHOOSE_ON], ascending=[True, False], kind="stable").iterrows():
        if r[CHOOSE_ON] > best:
            front.append(r)
            best = r[CHOOSE_ON]
    return pd.DataFrame(front, columns=df.columns)


def plot_pareto(metric_paths, axis, out, teacher="teacher"):
    df = load_metrics(metric_paths)
    _, label, logx = AXES[axis]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for method, g in df[df["model"] != teacher].groupby("method"):
        ax.scatter(g[axis], g["test_f1"], label=method, s=28)
    t = df[df["model"] == teacher]
    ax.scatter(t[axis], t["test_f1"], marker="*", s=220, color="black", label="teacher", zorder=5)
    front = pareto_front(df, axis)  # chosen on validation F1, drawn through the members' test F1
    ax.plot(front[axis], front["test_f1"], color="grey", lw=1, ls="--", marker="o", mfc="none", ms=9,
            label="Pareto front on validation F1\n(at its members' test F1)")
    for _, r in front.iterrows():  # names on the front only: the rest cluster at the teacher's size
        ax.annotate(r["model"], (r[axis], r["test_f1"]), fontsize=6, xytext=(3, -8), textcoords="offset points")
    if logx:
        ax.set_xscale("log")
    ax.set(xlabel=label, ylabel="test entity F1",
           title=f"Test F1 against {label.split(' (')[0]}; front chosen on validation F1")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, out)


def plot_pruning(metric_paths, out, teacher_metrics=None):
    df = load_metrics(metric_paths)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colors = {m: f"C{i}" for i, m in enumerate(sorted(df["method"].unique()))}  # one colour per method
    for (method, pattern), g in df.groupby(["method", "pattern"]):
        g = g.sort_values("sparsity")
        if pattern == "unstructured":
            ax.plot(g["sparsity"], g["test_f1"], marker="o", color=colors[method], label=method)
        else:
            ax.scatter(g["sparsity"], g["test_f1"], marker="s", s=50, color=colors[method], edgecolor="black",
                       zorder=3, label=f"{method} {pattern}")
    if teacher_metrics:
        f1 = json.loads(Path(teacher_metrics).read_text())["test"]["f1"]
        ax.axhline(f1, color="black", lw=1, ls="--", label=f"teacher {f1:.4f}")
        ax.axhline(0.98 * f1, color="grey", lw=0.8, ls=":", label="98% of teacher")
    ax.set(xlabel="share of zero weights in the encoder's linear layers", ylabel="test entity F1",
           title="One-shot pruning without retraining")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, out)


def plot_losses(step_csvs, labels, out):
    """Total loss and each logged part (ce, kd, hidden, attention, expected_heads) per training step."""
    frames = {label: pd.read_csv(p) for p, label in zip(step_csvs, labels)}
    parts = [c for c in ("loss", "ce", "kd", "hidden", "attention", "task", "expected_heads")
             if any(c in df for df in frames.values())]
    cols = min(4, len(parts))
    rows = -(-len(parts) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(parts):]:
        ax.set_visible(False)
    for ax, part in zip(axes.flat, parts):
        for k, (label, df) in enumerate(frames.items()):  # one colour per step in every panel
            if part in df:
                ax.plot(df["step"], df[part].rolling(5, min_periods=1).mean(), label=label, lw=1, color=f"C{k % 10}")
        ax.set(xlabel="optimizer step", title=part)
        if part != "expected_heads":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6)
    fig.suptitle("Training losses of the compression steps (mean of 5 logged points)", y=1.01)
    fig.tight_layout()
    save_figure(fig, out)


def plot_heads_f1(metric_paths, out, teacher_metrics=None):
    df = load_metrics(metric_paths).sort_values("heads_kept")
    fig, ax = plt.subplots(figsize=(6.4, 4))
    ax.plot(df["heads_kept"], df["test_f1"], marker="o")
    for _, r in df.iterrows():
        ax.annotate(f"lambda={r['lambda']}", (r["heads_kept"], r["test_f1"]), fontsize=7, xytext=(4, -10),
                    textcoords="offset points")
    if teacher_metrics:
        t = json.loads(Path(teacher_metrics).read_text())
        heads = t.get("structure", {}).get("heads_total", df["heads_total"].max())
        ax.scatter([heads], [t["test"]["f1"]], marker="*", s=200, color="black", label="teacher")
        ax.axhline(0.98 * t["test"]["f1"], color="grey", lw=0.8, ls=":", label="98% of teacher")
        ax.legend(fontsize=7)
    ax.set(xlabel="attention heads kept", ylabel="test entity F1", title="Head pruning: F1 against heads kept")
    ax.grid(alpha=0.3)
    save_figure(fig, out)
