"""Tests for shrink.ner.cleaning: filters, validation and the cleaning report."""

import pytest

from shrink.core.errors import ConfigError, DataError
from shrink.ner.cleaning import (
    MAX_SENTENCE_TOKENS,
    OUTLIER_MIN_OTHERS,
    SPLITS,
    DataWarning,
    Filters,
    clean_corpus,
    lost_breaks,
    sentence_stats,
    subsample,
)
from shrink.ner.conll import Sentence

BASE = [
    [("EU", "B-ORG"), ("rejects", "O"), ("German", "B-MISC"), ("call", "O")],
    [("Peter", "B-PER"), ("Blackburn", "I-PER")],
    [("BRUSSELS", "B-LOC"), ("1996-08-22", "O")],
]


def conll_text(sentences):
    return "".join("".join(f"{tok} {tag}\n" for tok, tag in s) + "\n" for s in sentences)


def make_corpus(tmp_path, train=None, validation=None, test=None):
    """Write the three splits (each a list of sentences of (token, tag)); BASE where not given."""
    paths = {}
    for split, sents in zip(SPLITS, (train, validation, test)):
        path = tmp_path / f"{split}.txt"
        text = sents if isinstance(sents, str) else conll_text(BASE if sents is None else sents)
        path.write_text(text, encoding="utf-8")
        paths[split] = path
    return paths


def pairs(sents):
    return [(s.tokens, s.tags) for s in sents]


def test_clean_corpus_passthrough(tmp_path):
    paths = make_corpus(tmp_path)
    splits, labels, report = clean_corpus(paths)
    assert set(splits) == set(SPLITS)
    for split in SPLITS:
        assert pairs(splits[split]) == [([t for t, _ in s], [g for _, g in s]) for s in BASE]
        row = report["splits"][split]
        assert row == {"file": str(paths[split]), "encoding": "utf-8", "encoding_from": "detected",
                       "sentences": 3, "longest_sentence": {"tokens": 4, "line": 1}, "p99_other_sentence_tokens": 2,
                       "replacement_char_tokens": 0, "sentence_breaks_suspect": False,
                       "rows_in": 3, "rows_out": 3, "tokens_out": 8,
                       "dropped": {}, "stripped_tokens": 0, "iob1_tags_converted": 0}
    assert labels == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert report["labels"] == labels
    assert report["rejected_lines"] == []
    assert report["warnings"] == []


def test_drop_regex_counts_per_rule(tmp_path):
    train = BASE + [
        [("HTTP", "O"), ("404", "O"), ("Not", "O"), ("Found", "O")],
        [("HTTP", "O"), ("503", "O")],
        [("spam", "O"), ("spam", "O")],
        [("HTTP", "O"), ("200", "O")],  # kept: 200 does not match
    ]
    paths = make_corpus(tmp_path, train=train)
    filters = Filters(drop_regex=["HTTP (404|503)", "^spam"])
    splits, _, report = clean_corpus(paths, filters=filters)
    row = report["splits"]["train"]
    assert row["dropped"] == {"drop_regex:HTTP (404|503)": 2, "drop_regex:^spam": 1}
    assert row["rows_in"] == 7
    assert row["rows_out"] == 4
    assert row["tokens_out"] == 8 + 2
    assert pairs(splits["train"])[-1] == (["HTTP", "200"], ["O", "O"])
    assert report["splits"]["test"]["dropped"] == {}


def test_drop_regex_first_matching_rule_wins(tmp_path):
    train = BASE + [[("HTTP", "O"), ("404", "O"), ("spam", "O")]]
    paths = make_corpus(tmp_path, train=train)
    _, _, report = clean_corpus(paths, filters=Filters(drop_regex=["spam", "HTTP (404|503)"]))
    assert report["splits"]["train"]["dropped"] == {"drop_regex:spam": 1}


