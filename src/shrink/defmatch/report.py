"""Tables, figures and the report section of definition matching, from cached results (no torch)."""

import json
from pathlib import Path

import pandas as pd

from ..core.atomic import write_text


def _results(paths):
    return [json.loads(Path(p).read_text()) for p in paths]


def summary_frame(paths):
    rows = []
    for r in _results(paths):
        rows.append({"layers": r["layers"], "head": r["head"], "head_params": r["params"],
                     "epoch": r["selected_epoch"], "val_acc": r["validation"]["accuracy"],
                     "test_acc": r["test"]["accuracy"], "test_f1": r["test"]["f1"],
                     "majority_acc": r["majority"]["test"]["accuracy"], "majority_f1": r["majority"]["test"]["f1"],
                     "test_acc_over_majority": r["test"]["accuracy"] - r["majority"]["test"]["accuracy"]})
    return pd.DataFrame(rows).sort_values("val_acc", ascending=False)


def write_tables(paths, out_csv, out_md):
    df = summary_frame(paths)
    sizes = _results(paths)[0]["sizes"]
    header = (f"Frozen-encoder features, one head per row; validation = {sizes['validation']} train items whose target "
              f"words are not in the other {sizes['train']}; test = the labelled dev set ({sizes['test']} items). "
              "The epoch is chosen on validation accuracy; rows are sorted by it.\n\n")
    write_text(out_csv, df.to_csv(index=False, float_format="%.6g"))
    write_text(out_md, header + df.to_markdown(index=False, floatfmt=".4g") + "\n")


def plot_curves(curve_paths, out):
    from ..core.figures import plt, save_figure

    frames = {(Path(p).parent.name, Path(p).stem): pd.read_csv(p) for p in curve_paths}
    layers = sorted({k[0] for k in frames})
    fig, axes = plt.subplots(1, len(layers), figsize=(4.2 * len(layers), 3.6), squeeze=False, sharey=True)
    for ax, lay in zip(axes[0], layers):
        for (l, head), df in frames.items():
            if l != lay:
                continue
            line, = ax.plot(df["epoch"], df["val_acc"], label=f"{head} val")
            ax.plot(df["epoch"], df["train_acc"], "--", color=line.get_color(), alpha=0.5)
            chosen = df[df["selected"] == 1]
            ax.scatter(chosen["epoch"], chosen["val_acc"], color=line.get_color(), zorder=3)
        ax.set(title=lay, xlabel="epoch", ylabel="accuracy (dashed: train)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Learning curves; dots mark the epoch kept (best validation accuracy)")
    save_figure(fig, out)


def plot_size_curves(result_paths, out):
    from ..core.figures import plt, save_figure

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for r in _results(result_paths):
        df = pd.DataFrame(r["size_curve"])
        ax.plot(df["train_items"], df["validation_accuracy"], "o-", label=f"{r['layers']} / {r['head']}")
    ax.set(xlabel="training items", ylabel="validation accuracy", title="Accuracy against training-set size")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    save_figure(fig, out)


def plot_accuracy(result_paths, out):
    from ..core.figures import plt, save_figure

    results = _results(result_paths)
    labels = [f"{r['layers']}\n{r['head']}" for r in results]
    fig, ax = plt.subplots(figsize=(max(6.4, 0.7 * len(results)), 3.8))
    ax.bar(range(len(results)), [r["test"]["accuracy"] for r in results])
    ax.axhline(results[0]["majority"]["test"]["accuracy"], color="k", ls="--", label="majority class")
    ax.set_xticks(range(len(results)), labels, rotation=60, fontsize=6)
    ax.set(ylabel="test (dev) accuracy", title="Definition matching: test accuracy per features and head")
    ax.legend(fontsize=7)
    save_figure(fig, out)


def write_report(table_md, figures, out):
    out_dir = Path(out).parent
    lines = ["# Definition matching", "", Path(table_md).read_text(), "## Figures", ""]
    lines += [f"![{Path(f).stem}]({Path(f).relative_to(out_dir)})" for f in figures]
    write_text(out, "\n".join(lines) + "\n")
