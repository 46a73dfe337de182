"""Translation tables and figures, from metrics JSON and CSV logs only (no torch, no model).

Choices (which pruned model the summary names) are made on the validation split's greedy BLEU; the test
sets only show the chosen model's scores.
"""

import json
from pathlib import Path

import pandas as pd

from ..core.atomic import atomic_path, write_text
from ..core.figures import plt, save_figure
from ..methods.gate_plots import gate_gif, plot_gate_curves

TEACHER, BASELINE = "teacher", "copy_source"
CHOOSE_ON = "val_bleu_greedy"  # the column every choice is made on: greedy BLEU on the validation split
TOLERANCE = 1.0  # BLEU below the teacher's that a pruned model may lose and still qualify


def _load(path):
    return json.loads(Path(path).read_text())


def summary_frame(metric_paths, prune_reports):
    lambdas = {f"heads_l{lam}": lam for lam in (_load(p)["lambda"] for p in prune_reports)}
    rows = []
    for p in metric_paths:
        m = _load(p)
        row = {"model": m["model"], "lambda": lambdas.get(m["model"])}
        for decoder, s in m["test"].items():
            row[f"bleu_{decoder}"], row[f"chrf_{decoder}"] = s["bleu"], s["chrf"]
        for decoder, s in m.get("validation", {}).items():  # columns val_bleu_<decoder>: the choosing split
            row[f"val_bleu_{decoder}"], row[f"val_chrf_{decoder}"] = s["bleu"], s["chrf"]
        for name, scores in m.get("other_tests", {}).items():  # columns bleu_<decoder>_<test set>
            for decoder, s in scores.items():
                row[f"bleu_{decoder}_{name}"], row[f"chrf_{decoder}_{name}"] = s["bleu"], s["chrf"]
        if "structure" in m:
            st = m["structure"]
            row.update({"encoder_heads": f"{st['encoder_heads_kept']}/{st['encoder_heads_total']}",
                        "heads_removed_pct": round(100 * (1 - st["encoder_heads_kept"] / st["encoder_heads_total"]), 1),
                        "heads_per_layer": " ".join(map(str, st["encoder_heads_per_layer"])),
                        "params": m["parameters"]["total"], "mb_on_disk": round(m["bytes_on_disk"] / 2 ** 20, 2),
                        "sentences_per_s": m["speed"]["sentences_per_s"],
                        "latency_ms": m["speed"]["latency_ms_batch1_median"],
                        "encoder_ms": m["speed"].get("encoder_ms_per_sentence")})
        rows.append(row)
    df = pd.DataFrame(rows)
    teacher = df[df["model"] == TEACHER]
    if len(teacher):
        t = teacher.iloc[0]
        for col in [c for c in df if c.startswith(("bleu_", "val_bleu_"))]:
            df[f"delta_{col}"] = (df[col] - t[col]).round(2)
        df["speedup"] = (df["sentences_per_s"] / t["sentences_per_s"]).round(2)
        if df["encoder_ms"].notna().any():
            df["encoder_speedup"] = (t["encoder_ms"] / df["encoder_ms"]).round(2)
    if "params" in df:
        df["params"] = df["params"].astype("Int64")  # integers, though the baseline row has none
    order = {TEACHER: 0, BASELINE: 2}
    df["_o"] = [order.get(m, 1) for m in df["model"]]
    return df.sort_values(["_o", "lambda"], ascending=[True, False]).drop(columns="_o").reset_index(drop=True)


def greedy_bleu_columns(df):
    """(column, test set) of every greedy BLEU column: the test split's, then each extra test set's."""
    return [(c, c.removeprefix("bleu_greedy").lstrip("_") or "test") for c in df if c.startswith("bleu_greedy")]


def within(df, tolerance=TOLERANCE):
    """The pruned model chosen on validation: among those whose greedy validation BLEU is within
    `tolerance` of the teacher's, the one with the most heads removed (ties: the higher validation BLEU).
    None if none qualifies, if the metrics hold no validation scores (the test sets never choose), or if
    the criterion is vacuous (`vacuous`)."""
    teacher = df.loc[df["model"] == TEACHER]
    if CHOOSE_ON not in df or teacher.empty or pd.isna(teacher[CHOOSE_ON].iloc[0]) or vacuous(df, tolerance):
        return None
    ok = df[df["lambda"].notna() & (df[CHOOSE_ON] >= teacher[CHOOSE_ON].iloc[0] - tolerance)]
    return None if ok.empty else ok.sort_values(["heads_removed_pct", CHOOSE_ON], kind="stable").iloc[-1]


