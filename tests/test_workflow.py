"""End to end: the whole DAG on the synthetic corpus with a tiny random BERT (the CI-sized run)."""

import functools
import json
import re
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml
from conftest import REPO, TEST_CONFIG, copy_workflow, snakemake

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
    assert list(summary["model"]) == ["teacher", *VARIANTS]
    row = summary.iloc[0]
    # The synthetic task is learnable: a trained tiny BERT must clearly beat an untrained one (F1 ~ 0).
    assert 0.5 < row["test_f1"] <= 1.0 and 0.5 < row["val_f1"] <= 1.0
    assert row["test_f1_rel_teacher"] == pytest.approx(1.0) and row["compression"] == pytest.approx(1.0)
    assert row["params"] > 1e6 and row["disk_mb"] > 1 and row["latency_ms"] > 0 and row["tokens_per_s"] > 0
    assert re.search(r"^\| teacher +\|", (res / "tables" / "summary.md").read_text(), re.M)
    for fig in ("loss", "lr", "val_f1", "per_type_f1_teacher"):
        png = res / "figures" / f"{fig}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000

    metrics = json.loads((res / "metrics" / "teacher.json").read_text())
    assert set(metrics["test"]["per_type"]) == {"LOC", "MISC", "ORG", "PER"}
    # every number names what it ran on: the precisions of .test/config.yaml, this machine's CPU
    from shrink.core.precision import cpu_capability, cpu_name

    assert metrics["precision"] == {"evaluate": "fp32", "train": "fp32"}
    assert metrics["machine"]["cpu"] == cpu_name() and metrics["machine"]["cpu_capability"] == cpu_capability()
    last = (res / "tables" / "summary.md").read_text().strip().splitlines()[-1]
    assert last.startswith(f"Measured on: {cpu_name()} (torch capability {cpu_capability()}") and "fp32" in last
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
    assert seconds < 420, f"the CI-sized run took {seconds:.0f} s"


# the variants `.test/config.yaml` runs, in table order (config order, sweeps expanded)
VARIANTS = ["emb16_svd", "emb16", "kd", "kd_int8", "tinybert", "shared", "lowrank", "sgpt_sparsity0.5",
            "sgpt_sparsity0.7", "mag_sparsity0.5", "mag_sparsity0.7", "wanda24", "gates_lambda2.0",
            "gates_lambda0.001", "int8", "features"]


def test_every_variant_lands_in_the_table_with_its_structure(finished_run):
    workdir, _ = finished_run
    res = workdir / "results"
    df = pd.read_csv(res / "tables" / "summary.csv").set_index("model")
    teacher = df.loc["teacher"]
    # a shared recipe prefix is computed once: emb16_svd, emb16, kd and kd_int8 all start with the same step
    assert len(list((res / "steps").glob("factorize_embeddings-*"))) == 1
    assert len(list((res / "steps").glob("distill-*"))) == 3  # kd (shared with kd_int8), tinybert, shared
    assert df.loc["emb16_svd", "params"] < teacher["params"] / 3  # the 30522-row table at rank 16
    assert df.loc["kd", "params"] < df.loc["emb16", "params"] and df.loc["kd", "heads_kept"] == "2/2"
    assert df.loc["kd_int8", "bits"] == 8 and df.loc["kd_int8", "disk_mb"] < df.loc["kd", "disk_mb"]
    assert df.loc["sgpt_sparsity0.5", "sparsity"] == pytest.approx(0.5, abs=0.01)
    assert df.loc["mag_sparsity0.7", "sparsity"] == pytest.approx(0.7, abs=0.02)
    assert df.loc["wanda24", "sparsity"] == pytest.approx(0.5)
    kept = lambda name: int(df.loc[name, "heads_kept"].split("/")[0])  # noqa: E731
    assert kept("gates_lambda2.0") < kept("gates_lambda0.001") == 4  # a strong L0 penalty removed heads
    assert df.loc["gates_lambda2.0", "params"] < teacher["params"]  # ... physically
    assert df.loc["shared", "params"] < teacher["params"]
    assert set(df["method"]) >= {"factorize_embeddings", "finetune", "distill", "quantize", "sparsegpt",
                                 "magnitude", "wanda", "gate_heads", "feature_based"}
    assert df.loc["kd_int8", "recipe"] == ("factorize_embeddings(rank=16) > distill(student={layers: 1}, epochs=2, "
                                           "budget=700000) > quantize(bits=8)")
    assert "intermediate={hidden_weight: 1.0, attention_weight: 1.0}" in df.loc["tinybert", "recipe"]
    md = (res / "tables" / "summary.md").read_text()
    header = [c.strip() for c in md.splitlines()[0].strip("|").split("|")]
    assert {"method", "sparsity", "heads_kept", "bits", "recipe"} <= set(header)
    for fig in ("pareto_params", "pareto_latency", "pruning_sparsity", "heads_f1", "compress_losses",
                "gates_gates_lambda2.0"):
        assert (res / "figures" / f"{fig}.png").read_bytes()[:4] == b"\x89PNG"
    gif = (res / "figures" / "gates_gates_lambda2.0.gif").read_bytes()
    assert gif[:6] == b"GIF89a" and gif.count(b"\x21\xf9\x04") > 3  # several frames (graphic control blocks)
    gates = pd.read_csv(res / "steps" / json.loads((res / "metrics" / "gates_lambda2.0.json").read_text())
                        ["variant"]["steps"][-1]["id"] / "gates.csv")
    assert set(gates.columns) >= {"step", "layer", "head", "p_open"} and gates["step"].nunique() > 3


