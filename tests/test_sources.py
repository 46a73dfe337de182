"""The Hub loading path (datasets.load_dataset), exercised offline on a local dataset folder."""

import pytest
from datasets import ClassLabel, Dataset, Features, List, Value

from shrink.core.errors import ConfigError

from shrink.ner.conll import read_conll
from shrink.ner.sources import fetch_hub

NAMES = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_fetch_hub_writes_conll_from_a_dataset_with_classlabel_tags(tmp_path):
    features = Features({"tokens": List(Value("string")), "ner_tags": List(ClassLabel(names=NAMES))})
    src = tmp_path / "hub_like"
    src.mkdir()
    rows = {"train": [(["Peter", "Blackburn", "lives", "in", "Paris"], [1, 2, 0, 0, 3])],
            "validation": [(["New", "York"], [3, 4]), ([], [])],
            "test": [(["Anna", "left"], [1, 0])]}
    for split, pairs in rows.items():
        ds = Dataset.from_dict({"tokens": [t for t, _ in pairs], "ner_tags": [g for _, g in pairs]}, features=features)
        ds.to_parquet(str(src / f"{split}.parquet"))
    out = {s: tmp_path / "raw" / f"{s}.txt" for s in rows}
    fetch_hub(str(src), out)
    train = read_conll(out["train"]).sentences
    assert train[0].tokens == ["Peter", "Blackburn", "lives", "in", "Paris"]
    assert train[0].tags == ["B-PER", "I-PER", "O", "O", "B-LOC"]
    val = read_conll(out["validation"]).sentences
    assert [s.tags for s in val] == [["B-LOC", "I-LOC"]]  # the empty row is not written
    assert read_conll(out["test"]).sentences[0].tags == ["B-PER", "O"]


def write_splits(folder, columns, rows, features=None):
    folder.mkdir()
    for split in ("train", "validation", "test"):
        Dataset.from_dict({c: v for c, v in zip(columns, rows)}, features=features).to_parquet(str(folder / f"{split}.parquet"))
    return folder


def test_fetch_hub_reads_named_columns_with_string_tags(tmp_path):
    src = write_splits(tmp_path / "strings", ["words", "labels"],
                       [[["Anna", "met", "Bob"]], [["B-PER", "O", "B-PER"]]])
    out = {s: tmp_path / "raw" / f"{s}.txt" for s in ("train", "validation", "test")}
    fetch_hub(str(src), out, columns={"tokens": "words", "tags": "labels"})
    assert read_conll(out["test"]).sentences[0].tags == ["B-PER", "O", "B-PER"]
    assert read_conll(out["train"]).sentences[0].tokens == ["Anna", "met", "Bob"]


def test_fetch_hub_missing_column_names_the_key(tmp_path):
    src = write_splits(tmp_path / "other", ["words", "ner_tags"], [[["Anna"]], [["B-PER"]]])
    out = {s: tmp_path / "raw" / f"{s}.txt" for s in ("train", "validation", "test")}
    with pytest.raises(ConfigError, match=r"data\.hub_columns\.tokens.*no column 'tokens'.*words"):
        fetch_hub(str(src), out)


def test_fetch_hub_plain_integer_tags_are_refused(tmp_path):
    src = write_splits(tmp_path / "ints", ["tokens", "ner_tags"], [[["Anna"]], [[1]]])
    out = {s: tmp_path / "raw" / f"{s}.txt" for s in ("train", "validation", "test")}
    with pytest.raises(ConfigError, match=r"data\.hub_columns\.tags.*ClassLabel ids or of tag strings"):
        fetch_hub(str(src), out)