def vacuous(df, tolerance=TOLERANCE):
    """True when the teacher's greedy validation BLEU is at most `tolerance`: BLEU is never below 0, so every
    model, even one that writes nothing, would be "within tolerance" and the choice would say nothing.
    (The CPU configuration's TICO-19 validation split: teacher 0.88, and all 32 heads removed qualified.)"""
    t = df.loc[df["model"] == TEACHER, CHOOSE_ON] if CHOOSE_ON in df else pd.Series(dtype=float)
    return not t.empty and not pd.isna(t.iloc[0]) and t.iloc[0] <= tolerance


def choice_sentence(df, tolerance=TOLERANCE):
    """One Markdown sentence: the model chosen on validation BLEU, then its test BLEU on every test set."""
    if CHOOSE_ON not in df:
        return ("No pruned model is chosen: the metrics hold no validation scores (rerun `tr_evaluate`); "
                "the test sets are never used to choose.")
    t = df.loc[df["model"] == TEACHER, CHOOSE_ON].iloc[0]
    if vacuous(df, tolerance):
        return (f"No pruned model is chosen: the teacher's greedy validation BLEU ({t:g}) is not above the "
                f"tolerance ({tolerance:.1f}), so every model, even one that writes nothing, would be within it. "
                "The validation split cannot tell these models apart; give `translation.data.splits.validation` "
                "text of the training domain. The test sets are never used to choose.")
    best = within(df, tolerance)
    if best is None:
        return (f"Chosen on validation: no pruned model keeps greedy validation BLEU within {tolerance:.1f} of the "
                f"teacher's ({t:g}).")
    tests = ", ".join(f"{name} {best[column]:g} ({best['delta_' + column]:+.2f})"
                      for column, name in greedy_bleu_columns(df))
    return (f"Chosen on validation: the most encoder heads removed with greedy validation BLEU within "
            f"{tolerance:.1f} of the teacher's ({t:g}) is **{best['model']}** (lambda {best['lambda']:g}): "
            f"{best['encoder_heads']} encoder heads kept ({best['heads_removed_pct']:g}% removed), validation "
            f"BLEU {best[CHOOSE_ON]:g} ({best['delta_' + CHOOSE_ON]:+.2f}). Shown on test, its greedy BLEU "
            f"(against the teacher): {tests}.")


def write_summary(metric_paths, prune_reports, csv_out, md_out):
    df = summary_frame(metric_paths, prune_reports)
    with atomic_path(csv_out) as tmp:
        df.to_csv(tmp, index=False)
    lines = ["# Translation: teacher, encoder-head pruning, copy-the-source baseline", "",
             "Test split (columns ending in a test-set name: that extra test set; `val_` columns: the validation "
             "split, greedy decoding only, the split the choice below is made on); BLEU and chrF from sacrebleu on "
             "detokenized text. `delta_` columns are BLEU minus "
             "the teacher's; `speedup` is greedy decoding sentences/s relative to the teacher; `encoder_ms` is "
             "the encoder alone per test sentence (batches of the evaluation batch size, best of 3).", "",
             df.astype(object).where(df.notna(), None).to_markdown(index=False, floatfmt="g", missingval=""), ""]
    if (df["model"] == TEACHER).any() and df["lambda"].notna().any():
        lines += [choice_sentence(df), ""]
    write_text(md_out, "\n".join(lines) + "\n")
    return df


def write_samples(metric_paths, out, n=8):
    """Markdown tables of sample translations: source, reference, then every model's decoders."""
    models = [m for m in map(_load, metric_paths) if m.get("samples")]  # the copy baseline has none
    samples = next(m for m in models if m["model"] == TEACHER)["samples"][:n]
    lines = ["# Sample test translations", ""]
    for i, s in enumerate(samples):
        lines += [f"**{i + 1}.** {s['source']}", "", "| | translation |", "|---|---|",
                  f"| reference | {s['reference']} |"]
        for m in models:
            decoders = [k for k in m["samples"][i] if k not in ("source", "reference")]
            for k in decoders:
                lines.append(f"| {m['model']} ({k}) | {m['samples'][i][k]} |")
        lines.append("")
    write_text(out, "\n".join(lines))


def _curves(ax, frame, x, ys, labels):
    for y, label in zip(ys, labels):
        if y in frame:
            ax.plot(frame[x], frame[y], label=label, marker="o" if len(frame) < 40 else None, ms=3)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot_loss(steps_csv, evals_csv, out, title="Teacher"):
    steps, evals = pd.read_csv(steps_csv), pd.read_csv(evals_csv)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.plot(steps["step"], steps["loss"], alpha=0.3, label="train (label-smoothed)")
    ax.plot(steps["step"], steps["loss"].rolling(10, min_periods=1).mean(), color=ax.lines[-1].get_color(),
            label="train, mean of 10")
    if "task" in steps:
        ax.plot(steps["step"], steps["task"].rolling(10, min_periods=1).mean(), label="train task loss, mean of 10")
    _curves(ax, evals, "step", ["val_loss"], ["validation cross-entropy"])
    ax.set(xlabel="optimizer step", ylabel="loss per token", title=f"{title}: loss")
    save_figure(fig, out)


