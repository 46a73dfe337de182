"""The real en-ru corpus (EN_RU_DIR, ../shared/data/en_ru here) reads, cleans and round-trips; skipped without it."""

import os
from pathlib import Path

import pytest
import yaml

from conftest import missing_corpus
from shrink.translation.corpus import clean_splits, normalize, read_split
from shrink.translation.vocab import decode, encode, train_vocab

CONFIG = Path(__file__).resolve().parents[1] / "config" / "translation.yaml"

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def splits():
    folder = os.environ.get("EN_RU_DIR")
    if not folder or not (Path(folder) / "flores200").is_dir():
        missing_corpus("EN_RU_DIR is not set to the en-ru corpus folder")
    prefixes = yaml.safe_load(CONFIG.read_text())["translation"]["data"]["splits"]
    return {s: read_split([Path(folder) / p for p in ps], "en", "ru") for s, ps in prefixes.items()}


def test_the_configured_splits_read_and_clean(splits):
    # newstest 2012-2020 + Tatoeba; TICO-19; FLORES-200 devtest (sizes from the corpus README)
    assert {s: len(p) for s, p in splits.items()} == {"train": 24822 + 19425, "validation": 2100, "test": 1012}
    cleaned, report = clean_splits(splits)
    train = report["splits"]["train"]
    assert train["kept"] == len(cleaned["train"]) == train["read"] - sum(train["dropped"].values())
    assert len(cleaned["test"]) == 1012 and len(cleaned["validation"]) == 2100  # evaluation sets stay whole
    test_sources = {src for src, _ in cleaned["test"]}
    assert not any(src in test_sources for src, _ in cleaned["train"])


def test_bpe_round_trips_real_sentences(splits):
    tok = train_vocab((s for pair in splits["train"][::10] for s in pair), 2000)
    sample = [normalize(s) for pair in splits["test"][:200] for s in pair]  # as the clean step writes them
    assert decode(tok, encode(tok, sample)) == sample
