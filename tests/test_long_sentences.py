"""End to end: a validation sentence far longer than tokenize.max_length is split into windows by the
tokenize rule, and the teacher's evaluation scores every one of its words (issue 15)."""

import json

import pytest
import yaml
from conftest import TEST_CONFIG, snakemake

pytestmark = pytest.mark.slow

LONG = 600  # words; the synthetic words are one or two word pieces, so ~10 windows of max_length 64


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from shrink.ner.synthetic import write_corpus

    corpus = write_corpus(tmp_path_factory.mktemp("corpus"), {"train": 200, "validation": 40, "test": 40},
                          seed=3, long_sentence_words=LONG)
    workdir = tmp_path_factory.mktemp("long")
    r = snakemake(workdir, "results/metrics/teacher.json",
                  config={"data": {"source": "local", "conll_dir": str(corpus)}, "train": {"epochs": 1}})
    assert r.returncode == 0, r.stderr[-4000:]
    return workdir, r


def test_tokenization_report_counts_the_long_sentence(finished_run):
    workdir, r = finished_run
    cfg = yaml.safe_load(TEST_CONFIG.read_text())["tokenize"]
    report = json.loads((workdir / "results/data/tokenized/report.json").read_text())
    assert (report["max_length"], report["stride"]) == (cfg["max_length"], cfg["stride"])
    val = report["splits"]["validation"]
    assert val["sentences"] == 41 and val["long_sentences"] == 1
    assert val["longest_word_pieces"] >= LONG + 2
    # the long sentence needs at least (pieces - specials) / (window - specials) windows, the others one each
    assert val["windows"] >= 40 + (val["longest_word_pieces"] - 2) // (cfg["max_length"] - 2)
    for split in ("train", "test"):
        s = report["splits"][split]
        assert s["long_sentences"] == 0 and s["windows"] == s["sentences"]
        assert s["longest_word_pieces"] <= cfg["max_length"]
    assert "warning: validation: 1 sentence(s) longer than tokenize.max_length 64" in r.stderr
    assert "warning: train" not in r.stderr and "warning: test" not in r.stderr


def test_every_validation_word_is_scored(finished_run):
    from seqeval.metrics.sequence_labeling import get_entities

    from shrink.ner.conll import read_conll
    from shrink.ner.evaluate import load_tokenized
    from shrink.ner.metrics import gold_tags, predict_tags
    from shrink.ner.variants import load_variant

    workdir, _ = finished_run
    res = workdir / "results"
    sentences = read_conll(res / "data/clean/validation.txt").sentences
    assert max(len(s.tokens) for s in sentences) == LONG
    dd, tok, labels = load_tokenized(res / "data/tokenized")
    val = dd["validation"]
    assert len(val) > len(sentences)  # windows
    preds = predict_tags(load_variant(res / "models/teacher"), val, tok, labels)
    assert [len(p) for p in preds] == [len(s.tokens) for s in sentences]
    assert gold_tags(val, labels) == [s.tags for s in sentences]
    # the metrics the evaluate rule wrote count the long sentence's entities: support is every gold entity
    metrics = json.loads((res / "metrics/teacher.json").read_text())["validation"]
    gold = {}
    for kind, _, _ in get_entities([s.tags for s in sentences]):
        gold[kind] = gold.get(kind, 0) + 1
    assert {k: v["support"] for k, v in metrics["per_type"].items() if v["support"]} == gold
