"""The NER Pareto front is chosen on validation F1 and shown at test F1 (issue 16). No torch, no model."""

import json

import pandas as pd

from shrink.ner import compression_plots as cp
from shrink.ner.tables import summary_frame

# (model, parameters, validation F1, test F1): validation and test disagree on who dominates whom
ROWS = [
    ("teacher", 100, 0.90, 0.86),
    ("a", 50, 0.89, 0.74),  # on the validation front; dominated by c on test
    ("b", 60, 0.85, 0.84),  # dominated by a on validation; on the test front
    ("c", 20, 0.70, 0.75),  # the smallest: on every front
    ("d", 80, 0.88, 0.87),  # dominated by a on validation; beats the teacher on test
]


def frame():
    return pd.DataFrame(ROWS, columns=["model", "params", "val_f1", "test_f1"])


def test_front_follows_validation_not_test():
    df = frame()
    front = cp.pareto_front(df, "params")
    assert list(front["model"]) == ["c", "a", "teacher"]
    # the test F1 shown for the front is each member's own, unchanged
    assert list(front["test_f1"]) == [0.75, 0.74, 0.86]
    # what a test-chosen front would have been: the case is one where the two differ
    by_test = cp.pareto_front(df.assign(val_f1=df["test_f1"]), "params")
    assert list(by_test["model"]) == ["c", "b", "d"]


def test_front_ignores_test_f1_entirely():
    df = frame()
    shuffled = df.assign(test_f1=df["test_f1"].iloc[::-1].to_numpy())  # any test F1: the same front
    assert list(cp.pareto_front(shuffled, "params")["model"]) == list(cp.pareto_front(df, "params")["model"])


def test_ties_in_size_keep_the_higher_validation_f1_only():
    df = pd.concat([frame(), pd.DataFrame([("a_twin", 50, 0.87, 0.99)], columns=frame().columns)])
    assert list(cp.pareto_front(df, "params")["model"]) == ["c", "a", "teacher"]


def metrics_json(model, params, val, test, latency=5.0):
    return {"model": model, "validation": {"f1": val}, "test": {"f1": test, "precision": test, "recall": test},
            "parameters": {"total": params, "non_embedding": params, "nonzero": params},
            "speed": {"latency_ms_batch1_median": latency, "throughput_tokens_per_s": 1.0,
                      "throughput_sentences_per_s": 1.0},
            "disk_bytes": 4 * params, "peak_rss_mb": 1.0,
            "variant": None if model == "teacher" else {"method": "prune", "steps": []}}


def test_pareto_figure_reads_validation_from_metrics(tmp_path):
    paths = []
    for model, params, val, test in ROWS:
        p = tmp_path / f"{model}.json"
        p.write_text(json.dumps(metrics_json(model, params, val, test)))
        paths.append(p)
    df = cp.load_metrics(paths)
    assert list(cp.pareto_front(df, "params")["model"]) == ["c", "a", "teacher"]
    out = tmp_path / "pareto_params.png"
    cp.plot_pareto(paths, "params", out)
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 3000


def test_summary_table_gives_validation_f1_relative_to_the_teacher():
    df = summary_frame([metrics_json(m, p, v, t) for m, p, v, t in ROWS]).set_index("model")
    assert df.loc["a", "val_f1_rel_teacher"] == 0.89 / 0.90
    assert df.loc["a", "test_f1_rel_teacher"] == 0.74 / 0.86
