"""End to end: the language-model task on the generated corpus (the CI-sized run, under two minutes)."""

import json
import math

import pandas as pd
import pytest
from conftest import LM_CONFIG, completed_run, snakemake
from test_workflow import planned_jobs

from shrink.core.precision import cpu_capability, resolve

pytestmark = pytest.mark.slow
ARCHS = ["transformer", "gru", "bdh", "reflex"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    return completed_run(tmp_path_factory.mktemp("lm"), configfiles=[LM_CONFIG])


def test_architecture_table_is_fair_and_consistent(finished_run):
    res = finished_run / "results" / "lm"
    df = pd.read_csv(res / "tables" / "architectures.csv").set_index("arch")
    assert list(df.index) == ARCHS
    assert df["tokens"].nunique() == 1  # the same training tokens for every architecture
    assert (abs(df["params"] - 60000) / 60000 < 0.1).all()  # the same budget, within a width step
    for arch, row in df.iterrows():
        assert row["val_ppl"] == pytest.approx(math.exp(row["val_loss"]), rel=1e-4), arch  # CSV keeps 6 digits
        assert row["val_loss"] < math.log(300)  # every model learnt something beyond uniform
        assert row["train_tokens_per_s"] > 0 and row["gen_tokens_per_s"] > 0 and row["peak_rss_mb"] > 0
    for arch in ARCHS:  # and exactly, from the metrics at full precision
        m = json.loads((res / "metrics" / "bpe300" / f"{arch}.json").read_text())
        assert m["val_ppl"] == pytest.approx(math.exp(m["val_loss"]), rel=1e-12), arch
        # .test/lm.yaml leaves lm.train.precision at auto: what this CPU runs natively
        assert m["precision"] == {"evaluate": "fp32", "train": resolve("auto", "cpu", "lm.train.precision")}, arch
        assert m["machine"]["cpu_capability"] == cpu_capability(), arch
    stats = json.loads((res / "data" / "bpe300" / "stats.json").read_text())
    # bits per character: total NLL in bits over the validation text's characters
    row = df.loc["transformer"]
    assert row["val_bits_per_char"] == pytest.approx(
        row["val_loss"] * stats["validation"]["tokens"] / math.log(2) / stats["validation"]["chars"], rel=0.01)
    for name in ("loss_vs_steps", "loss_vs_time", "lr", "tokenizers", "sorting_by_length", "sorting_by_position"):
        assert (res / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG", name
    report = (res / "report.md").read_text()
    for section in ("## Architectures", "## Tokenizers", "## Cleaning", "## Long-sequence sorting", "## ARC-Easy",
                    "## Samples"):
        assert section in report, section
    assert report.count("**Młody książę**") == len(ARCHS)


def test_cleaning_counts_match_the_planted_rows(finished_run):
    res = finished_run / "results" / "lm"
    report = json.loads((res / "data" / "clean_report.json").read_text())
    # synthetic corpus: 40 web rows, of which 8 error pages and 4 LOW; 4 books with header and footer
    assert report["http_error"]["rows_dropped"] == 8 and report["quality"]["rows_dropped"] == 4
    assert report["publisher"]["rows_changed"] == 4
    assert report["validation_files"] == ["ksiazka-1.txt"] and "ksiazka-1.txt" not in report["train_files"]
    clean = (res / "data" / "clean" / "train.jsonl").read_text()
    assert "ISBN" not in clean and "Ta lektura" not in clean and "\\r" not in clean and "404" not in clean


def test_tokenizer_table_and_other_tasks(finished_run):
    res = finished_run / "results" / "lm"
    tok = pd.read_csv(res / "tables" / "tokenizers.csv")
    assert list(tok["tokenizer"]) == ["bpe300", "bpe600"]
    sorting = pd.read_csv(res / "tables" / "sorting.csv")
    assert set(sorting["arch"]) == set(ARCHS) and set(sorting["length"]) == {4, 8}
    assert sorting["per_position_accuracy"].between(0, 1).all()
    arc = pd.read_csv(res / "tables" / "arc.csv")
    assert set(arc["mode"]) == {"zero-shot", "fine-tuned", "baseline"}
    assert set(arc.loc[arc["mode"] == "baseline", "arch"]) == {"(shortest option)", "(longest option)"}
    # 3-, 4- and 5-choice items: chance is their mean 1/k, not 0.25
    assert 0.25 < arc["chance"].iloc[0] < 0.34
    assert ((arc["ci_low"] <= arc["accuracy"]) & (arc["accuracy"] <= arc["ci_high"])).all()


def test_rerun_does_nothing_and_tables_regenerate_from_cache(finished_run):
    r = snakemake(finished_run, "-n", configfiles=[LM_CONFIG])
    assert "Nothing to be done" in r.stdout + r.stderr
    r = snakemake(finished_run, "-n", "--forcerun", "lm_tables", "lm_plots", configfiles=[LM_CONFIG])
    assert set(planned_jobs(r.stdout)) == {"lm_tables", "lm_plots", "lm_report", "all"}  # no training
    r = snakemake(finished_run, "--forcerun", "lm_tables", "lm_plots", configfiles=[LM_CONFIG])
    assert r.returncode == 0, r.stderr[-3000:]