def test_second_run_has_nothing_to_do(finished_run, run):
    workdir, _ = finished_run
    r = run(workdir, "-n")
    assert r.returncode == 0
    assert "Nothing to be done" in r.stdout + r.stderr, planned_jobs(r.stdout)


def test_speed_only_setting_reruns_nothing(finished_run, run):
    """train.keep_freed_memory changes how fast a step trains, not what: switching it plans no job
    (shrink.ner.train_settings.SPEED_ONLY), while a setting of the result, train.lr, reruns the training."""
    workdir, _ = finished_run
    r = run(workdir, "-n", config={"train": {"keep_freed_memory": False}})
    assert r.returncode == 0 and "Nothing to be done" in r.stdout + r.stderr, planned_jobs(r.stdout)
    r = run(workdir, "-n", config={"train": {"lr": 2.0e-3}})
    assert r.returncode == 0 and "train_teacher" in planned_jobs(r.stdout), r.stdout[-2000:]


def test_report_builds(finished_run, run):
    workdir, _ = finished_run
    r = run(workdir, "--report", "report.html")
    assert r.returncode == 0, r.stderr[-3000:]
    html = (workdir / "report.html").read_text(errors="replace")
    assert len(html) > 50_000 and "summary.csv" in html and "val_f1.png" in html


def test_deployment_exports_validates_and_serves_every_model(finished_run, run):
    """`snakemake deployment`: every model of the CI run exported to ONNX and checked against PyTorch,
    measured in .test/config.yaml's runtimes, tabled; one exported tiny variant tags raw text."""
    import subprocess
    import sys

    workdir, _ = finished_run
    r = run(workdir, "deployment")
    assert r.returncode == 0, r.stderr[-4000:]
    res = workdir / "results"
    runtimes = ["pytorch_fp32", "pytorch_int8", "onnx_fp32", "onnx_int8_dynamic", "onnx_int8_static",
                "onnx_fused_fp32", "onnx_fused_int8_dynamic"]
    df = pd.read_csv(res / "tables" / "deployment.csv")
    assert sorted(df["model"].unique()) == sorted(["teacher", *VARIANTS])
    assert all(sorted(g) == sorted(runtimes) for _, g in df.groupby("model")["runtime"]), df[["model", "runtime"]]
    for model in ["teacher", *VARIANTS]:
        record = json.loads((res / "deploy" / model / "deploy.json").read_text())
        export = record["export"]
        assert export["max_abs_logit_difference"] <= export["logit_tolerance"] == 0.001
        # the exported fp32 model scores what PyTorch scores, on the whole test split
        assert abs(export["test_f1_difference"]) <= 0.005, (model, export["test_f1_difference"])
    # sparse variants store their matrices sparse where that is smaller (70% zeros: 0.3 x 12 < 4 bytes)
    assert json.loads((res / "deploy" / "sgpt_sparsity0.7" / "deploy.json").read_text())["export"]["sparse_initializers"]
    assert not json.loads((res / "deploy" / "sgpt_sparsity0.5" / "deploy.json").read_text())["export"]["sparse_initializers"]
    md = (res / "tables" / "deployment.md").read_text()
    # the best deployable row: the fastest at batch 1 keeping 98% of the teacher's validation F1, recomputed here
    ok = df[df["val_f1"] >= 0.98 * df.query("model == 'teacher' and runtime == 'pytorch_fp32'")["val_f1"].iloc[0]]
    best = ok.loc[ok["latency_ms"].idxmin()]
    assert f"validation F1): {best['model']} in {best['runtime']}, test F1 {best['test_f1']:.4f}" in md, md[-600:]
    assert (res / "figures" / "deployment.png").read_bytes()[:4] == b"\x89PNG"
    # the serving CLI on an exported int8 file, with raw text: a test sentence of the synthetic corpus
    from shrink.ner.conll import read_conll

    sentence = read_conll(res / "data" / "clean" / "test.txt").sentences[0]
    text = " ".join(sentence.tokens)
    out = subprocess.run([sys.executable, "-m", "shrink.ner.serve", str(res / "deploy" / "kd_int8"),
                          "--model-file", "model.int8-dynamic.onnx", text], capture_output=True, text=True, check=True).stdout
    tagged = json.loads(out)
    assert tagged["text"] == text and tagged["entities"], tagged  # the distilled student finds entities there
    assert all(text[e["start"]: e["end"]] == e["text"] and e["type"] in {"PER", "ORG", "LOC", "MISC"}
               for e in tagged["entities"])
    again = run(workdir, "-n", "deployment")
    assert "Nothing to be done" in again.stdout + again.stderr, planned_jobs(again.stdout)


