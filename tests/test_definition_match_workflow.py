"""End to end: definition matching on a generated WiC-style corpus with a tiny random encoder."""

import json

import pandas as pd
import pytest
from conftest import DM_CONFIG, completed_run

from shrink.core.precision import cpu_capability, resolve

pytestmark = pytest.mark.slow


def test_definition_match_runs_end_to_end(tmp_path):
    completed_run(tmp_path, configfiles=[DM_CONFIG])
    res = tmp_path / "results" / "definition_match"
    df = pd.read_csv(res / "tables" / "summary.csv")
    assert sorted(zip(df["layers"], df["head"])) == sorted(
        (lay, head) for lay in ("sum_last4", "last") for head in ("logreg", "towers128_32"))
    assert df["majority_acc"].between(0.3, 0.7).all()
    # recount each row's test accuracy from the gold labels file and the head's recorded predictions
    gold = [{"T": 1, "F": 0}[line] for line in (res / "data" / "raw" / "dev_labels.txt").read_text().split()]
    assert len(gold) == 60  # synthetic dev size in .test/definition_match.yaml
    for _, row in df.iterrows():
        result = json.loads((res / "runs" / row["layers"] / f"{row['head']}.json").read_text())
        pred = result["test_predictions"]
        assert len(pred) == len(gold) and set(pred) <= {0, 1}, (row["layers"], row["head"])
        right = sum(p == g for p, g in zip(pred, gold))
        assert row["test_acc"] == pytest.approx(right / len(gold), rel=1e-5), (row["layers"], row["head"])
        assert result["test"]["accuracy"] == right / len(gold) and result["test"]["n"] == len(gold)
        tp = sum(p == g == 1 for p, g in zip(pred, gold))
        f1 = 2 * tp / (sum(pred) + sum(gold))  # 2 TP / (2 TP + FP + FN)
        assert row["test_f1"] == pytest.approx(f1, rel=1e-5, abs=1e-9), (row["layers"], row["head"])
        # the majority baseline predicts one label everywhere: its accuracy is that label's share of dev
        label = result["majority"]["test"]["label"]
        assert row["majority_acc"] == pytest.approx(gold.count(label) / len(gold), rel=1e-5), label
    for name in ("learning_curves", "size_curves", "accuracy"):
        assert (res / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    curve = pd.read_csv(res / "runs" / "sum_last4" / "logreg.csv")
    assert len(curve) == 5 and curve["selected"].sum() == 1
    # the kept epoch is the best on validation, never chosen on the test (dev) set
    assert curve.loc[curve["selected"] == 1, "val_acc"].iloc[0] == curve["val_acc"].max()
    assert "# Definition matching" in (res / "report.md").read_text()
    result = json.loads((res / "runs" / "sum_last4" / "logreg.json").read_text())
    assert result["precision"]["features"] == resolve("auto", "cpu", "definition_match.features.precision")
    assert result["machine"]["features"]["cpu_capability"] == cpu_capability()
