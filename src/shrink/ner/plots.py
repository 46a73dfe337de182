"""Figures from cached logs and metrics. Imports neither torch nor transformers, so replotting takes seconds."""

import json
from pathlib import Path

import pandas as pd

from ..core.figures import plt, save_figure


def _curve(frames, column, ylabel, title, out, smooth=0, logy=False):
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for name, df in frames.items():
        if smooth and len(df) > smooth:
            ax.plot(df["step"], df[column], alpha=0.25)
            ax.plot(df["step"], df[column].rolling(smooth, min_periods=1).mean(), label=f"{name} (mean of {smooth})",
                    color=ax.lines[-1].get_color())
        else:
            ax.plot(df["step"], df[column], label=name)
    ax.set(xlabel="optimizer step", ylabel=ylabel, title=title)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, out)


def plot_loss(step_csvs, out):
    frames = {Path(p).parent.name: pd.read_csv(p) for p in step_csvs}
    _curve(frames, "loss", "training loss", "Training loss", out, smooth=10, logy=True)


def plot_lr(step_csvs, out):
    frames = {Path(p).parent.name: pd.read_csv(p) for p in step_csvs}
    _curve(frames, "lr", "learning rate", "Learning-rate schedule", out)


def plot_val_f1(epoch_csvs, out):
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for p in epoch_csvs:
        df = pd.read_csv(p)
        ax.plot(df["epoch"], df["val_f1"], marker="o", label=Path(p).parent.name)
        best = df.loc[df["val_f1"].idxmax()]
        ax.annotate(f"best {best['val_f1']:.4f}", (best["epoch"], best["val_f1"]),
                    textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)
    ax.margins(y=0.15)  # room for the annotation above the best point
    ax.set(xlabel="epoch", ylabel="validation entity F1 (training precision)",
           title="Validation F1 per epoch (checkpoint selection)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, out)


def plot_per_type_f1(metrics_json, out):
    m = json.loads(Path(metrics_json).read_text())
    types = sorted(m["test"]["per_type"])
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    width = 0.4
    for k, split in enumerate(("validation", "test")):
        vals = [m[split]["per_type"].get(t, {}).get("f1", 0.0) for t in types]
        bars = ax.bar([i + (k - 0.5) * width for i in range(len(types))], vals, width, label=split)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    support = [m["test"]["per_type"][t]["support"] for t in types]
    ax.set_xticks(range(len(types)), [f"{t}\n(n={s})" for t, s in zip(types, support)])
    ax.set(ylabel="entity F1", ylim=(0, 1.08), title=f"Per-type F1: {m['model']} (test support below)")
    ax.legend(loc="lower right")
    save_figure(fig, out)