def test_training_benchmark_runs_on_the_jobs_tokenized_data(finished_run):
    # the perf/ command docs/ner.md shows, with the rows it compares (tiny model, few sentences: a smoke run)
    workdir, _ = finished_run
    r = subprocess.run([sys.executable, str(REPO / "perf" / "trainer_vs_hf.py"), "--tokenized",
                        str(workdir / "results" / "data" / "tokenized"), "--preset", "tiny", "--rows", "ours,tuned",
                        "--train-sentences", "48", "--batch-tokens", "0", "--batch-size", "16", "--threads", "1"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    table = re.findall(r"^(shrink trainer|tuned HF Trainer) +([\d.]+) +(\d+) +([\d.]+)$", r.stdout, re.M)
    assert [row[0] for row in table] == ["shrink trainer", "tuned HF Trainer"], r.stdout
    assert all(float(sec) > 0 for _, sec, _, _ in table)
    assert re.search(r"throughput ratio \(ours / tuned\): [\d.]+x", r.stdout), r.stdout


def test_deleted_figure_reruns_only_its_plot(finished_run, run):
    workdir, _ = finished_run
    (workdir / "results" / "figures" / "lr.png").unlink()
    r = run(workdir, "-n")
    assert planned_jobs(r.stdout) == {"plot_training_curve": 1, "all": 1}
    r = run(workdir)
    assert r.returncode == 0 and (workdir / "results" / "figures" / "lr.png").is_file()


def test_editing_plot_code_reruns_only_plots(finished_run, run, workflow):
    workdir, _ = finished_run
    plots = workflow.parent / "src" / "shrink" / "core" / "figures.py"  # every plot rule draws with it
    plots.write_text(plots.read_text() + "\n# an edit\n")  # Snakemake compares content, not just mtime
    r = run(workdir, "-n")
    assert planned_jobs(r.stdout) == {"plot_training_curve": 3, "plot_per_type_f1": 1, "plot_pareto": 2,
                                      "plot_pruning": 1, "plot_heads_f1": 1, "plot_compress_losses": 1,
                                      "plot_gates": 4, "all": 1}
    t0 = time.perf_counter()
    r = run(workdir)
    seconds = time.perf_counter() - t0
    assert r.returncode == 0
    assert "Loading weights" not in r.stderr and "torch" not in r.stderr  # no model was loaded
    assert seconds < 60, f"replotting took {seconds:.0f} s"
    assert "Nothing to be done" in (lambda x: x.stdout + x.stderr)(run(workdir, "-n"))


def test_adding_a_variant_reuses_cached_prefixes(finished_run, run):
    """A new recipe that extends a cached one computes only its new step and its evaluation."""
    workdir, _ = finished_run
    run_list = yaml.safe_load(TEST_CONFIG.read_text())["compress"]["run"]
    extra = {"compress": {"run": [*run_list, "kd_sparse"],
                          "variants": {"kd_sparse": {"recipe": [
                              {"factorize_embeddings": {"rank": 16}},
                              {"distill": {"student": {"layers": 1}, "epochs": 2, "budget": 700000}},
                              {"prune": {"method": "magnitude", "sparsity": 0.5}}]}}}}
    r = run(workdir, "-n", config=extra)
    jobs = planned_jobs(r.stdout)
    assert jobs.get("prune") == 1 and jobs.get("evaluate") == 1, jobs
    assert not {"factorize_embeddings", "distill", "train_teacher", "teacher_logits"} & set(jobs), jobs
