"""End to end: the language-model task on the generated corpus (the CI-sized run, under two minutes)."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
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
        m = json.loads((res / "metrics" / "bpe300" / f"{arch}.json").read_text())
        # the table shows the metrics file's numbers (CSV keeps 6 digits); test_perplexity_... recomputes them
        assert row["val_ppl"] == pytest.approx(m["val_ppl"], rel=1e-5), arch
        assert row["val_loss"] == pytest.approx(m["val_loss"], rel=1e-5), arch
        assert row["val_loss"] < math.log(300)  # every model learnt something beyond uniform
        assert row["train_tokens_per_s"] > 0 and row["gen_tokens_per_s"] > 0 and row["peak_rss_mb"] > 0
    for arch in ARCHS:
        m = json.loads((res / "metrics" / "bpe300" / f"{arch}.json").read_text())
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


@torch.no_grad()
def independent_nll(model, tokens, block_size):
    """(summed -log p, tokens predicted) of a stream, one window at a time: window k reads
    tokens[kB : kB+B] and predicts tokens[kB+1 : kB+B+1], so every token after the first is predicted once
    (what perplexity means). log_softmax in float64 and a gather, apart from the metrics module's code."""
    total, count = 0.0, 0
    for start in range(0, len(tokens) - 1, block_size):
        stop = min(start + block_size, len(tokens) - 1)
        x, y = tokens[start:stop][None], tokens[start + 1: stop + 1][None]
        logp = torch.log_softmax(model(x).double(), dim=-1).gather(-1, y[..., None])
        total -= logp.sum().item()
        count += y.numel()
    return total, count


def test_perplexity_matches_a_separate_forward_pass(finished_run):
    """The recorded perplexity is exp(-mean log p) over the validation tokens, from the saved model."""
    from shrink.lm.models import build

    res = finished_run / "results" / "lm"
    files = sorted((res / "metrics").glob("*/*.json"))
    assert {f.stem for f in files} == set(ARCHS) and len(files) > len(ARCHS)  # bpe600 too
    for f in files:
        tok, arch = f.parent.name, f.stem
        m = json.loads(f.read_text())
        saved = torch.load(res / "models" / tok / f"{arch}.pt", weights_only=False)
        model = build(saved["arch"], saved["vocab_size"], saved["block_size"], saved["width"], saved["settings"])
        model.load_state_dict(saved["state_dict"])
        tokens = torch.from_numpy(np.load(res / "data" / tok / "validation.npy").astype(np.int64))
        nll, count = independent_nll(model.eval(), tokens, saved["block_size"])
        assert count == len(tokens) - 1 == m["val_tokens"], (tok, arch)
        assert m["val_ppl"] == pytest.approx(math.exp(nll / count), rel=1e-6), (tok, arch)
        assert m["val_loss"] == pytest.approx(nll / count, rel=1e-6), (tok, arch)


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
    # the table's scores, recounted from the greedy outputs the sorting job wrote beside them
    for arch in ARCHS:
        outputs = json.loads((res / "sorting" / f"{arch}.json").read_text())["outputs"]
        assert [o["length"] for o in outputs] == [4, 8], arch
        for o in outputs:
            assert len(o["inputs"]) == len(o["predicted"]) == 16, arch  # lm.sorting.eval_per_length
            right = [[p == e for p, e in zip(pred, sorted(x))] for x, pred in zip(o["inputs"], o["predicted"])]
            assert all(len(r) == o["length"] for r in right), arch
            row = sorting[(sorting["arch"] == arch) & (sorting["length"] == o["length"])].iloc[0]
            n_right = sum(map(sum, right))
            assert row["per_position_accuracy"] == pytest.approx(n_right / (16 * o["length"]), rel=1e-5), arch
            assert row["exact_match"] == pytest.approx(sum(map(all, right)) / 16, rel=1e-5, abs=1e-9), arch
    arc = pd.read_csv(res / "tables" / "arc.csv")
    assert set(arc["mode"]) == {"zero-shot", "fine-tuned", "baseline"}
    assert set(arc.loc[arc["mode"] == "baseline", "arch"]) == {"(shortest option)", "(longest option)"}
    # recount every ARC accuracy from the raw questions: the answers and the length baselines here, the
    # models' choices from the predictions the ARC job wrote; the intervals from statsmodels' Wilson
    from statsmodels.stats.proportion import proportion_confint

    raw = json.loads((res / "data" / "arc_raw" / "ARC-Easy-test.json").read_text(encoding="utf-8"))
    answers = {q["id"]: q["choices"]["label"].index(q["answerKey"]) for q in raw}
    lengths = {q["id"]: [len(t.strip()) for t in q["choices"]["text"]] for q in raw}
    # 3-, 4- and 5-choice items: chance is their mean 1/k, not 0.25
    chance = sum(1 / len(v) for v in lengths.values()) / len(raw)
    assert 0.25 < chance < 0.34 and (arc["chance"] - chance).abs().max() < 1e-6

    def check(row_filter, picks, what):
        k, n = sum(picks[i] == answers[i] for i in answers), len(answers)
        row = arc[row_filter].iloc[0]
        low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
        assert row["n"] == n and row["accuracy"] == pytest.approx(k / n, rel=1e-5, abs=1e-9), what
        assert row["ci_low"] == pytest.approx(low, abs=1e-6) and row["ci_high"] == pytest.approx(high, abs=1e-6), what

    for name, pick in (("shortest", min), ("longest", max)):
        picks = {i: pick(range(len(v)), key=v.__getitem__) for i, v in lengths.items()}
        check(arc["arch"] == f"({name} option)", picks, name)
    for arch in ARCHS:
        pred = json.loads((res / "arc" / f"{arch}.json").read_text())["test_predictions"]
        assert sorted(pred["ids"]) == sorted(answers), arch
        for mode, label in (("zero_shot", "zero-shot"), ("finetuned", "fine-tuned")):
            for score in ("sum", "mean"):
                picks = dict(zip(pred["ids"], pred[mode][score]))
                check((arc["arch"] == arch) & (arc["mode"] == label) & (arc["score"] == score), picks,
                      (arch, mode, score))


@pytest.mark.parametrize("k, n", [(0, 1), (1, 1), (0, 30), (30, 30), (1, 30), (29, 30), (7, 20), (50, 100),
                                  (3, 1000)])
def test_wilson_interval_matches_statsmodels(k, n):
    from statsmodels.stats.proportion import proportion_confint

    from shrink.lm.arc import accuracy_with_ci

    r = accuracy_with_ci([True] * k + [False] * (n - k), [4] * n)
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert r["accuracy"] == k / n and r["n"] == n
    assert r["ci_low"] == pytest.approx(low, abs=1e-12) and r["ci_high"] == pytest.approx(high, abs=1e-12)
    assert r["above_chance"] == (low > 0.25)


def test_rerun_does_nothing_and_tables_regenerate_from_cache(finished_run):
    r = snakemake(finished_run, "-n", configfiles=[LM_CONFIG])
    assert "Nothing to be done" in r.stdout + r.stderr
    r = snakemake(finished_run, "-n", "--forcerun", "lm_tables", "lm_plots", configfiles=[LM_CONFIG])
    assert set(planned_jobs(r.stdout)) == {"lm_tables", "lm_plots", "lm_report", "all"}  # no training
    r = snakemake(finished_run, "--forcerun", "lm_tables", "lm_plots", configfiles=[LM_CONFIG])
    assert r.returncode == 0, r.stderr[-3000:]