def plot_lr(steps_csv, out, title="Teacher"):
    steps = pd.read_csv(steps_csv)
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    _curves(ax, steps, "step", ["lr"], ["learning rate"])
    ax.set(xlabel="optimizer step", ylabel="learning rate", title=f"{title}: learning-rate schedule")
    save_figure(fig, out)


def plot_bleu(evals_csv, out, title="Teacher", teacher_evals=None):
    evals = pd.read_csv(evals_csv)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    _curves(ax, evals, "step", ["val_bleu", "val_chrf"], ["validation BLEU", "validation chrF"])
    if teacher_evals:
        t = pd.read_csv(teacher_evals)["val_bleu"].max()
        ax.axhline(t, color="black", ls="--", lw=1, label=f"teacher's best {t:.2f}")
        ax.legend(fontsize=8)
    if "heads_open" in evals:
        twin = ax.twinx()
        twin.step(evals["step"], evals["heads_open"], where="post", color="grey", lw=1)
        twin.set_ylabel("encoder heads open (grey)")
        twin.set_ylim(0, None)
    ax.set(xlabel="optimizer step", ylabel="score (greedy, validation subset)", title=f"{title}: BLEU")
    save_figure(fig, out)


def plot_heads_bleu(metric_paths, prune_reports, out):
    """Greedy BLEU against the share of encoder heads removed: validation (where the choice is made,
    with its threshold) and one line per test set; the model chosen on validation is ringed on each."""
    df = summary_frame(metric_paths, prune_reports)
    pruned, t = df[df["lambda"].notna()].sort_values("heads_removed_pct"), df[df["model"] == TEACHER].iloc[0]
    base = df[df["model"] == BASELINE]
    chosen = within(df)
    lines = ([(CHOOSE_ON, "validation", "C7", "--")] if CHOOSE_ON in df else []) + [
        (column, name, f"C{i}", "-") for i, (column, name) in enumerate(greedy_bleu_columns(df))]
    # every line has its points at the same x (heads removed): name lambda once, on the highest line,
    # where the labels do not overlap the near-zero out-of-domain lines
    labelled = max(lines, key=lambda line: pruned[line[0]].max())[0]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for column, name, color, ls in lines:
        ax.plot(pruned["heads_removed_pct"], pruned[column], marker="o", color=color, ls=ls, label=f"pruned, {name}")
        if column == labelled:
            for _, r in pruned.iterrows():
                ax.annotate(f"lambda={r['lambda']:g}", (r["heads_removed_pct"], r[column]), fontsize=7,
                            xytext=(4, 4), textcoords="offset points")
        ax.scatter([0], [t[column]], marker="*", s=200, color=color, edgecolor="black", zorder=5,
                   label=f"teacher, {name}")
        if column == CHOOSE_ON:  # the threshold the choice is made against
            ax.axhline(t[column] - TOLERANCE, color=color, ls=":", lw=1, label=f"teacher - {TOLERANCE:.1f} BLEU, {name}")
        elif len(base) and pd.notna(base.iloc[0][column]):
            ax.axhline(base.iloc[0][column], color=color, ls="--", lw=1, label=f"copy the source, {name}")
        if chosen is not None:
            ax.scatter([chosen["heads_removed_pct"]], [chosen[column]], s=160, facecolors="none",
                       edgecolors="black", lw=1.5, zorder=6)
    title = "Encoder-head pruning: BLEU against heads removed"
    if chosen is not None:
        title += f"\nringed: {chosen['model']}, chosen on validation BLEU (within {TOLERANCE:.1f} of the teacher)"
    elif vacuous(df):
        title += f"\nnone chosen: the teacher's validation BLEU is not above {TOLERANCE:.1f}"
    ax.set(xlabel="encoder heads removed (%)", ylabel="BLEU (greedy)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, out)


def _figure(smk, fn, *inputs, **kw):
    fn(*[smk.input[k] for k in inputs], smk.output[0], **kw)


PLOTS = {
    "loss": lambda smk: _figure(smk, plot_loss, "steps", "evals", title=smk.params.title),
    "lr": lambda smk: _figure(smk, plot_lr, "steps", title=smk.params.title),
    "bleu": lambda smk: plot_bleu(smk.input.evals, smk.output[0], smk.params.title, smk.input.get("teacher_evals")),
    "popen": lambda smk: plot_gate_curves(smk.input.gates, smk.output[0], title=smk.params.title),
    "gif": lambda smk: gate_gif(smk.input.gates, smk.output[0], title=smk.params.title),
    "heads_bleu": lambda smk: plot_heads_bleu(list(smk.input.metrics), list(smk.input.prune_reports), smk.output[0]),
}
