"""End to end: the whole DAG on the synthetic corpus with a tiny random BERT (the CI-sized run)."""

import functools
import json
import re
import time

import pandas as pd
import pytest

from conftest import copy_workflow, snakemake

pytestmark = pytest.mark.slow


def planned_jobs(dry_run_output):
    """Rule names a dry run would execute, from its job-stats table."""
    m = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal", dry_run_output, re.S)
    if not m:
        return {}
    return {line.split()[0]: int(line.split()[1]) for line in m.group(1).strip().splitlines()}


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    """This module runs a copy of the workflow, so a test can edit its plot code."""
    return copy_workflow(tmp_path_factory.mktemp("workflow"))


@pytest.fixture
def run(workflow):
    return functools.partial(snakemake, snakefile=workflow)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, workflow):
    workdir = tmp_path_factory.mktemp("e2e")
    t0 = time.perf_counter()
    r = snakemake(workdir, snakefile=workflow)
    assert r.returncode == 0, r.stderr[-4000:]
    return workdir, time.perf_counter() - t0


def test_outputs_exist_and_are_sane(finished_run):
    workdir, seconds = finished_run
    res = workdir / "results"
    summary = pd.read_csv(res / "tables" / "summary.csv")
    assert list(summary["model"]) == ["teacher"]
    row = summary.iloc[0]
    # The synthetic task is learnable: a trained tiny BERT must clearly beat an untrained one (F1 ~ 0).
    assert 0.5 < row["test_f1"] <= 1.0 and 0.5 < row["val_f1"] <= 1.0
    assert row["test_f1_rel_teacher"] == pytest.approx(1.0) and row["compression"] == pytest.approx(1.0)
    assert row["params"] > 1e6 and row["disk_mb"] > 1 and row["latency_ms"] > 0 and row["tokens_per_s"] > 0
    assert "| teacher |" in (res / "tables" / "summary.md").read_text()
    for fig in ("loss", "lr", "val_f1", "per_type_f1_teacher"):
        png = res / "figures" / f"{fig}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000

    metrics = json.loads((res / "metrics" / "teacher.json").read_text())
    assert set(metrics["test"]["per_type"]) == {"LOC", "MISC", "ORG", "PER"}
    assert metrics["provenance"]["seed"] == 7 and metrics["provenance"]["versions"]["torch"]
    assert metrics["parameters"]["total"] == metrics["parameters"]["embedding"] + metrics["parameters"]["non_embedding"]

    epochs = pd.read_csv(res / "train" / "teacher" / "epochs.csv")
    steps = pd.read_csv(res / "train" / "teacher" / "steps.csv")
    assert list(epochs["epoch"]) == [1, 2, 3]
    assert steps["loss"].iloc[-5:].mean() < steps["loss"].iloc[:3].mean()  # it learned
    assert steps["lr"].max() == pytest.approx(3e-3, rel=0.05)  # warmup reached the configured peak
    # The saved model is the best validation epoch, and evaluation reproduces its score.
    assert metrics["validation"]["f1"] == pytest.approx(epochs["val_f1"].max())
    cleaning = json.loads((res / "data" / "clean" / "report.json").read_text())
    assert cleaning["splits"]["train"]["rows_out"] == 400
    assert seconds < 240, f"the CI-sized run took {seconds:.0f} s"


def test_second_run_has_nothing_to_do(finished_run, run):
    workdir, _ = finished_run
    r = run(workdir, "-n")
    assert r.returncode == 0
    assert "Nothing to be done" in r.stdout + r.stderr, planned_jobs(r.stdout)


def test_report_builds(finished_run, run):
    workdir, _ = finished_run
    r = run(workdir, "--report", "report.html")
    assert r.returncode == 0, r.stderr[-3000:]
    html = (workdir / "report.html").read_text(errors="replace")
    assert len(html) > 50_000 and "summary.csv" in html and "val_f1.png" in html


def test_deleted_figure_reruns_only_its_plot(finished_run, run):
    workdir, _ = finished_run
    (workdir / "results" / "figures" / "lr.png").unlink()
    r = run(workdir, "-n")
    assert planned_jobs(r.stdout) == {"plot_training_curve": 1, "all": 1}
    r = run(workdir)
    assert r.returncode == 0 and (workdir / "results" / "figures" / "lr.png").is_file()


def test_editing_plot_code_reruns_only_plots(finished_run, run, workflow):
    workdir, _ = finished_run
    plots = workflow.parent / "src" / "shrink" / "plots.py"
    plots.write_text(plots.read_text() + "\n# an edit\n")  # Snakemake compares content, not just mtime
    r = run(workdir, "-n")
    assert planned_jobs(r.stdout) == {"plot_training_curve": 3, "plot_per_type_f1": 1, "all": 1}
    t0 = time.perf_counter()
    r = run(workdir)
    seconds = time.perf_counter() - t0
    assert r.returncode == 0
    assert "Loading weights" not in r.stderr and "torch" not in r.stderr  # no model was loaded
    assert seconds < 60, f"replotting took {seconds:.0f} s"
    assert "Nothing to be done" in (lambda x: x.stdout + x.stderr)(run(workdir, "-n"))
