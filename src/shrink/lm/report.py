"""Tables, figures and the report section of the language-model task. Reads cached JSON/CSV only
(no torch), so every table and figure regenerates in seconds without retraining."""

import json
from pathlib import Path

import pandas as pd

from ..core.atomic import write_text
from ..core.errors import ShrinkError


def _load(paths):
    return [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]


def _write(df, csv_path, md_path, header=""):
    write_text(csv_path, df.to_csv(index=False, float_format="%.6g"))
    write_text(md_path, header + df.to_markdown(index=False, floatfmt=".4g") + "\n")


ARCH_COLUMNS = ["arch", "params", "width", "tokens", "final_train_loss", "val_loss", "val_ppl", "val_bits_per_char",
                "train_tokens_per_s", "train_minutes", "gen_tokens_per_s", "gen_ms_per_token", "first_token_ms",
                "peak_rss_mb"]


def architecture_frame(metrics, main):
    rows = [m for m in metrics if m["tokenizer"] == main]
    if len({m["tokens"] for m in rows}) > 1:  # the comparison is only fair on the same tokens
        counts = [(m["arch"], m["tokens"]) for m in rows]
        raise ShrinkError(f"architectures trained on different token counts: {counts}")
    df = pd.DataFrame(rows)
    df["train_minutes"] = df["train_seconds"] / 60
    return df[ARCH_COLUMNS]


def tokenizer_frame(metrics):
    df = pd.DataFrame([m for m in metrics if m["arch"] == "transformer"])
    df["train_chars_per_s"] = df["train_tokens_per_s"] * df["chars_per_token"]
    df["train_minutes"] = df["train_seconds"] / 60
    cols = ["tokenizer", "vocab_size", "chars_per_token", "width", "params", "val_loss", "val_bits_per_char",
            "train_tokens_per_s", "train_chars_per_s", "gen_tokens_per_s", "train_minutes"]
    return df[cols].sort_values("vocab_size")


def cleaning_frame(report):
    from .clean import ORDER

    rows = [{"filter": name, **report[name]} for name in ORDER]
    rows.append({"filter": "total", "rows_dropped": report["rows_in"] - report["rows_out"],
                 "chars_removed": report["chars_in"] - report["chars_out"]})
    return pd.DataFrame(rows)


def sorting_frame(results):
    rows = [{"arch": r["arch"], "params": r["params"], **{k: v for k, v in row.items() if k != "per_position_curve"}}
            for r in results for row in r["by_length"]]
    return pd.DataFrame(rows)


def arc_frame(results):
    rows = []
    for r in results:
        for split, scores in r["zero_shot"].items():
            for norm, s in scores.items():
                rows.append({"arch": r["arch"], "mode": "zero-shot", "split": split, "score": norm, **s})
        for norm, s in r["finetuned"]["test"].items():
            rows.append({"arch": r["arch"], "mode": "fine-tuned", "split": "test", "score": norm, **s})
    # the same questions for every architecture, so the length baselines are listed once
    for name, s in results[0].get("baselines", {}).get("test", {}).items():
        rows.append({"arch": f"({name} option)", "mode": "baseline", "split": "test", "score": "length", **s})
    return pd.DataFrame(rows)


def samples_markdown(samples_by_arch):
    lines = ["# Samples from fixed prompts", ""]
    for arch, samples in samples_by_arch.items():
        lines += [f"## {arch}", ""]
        for s in samples:
            lines += [f"**{s['prompt']}**{s['continuation']}", ""]
    return "\n".join(lines)


def write_tables(smk):
    metrics = _load(smk.input.metrics)
    main = smk.params.main
    arch = architecture_frame(metrics, main)
    budget = metrics[0]["budget"]
    header = (f"All architectures: tokenizer {main}, {int(arch['tokens'].iloc[0]):,} training tokens (same windows, "
              f"same order), parameter budget {budget:,}. val_ppl = exp(val_loss), the mean token NLL over the "
              f"whole validation split.\n\n")
    _write(arch, smk.output.architectures_csv, smk.output.architectures_md, header)
    _write(tokenizer_frame(metrics), smk.output.tokenizers_csv, smk.output.tokenizers_md,
           "Transformer at the same budget and steps per tokenizer; bits per character compare across tokenizers, "
           "per-token loss does not.\n\n")
    report = json.loads(Path(smk.input.clean_report).read_text(encoding="utf-8"))
    split = (f"Validation files (held out whole): {', '.join(report['validation_files'])} "
             f"({report['validation_chars']:,} characters); train: {len(report['train_files'])} files "
             f"({report['train_chars']:,} characters).\n\n")
    _write(cleaning_frame(report), smk.output.cleaning_csv, smk.output.cleaning_md, split)
    if "sorting" in smk.input.keys():
        _write(sorting_frame(_load(smk.input.sorting)), smk.output.sorting_csv, smk.output.sorting_md)
    if "arc" in smk.input.keys():
        _write(arc_frame(_load(smk.input.arc)), smk.output.arc_csv, smk.output.arc_md,
               "Accuracy with its Wilson 95% interval; chance is the mean of 1/choices over the items, and "
               "above_chance means the whole interval lies above it. score: sum or per-token mean option "
               "log-likelihood.\n\n")
    by_arch = {m["arch"]: s for m, s in zip(metrics, _load(smk.input.samples)) if m["tokenizer"] == main}
    write_text(smk.output.samples, samples_markdown(by_arch))


