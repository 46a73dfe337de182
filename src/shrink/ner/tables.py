"""Summary table of every evaluated model, relative to the teacher. Reads metrics JSON only.

The table chooses nothing; a choice made from it (a variant that keeps a share of the teacher's F1)
reads `val_f1_rel_teacher`, and `test_f1_rel_teacher` only shows how the choice holds on test.
"""

import json
from pathlib import Path

import pandas as pd

from ..core.atomic import write_text
from .recipes import format_step


def read_metrics(metric_paths):
    return [json.loads(Path(path).read_text()) for path in metric_paths]


def summary_frame(metrics, teacher="teacher"):
    """One row per metrics dict (read_metrics), relative to the teacher's."""
    rows = []
    for m in metrics:
        p, s = m["parameters"], m["speed"]
        v, st = m.get("variant") or {}, m.get("structure") or {}
        rows.append({
            "model": m["model"],
            "method": v.get("method", ""),
            # every setting of every step (nested ones too), from the steps the metrics record
            "recipe": " > ".join(format_step(st_["method"], st_["params"]) for st_ in v["steps"])
            if v.get("steps") else v.get("recipe", ""),
            "val_f1": m["validation"]["f1"],
            "test_f1": m["test"]["f1"],
            "test_precision": m["test"]["precision"],
            "test_recall": m["test"]["recall"],
            "params": p["total"],
            "params_non_embedding": p["non_embedding"],
            "params_nonzero": p["nonzero"],
            "disk_mb": m["disk_bytes"] / 2**20,
            "latency_ms": s["latency_ms_batch1_median"],
            "tokens_per_s": s["throughput_tokens_per_s"],
            "sentences_per_s": s["throughput_sentences_per_s"],
            "peak_rss_mb": m["peak_rss_mb"],
            "sparsity": st.get("sparsity", 0.0),
            "heads_kept": f"{st['heads_kept']}/{st['heads_total']}" if "heads_kept" in st else "",
            "bits": st.get("bits", 32),
        })
    df = pd.DataFrame(rows)
    if teacher not in set(df["model"]):
        raise ValueError(f"no metrics for the teacher '{teacher}' among {list(df['model'])}")
    ref = df.set_index("model").loc[teacher]
    df["test_f1_rel_teacher"] = df["test_f1"] / ref["test_f1"] if ref["test_f1"] else float("nan")
    df["val_f1_rel_teacher"] = df["val_f1"] / ref["val_f1"] if ref["val_f1"] else float("nan")
    df["compression"] = ref["params"] / df["params"]
    df["speedup"] = ref["latency_ms"] / df["latency_ms"]
    return df


def measured_on(metrics):
    """One line naming the machine(s) and precisions the metrics come from (metrics before they were
    recorded are left out)."""
    machines, evaluated, trained = set(), set(), set()
    for m in metrics:
        if "machine" in m:
            c = m["machine"]
            machines.add(f"{c['cpu']} (torch capability {c['cpu_capability']}, native bf16 "
                         f"{'yes' if c['cpu_bf16_native'] else 'no'}), {c['threads']} threads"
                         + (f", GPU {c['gpu']}" if c.get("gpu") else ""))
            evaluated.add(m["precision"]["evaluate"])
            trained.add(m["precision"]["train"] or "untrained")
    if not machines:
        return "Measured on: not recorded."
    return (f"Measured on: {'; '.join(sorted(machines))}. Evaluation precision: {', '.join(sorted(evaluated))}; "
            f"training precision: {', '.join(sorted(trained))}.")


def write_summary(metric_paths, out_csv, out_md, teacher="teacher"):
    metrics = read_metrics(metric_paths)  # once, for the table and the machine line
    df = summary_frame(metrics, teacher)
    write_text(out_csv, df.to_csv(index=False, float_format="%.6g"))
    show = df[["model", "method", "test_f1", "test_f1_rel_teacher", "val_f1", "val_f1_rel_teacher", "params",
               "compression", "sparsity", "heads_kept", "bits", "disk_mb", "latency_ms", "speedup", "tokens_per_s",
               "peak_rss_mb", "recipe"]]
    write_text(out_md, show.to_markdown(index=False, floatfmt=".4g") + "\n\n" + measured_on(metrics) + "\n")
    return df