def test_strip_regex_strips_tokens_and_repairs_tags(tmp_path):
    train = BASE + [
        # the B- token is stripped: its I- token must become B-, not an orphan I-
        [("see", "O"), ("ISBN-978-3-16", "B-MISC"), ("Handbook", "I-MISC"), ("Vol", "I-MISC"), ("now", "O")],
        # a partially stripped token is kept with what remains
        [("ref:ISBN-0-306", "O"), ("Smith", "B-PER")],
    ]
    paths = make_corpus(tmp_path, train=train)
    splits, _, report = clean_corpus(paths, filters=Filters(strip_regex=[r"ISBN[-0-9X]+"]))
    got = pairs(splits["train"])
    assert got[3] == (["see", "Handbook", "Vol", "now"], ["O", "B-MISC", "I-MISC", "O"])
    assert got[4] == (["ref:", "Smith"], ["O", "B-PER"])
    row = report["splits"]["train"]
    assert row["stripped_tokens"] == 1
    assert row["dropped"] == {}
    assert row["rows_out"] == 5
    assert row["tokens_out"] == 8 + 4 + 2


def test_strip_regex_does_not_merge_adjacent_entities(tmp_path):
    # two LOC entities, "Paris" and "ISBN-1 Texas"; after stripping, "Texas" must start its own entity
    train = BASE + [[("Paris", "B-LOC"), ("ISBN-1", "B-LOC"), ("Texas", "I-LOC"), ("now", "O")]]
    paths = make_corpus(tmp_path, train=train)
    splits, _, _ = clean_corpus(paths, filters=Filters(strip_regex=[r"ISBN[-0-9X]+"]))
    assert pairs(splits["train"])[3] == (["Paris", "Texas", "now"], ["B-LOC", "B-LOC", "O"])


def test_empty_sentence_after_stripping_is_dropped_and_counted(tmp_path):
    train = BASE + [[("ISBN-12", "O"), ("ISBN-99X", "B-MISC")]]
    paths = make_corpus(tmp_path, train=train)
    splits, _, report = clean_corpus(paths, filters=Filters(strip_regex=[r"ISBN[-0-9X]+"]))
    row = report["splits"]["train"]
    assert row["dropped"] == {"empty": 1}
    assert row["stripped_tokens"] == 2
    assert row["rows_in"] == 4 and row["rows_out"] == 3
    assert len(splits["train"]) == 3