def write_plots(smk):
    from ..core.figures import plt, save_figure

    main, runs = smk.params.main, [tuple(r) for r in smk.params.runs]
    evals = {r: pd.read_csv(p) for r, p in zip(runs, smk.input.evals)}
    steps = {r: pd.read_csv(p) for r, p in zip(runs, smk.input.steps)}
    axes = (("step", "loss_vs_steps", "optimizer step"), ("elapsed_s", "loss_vs_time", "training seconds"))
    for x, name, label in axes:
        fig, ax = plt.subplots(figsize=(6.4, 3.8))
        for (tok, arch), df in evals.items():
            if tok != main:
                continue
            line, = ax.plot(df[x], df["val_loss"], label=f"{arch} val")
            ax.plot(df[x], df["train_loss"], "--", color=line.get_color(), alpha=0.6, label=f"{arch} train")
        ax.set(xlabel=label, ylabel="loss (nats/token)", title=f"Loss against {label} ({main})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        save_figure(fig, getattr(smk.output, name))
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    for (tok, arch), df in steps.items():
        if tok == main:
            ax.plot(df["step"], df["lr"], label=arch)
    ax.set(xlabel="optimizer step", ylabel="learning rate", title="Learning rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, smk.output.lr)
    tok = pd.read_csv(smk.input.tokenizers)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, col, ylabel in zip(axes, ("val_bits_per_char", "train_chars_per_s"),
                               ("validation bits per character", "training characters / s")):
        ax.plot(tok["vocab_size"], tok[col], "o-")
        for _, r in tok.iterrows():
            ax.annotate(r["tokenizer"], (r["vocab_size"], r[col]), fontsize=7)
        ax.set(xscale="log", xlabel="vocabulary size", ylabel=ylabel)
        ax.grid(alpha=0.3)
    fig.suptitle("Tokenizer: vocabulary size against loss and speed (transformer, same budget)")
    save_figure(fig, smk.output.tokenizers)
    if smk.input.sorting:
        results = _load(smk.input.sorting)
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
        for r in results:
            df = pd.DataFrame(r["by_length"])
            a1.plot(df["length"], df["exact_match"], "o-", label=r["arch"])
            a2.plot(df["length"], df["per_position_accuracy"], "o-", label=r["arch"])
        a1.set(xlabel="sequence length N", ylabel="exact match", title="Sorting: whole sequence right")
        a2.set(xlabel="sequence length N", ylabel="per-position accuracy", title="Sorting: positions right")
        for ax in (a1, a2):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        save_figure(fig, smk.output.sorting_by_length)
        fig, ax = plt.subplots(figsize=(6.4, 3.8))
        for r in results:
            longest = max(r["by_length"], key=lambda row: row["length"])
            curve = longest["per_position_curve"]
            ax.plot(range(1, len(curve) + 1), curve, label=r["arch"])
        ax.set(xlabel="output position", ylabel="accuracy",
               title=f"Sorting N={longest['length']}: accuracy by position")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        save_figure(fig, smk.output.sorting_by_position)


def write_report(smk):
    tables = {Path(p).name: Path(p).read_text(encoding="utf-8") for p in smk.input.tables}
    out = Path(smk.output[0]).parent
    lines = ["# Language models", ""]
    sections = [("Architectures", "architectures.md"), ("Tokenizers", "tokenizers.md"),
                ("Cleaning", "cleaning.md"), ("Long-sequence sorting", "sorting.md"), ("ARC-Easy", "arc.md")]
    for title, name in sections:
        if name in tables:
            lines += [f"## {title}", "", tables[name]]
    lines += ["## Figures", ""]
    lines += [f"![{Path(f).stem}]({Path(f).relative_to(out)})" for f in smk.input.figures]
    lines += ["", tables["samples.md"].replace("# Samples", "## Samples", 1)]
    write_text(smk.output[0], "\n".join(lines) + "\n")
