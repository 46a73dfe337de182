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
    assert df["majority_acc"].between(0.3, 0.7).all() and df["test_acc"].between(0, 1).all()
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