def test_min_and_max_token_bounds(tmp_path):
    train = [
        [("a", "O")],                                               # 1 token: too short
        [("Peter", "B-PER"), ("Blackburn", "I-PER")],               # 2
        [("EU", "B-ORG"), ("x", "O"), ("y", "O")],                  # 3
        [("a", "O"), ("b", "O"), ("c", "O"), ("d", "B-LOC")],       # 4: too long
        [("a", "B-MISC"), ("b", "O"), ("c", "O"), ("d", "O"), ("e", "O")],  # 5: too long
    ]
    other = [[("Peter", "B-PER"), ("Blackburn", "I-PER")], [("EU", "B-ORG"), ("said", "O")]]
    paths = make_corpus(tmp_path, train=train, validation=other, test=other)
    splits, labels, report = clean_corpus(paths, filters=Filters(min_tokens=2, max_tokens=3))
    assert [len(s.tokens) for s in splits["train"]] == [2, 3]
    assert report["splits"]["train"]["dropped"] == {"too_short": 1, "too_long": 2}
    assert report["splits"]["train"]["rows_in"] == 5
    assert report["splits"]["train"]["rows_out"] == 2
    # labels come from the cleaned train split only: LOC and MISC were dropped with their sentences
    assert labels == ["O", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def test_leakage_counts_test_sentences_found_in_train(tmp_path):
    test = [BASE[1], [("Peter", "B-PER"), ("Smith", "I-PER")], BASE[2]]
    validation = [[("Peter", "B-PER"), ("Jones", "I-PER")]]
    paths = make_corpus(tmp_path, validation=validation, test=test)
    _, _, report = clean_corpus(paths)
    assert report["leakage"] == {"validation_sentences_also_in_train": 0, "test_sentences_also_in_train": 2}


def test_tag_unseen_in_train_names_test_file_and_line(tmp_path):
    test = [BASE[0], [("Acme", "B-ORG"), ("widget", "B-XYZ")]]
    paths = make_corpus(tmp_path, test=test)
    # test.txt: lines 1-4 first sentence, 5 blank, 6 Acme, 7 widget
    with pytest.raises(DataError) as ei:
        clean_corpus(paths)
    msg = str(ei.value)
    assert msg.startswith(f"{paths['test']}:7:")
    assert "B-XYZ" in msg
    assert str(paths["train"]) in msg


def test_tag_unseen_in_train_line_is_right_after_stripping(tmp_path):
    test = [[("ISBN-123", "O"), ("widget", "B-XYZ")]]  # B-XYZ is on line 2
    paths = make_corpus(tmp_path, test=test)
    with pytest.raises(DataError) as ei:
        clean_corpus(paths, filters=Filters(strip_regex=[r"ISBN[-0-9X]+"]))
    assert str(ei.value).startswith(f"{paths['test']}:2:")


@pytest.mark.parametrize("split", SPLITS)
def test_empty_split_names_the_file(tmp_path, split):
    paths = make_corpus(tmp_path, **{split: "-DOCSTART- O\n\n\n"})
    with pytest.raises(DataError) as ei:
        clean_corpus(paths)
    msg = str(ei.value)
    assert msg.startswith(f"{paths[split]}:")
    assert f"the {split} split has no sentences left" in msg
    assert "after cleaning" not in msg


def test_split_emptied_by_cleaning_says_so(tmp_path):
    paths = make_corpus(tmp_path, validation=[[("HTTP", "O"), ("404", "O")]])
    with pytest.raises(DataError) as ei:
        clean_corpus(paths, filters=Filters(drop_regex=["HTTP 404"]))
    assert str(ei.value).startswith(f"{paths['validation']}:")
    assert "after cleaning" in str(ei.value)


IOB1_TRAIN = [
    [("EU", "I-ORG"), ("rejects", "O"), ("German", "I-MISC"), ("call", "O")],  # lines 1-4
    [("Peter", "I-PER"), ("Blackburn", "I-PER"), ("Smith", "B-PER")],          # lines 6-8
    [("BRUSSELS", "B-LOC"), ("1996-08-22", "O")],
]


def test_strict_iob2_rejects_iob1_with_file_and_line(tmp_path):
    train = [BASE[2], IOB1_TRAIN[1]]  # lines 1-2, blank, 4-6: first violation on line 4
    paths = make_corpus(tmp_path, train=train)
    with pytest.raises(DataError) as ei:
        clean_corpus(paths, tag_scheme="iob2")
    msg = str(ei.value)
    assert msg.startswith(f"{paths['train']}:4:")
    assert "I-PER" in msg
    assert "data.tag_scheme" in msg


def test_strict_iob2_reports_a_violation_inside_a_sentence(tmp_path):
    train = [[("a", "O"), ("b", "O"), ("c", "I-LOC")]]
    paths = make_corpus(tmp_path, train=train)
    with pytest.raises(DataError) as ei:
        clean_corpus(paths, tag_scheme="iob2")
    assert str(ei.value).startswith(f"{paths['train']}:3:")


@pytest.mark.parametrize("scheme", ["auto", "iob1"])
def test_auto_converts_iob1_and_counts(tmp_path, scheme):
    paths = make_corpus(tmp_path, train=IOB1_TRAIN)
    splits, labels, report = clean_corpus(paths, tag_scheme=scheme)
    assert pairs(splits["train"])[:2] == [
        (["EU", "rejects", "German", "call"], ["B-ORG", "O", "B-MISC", "O"]),
        (["Peter", "Blackburn", "Smith"], ["B-PER", "I-PER", "B-PER"]),
    ]
    row = report["splits"]["train"]
    assert row["iob1_tags_converted"] == 3 and row["dropped"] == {}  # converted, not dropped
    assert row["rows_out"] == 3
    assert report["splits"]["test"]["iob1_tags_converted"] == 0


def test_bad_tag_scheme_is_config_error(tmp_path):
    paths = make_corpus(tmp_path)
    with pytest.raises(ConfigError) as ei:
        clean_corpus(paths, tag_scheme="bio")
    assert ei.value.key == "data.tag_scheme"


def test_skip_mode_counts_malformed_rows(tmp_path):
    train = conll_text(BASE) + "bad line here O\n\nok O\n"  # line 12 has 4 columns, the rest 2
    paths = make_corpus(tmp_path, train=train)
    splits, _, report = clean_corpus(paths, on_malformed="skip")
    row = report["splits"]["train"]
    assert row["rows_in"] == 5
    assert row["rows_out"] == 4
    assert row["dropped"] == {"malformed": 1}
    assert report["rejected_lines"] == [f"{paths['train']}:12: has 4 columns, the rest of the file has 2 (as on line 1)"]
    with pytest.raises(DataError):
        clean_corpus(paths, on_malformed="error")


def test_report_rows_exact_with_several_rules(tmp_path):
    train = BASE + [
        [("HTTP", "O"), ("404", "O")],                     # drop_regex
        [("ISBN-1", "O")],                                 # empty after strip
        [("x", "O")],                                      # too short
        [("ISBN-2", "O"), ("y", "O"), ("z", "B-LOC")],     # 1 stripped, kept with 2 tokens
    ]
    paths = make_corpus(tmp_path, train=train)
    filters = Filters(drop_regex=["HTTP 404"], strip_regex=[r"ISBN[-0-9X]+"], min_tokens=2)
    splits, _, report = clean_corpus(paths, filters=filters)
    row = report["splits"]["train"]
    assert row["rows_in"] == 7
    assert row["rows_out"] == 4
    assert row["tokens_out"] == 8 + 2
    assert row["stripped_tokens"] == 2
    assert row["dropped"] == {"drop_regex:HTTP 404": 1, "empty": 1, "too_short": 1}
    assert row["rows_in"] - row["rows_out"] == sum(row["dropped"].values())
    assert pairs(splits["train"])[-1] == (["y", "z"], ["O", "B-LOC"])


# --- Filters.from_config -----------------------------------------------------------------------


def test_filters_from_config_bad_regex_names_key():
    with pytest.raises(ConfigError) as ei:
        Filters.from_config({"drop_regex": ["(unclosed"]})
    assert ei.value.key == "data.filters.drop_regex[0]"
    assert "data.filters.drop_regex[0]" in str(ei.value)
    assert "(unclosed" in str(ei.value)


def test_filters_from_config_bad_strip_regex_index():
    with pytest.raises(ConfigError) as ei:
        Filters.from_config({"strip_regex": ["ok", "[bad"]})
    assert ei.value.key == "data.filters.strip_regex[1]"


def test_filters_from_config_values_and_defaults():
    f = Filters.from_config({"drop_regex": ["a+"], "min_tokens": 3, "max_tokens": 50})
    assert (f.drop_regex, f.strip_regex, f.min_tokens, f.max_tokens) == (["a+"], [], 3, 50)
    d = Filters.from_config(None)
    assert (d.drop_regex, d.strip_regex, d.min_tokens, d.max_tokens) == ([], [], 1, None)


# --- subsample ---------------------------------------------------------------------------------


def test_subsample_is_deterministic_and_keeps_file_order():
    sents = [Sentence([f"w{i}"], ["O"], i + 1) for i in range(100)]
    a = subsample(sents, 20, seed=7)
    b = subsample(sents, 20, seed=7)
    assert [s.line for s in a] == [s.line for s in b]
    assert len(a) == 20
    assert len({s.line for s in a}) == 20
    lines = [s.line for s in a]
    assert lines == sorted(lines)
    assert all(s in sents for s in a)
    c = subsample(sents, 20, seed=8)
    assert [s.line for s in c] != lines
    assert subsample(sents, 100, seed=1) == sents


# --- data.encoding per split, and the input checks of the report ----------------------------------

GERMAN = [[("M\u00fcller", "B-PER"), ("besucht", "O"), ("K\u00f6ln", "B-LOC")], [("EU", "B-ORG"), ("tagt", "O")]]


def write_encoded(tmp_path, encodings, sentences=GERMAN):
    paths = {}
    for split in SPLITS:
        paths[split] = tmp_path / f"{split}.txt"
        paths[split].write_bytes(conll_text(sentences).encode(encodings[split]))
    return paths


def words(sents):
    return {t for s in sents for t in s.tokens}


@pytest.mark.parametrize("setting", ["auto", {"train": "utf-8", "validation": "latin-1", "test": "latin-1"}])
def test_a_utf8_train_file_is_read_as_utf8_beside_latin1_files(tmp_path, setting):
    paths = write_encoded(tmp_path, {"train": "utf-8", "validation": "latin-1", "test": "latin-1"})
    splits, _, report = clean_corpus(paths, encoding=setting)
    for split in SPLITS:
        assert {"M\u00fcller", "K\u00f6ln"} <= words(splits[split]), split
    how = "detected" if setting == "auto" else "configured"
    assert report["splits"]["train"]["encoding"] == "utf-8"
    assert report["splits"]["validation"]["encoding"] in ("latin-1", "cp1252")
    assert {report["splits"][s]["encoding_from"] for s in SPLITS} == {how}


def test_one_latin1_encoding_for_a_utf8_train_file_warns_of_mojibake(tmp_path):
    paths = write_encoded(tmp_path, {"train": "utf-8", "validation": "latin-1", "test": "latin-1"})
    with pytest.warns(DataWarning, match=r"^train .*valid UTF-8.*data.encoding to utf-8 or auto"):
        splits, _, report = clean_corpus(paths, encoding="latin-1")
    assert "M\u00c3\u00bcller" in words(splits["train"])
    assert len(report["warnings"]) == 1 and report["warnings"][0].startswith("train")


@pytest.mark.parametrize("setting, key", [
    ({"train": "utf-8", "validation": "latin-1"}, "data.encoding"),
    ({"train": "utf-8", "validation": "latin-1", "test": "latin-1", "dev": "utf-8"}, "data.encoding.dev"),
    ({"train": "utf-8", "validation": "no-such-codec", "test": "latin-1"}, "data.encoding.validation"),
    ("no-such-codec", "data.encoding"),
    (["utf-8"], "data.encoding"),
])
def test_bad_encoding_setting_names_its_key(tmp_path, setting, key):
    paths = make_corpus(tmp_path)
    with pytest.raises(ConfigError) as ei:
        clean_corpus(paths, encoding=setting)
    assert ei.value.key == key


def test_replacement_characters_are_counted_and_warned(tmp_path):
    train = [[("M\ufffdller", "B-PER"), ("besucht", "O"), ("K\ufffdln", "B-LOC")], [("EU", "B-ORG"), ("tagt", "O")],
             [("\ufffd\ufffd", "O"), ("tagt", "O")]]
    paths = make_corpus(tmp_path, train=train + BASE)
    with pytest.warns(DataWarning, match=r"^train .*: 3 tokens contain the U\+FFFD replacement character, "
                                         r"first at line 1"):
        _, _, report = clean_corpus(paths)
    assert [report["splits"][s]["replacement_char_tokens"] for s in SPLITS] == [3, 0, 0]


def test_sentence_stats_nearest_rank_percentile():
    sents = [Sentence(["w"] * n, ["O"] * n, line) for line, n in enumerate([3, 1, 200, 2] * 30 + [7], start=1)]
    stats = sentence_stats(sents)
    assert stats["sentences"] == 121
    assert stats["longest_sentence"] == {"tokens": 200, "line": 3}
    assert stats["p99_other_sentence_tokens"] == 200  # 120 others, 29 of them 200 tokens long
    assert sentence_stats([]) == {"sentences": 0, "longest_sentence": None, "p99_other_sentence_tokens": None}


def stats_of(lengths):
    return sentence_stats([Sentence(["w"] * n, ["O"] * n, i + 1) for i, n in enumerate(lengths)])


@pytest.mark.parametrize("lengths, suspect", [
    ([MAX_SENTENCE_TOKENS], False),                     # long, but not over the bound
    ([MAX_SENTENCE_TOKENS + 1], True),                  # a whole file as one sentence
    ([5] * OUTLIER_MIN_OTHERS + [51], True),            # > 10x the others' 99th percentile
    ([5] * OUTLIER_MIN_OTHERS + [50], False),           # exactly 10x
    ([5] * (OUTLIER_MIN_OTHERS - 1) + [51], False),     # too few others to judge by percentile
    ([20] * 100 + [2] * 100, False),
])
def test_lost_sentence_breaks_rule(lengths, suspect):
    assert (lost_breaks(stats_of(lengths)) is not None) == suspect


def test_a_split_without_blank_lines_is_reported_and_warned(tmp_path):
    flat = "".join(f"w{i} O\n" for i in range(1200))  # 1200 token lines, no blank line between sentences
    paths = make_corpus(tmp_path, validation=flat)
    with pytest.warns(DataWarning, match=r"^validation .*line 1 has 1200 tokens, more than 1000; "
                                         r"the file may lack the blank lines"):
        _, _, report = clean_corpus(paths)
    row = report["splits"]["validation"]
    assert (row["sentences"], row["longest_sentence"], row["sentence_breaks_suspect"]) == \
        (1, {"tokens": 1200, "line": 1}, True)
    assert not report["splits"]["train"]["sentence_breaks_suspect"]
    assert len(report["warnings"]) == 1
