"""Tests for the translation corpus (reading, cleaning, synthetic data) and the subword vocabulary."""

import json

import pytest

from shrink.core.errors import ConfigError, DataError
from shrink.translation.corpus import (
    FILTERS,
    FLAGS,
    SPLITS,
    VERBS,
    CleanConfig,
    clean_splits,
    hold_out,
    normalize,
    read_pairs,
    read_split,
    synthetic_corpus,
    write_pairs,
)
from shrink.translation.vocab import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    UNK_ID,
    decode,
    encode,
    load_vocab,
    save_vocab,
    train_vocab,
)

EVAL = {"validation": [("The sun rises", "Солнце встаёт")], "test": [("The moon sets", "Луна заходит")]}


def write(tmp_path, name, en: bytes, ru: bytes):
    (tmp_path / f"{name}.en").write_bytes(en)
    (tmp_path / f"{name}.ru").write_bytes(ru)
    return tmp_path / name


# ---------------------------------------------------------------- reading


def test_read_pairs_strips_only_line_endings(tmp_path):
    # CRLF, a final line without newline, edge spaces kept, U+2028 inside a line is not a line break
    prefix = write(tmp_path, "c", b"Hello\r\n  two  \nlast", "Привет\nдва\u2028два\nпоследний\n".encode())
    assert read_pairs(prefix) == [("Hello", "Привет"), ("  two  ", "два\u2028два"), ("last", "последний")]


def test_read_split_concatenates_prefixes(tmp_path):
    a = write(tmp_path, "a", b"one\n", "один\n".encode())
    b = write(tmp_path, "b", b"two\nthree\n", "два\nтри\n".encode())
    assert read_split([a, b], "en", "ru", "utf-8") == [("one", "один"), ("two", "два"), ("three", "три")]


def test_read_pairs_missing_file(tmp_path):
    (tmp_path / "c.en").write_text("x\n")
    with pytest.raises(DataError, match=r"c\.ru: file not found"):
        read_pairs(tmp_path / "c")


def test_read_pairs_line_count_mismatch_names_both_files(tmp_path):
    prefix = write(tmp_path, "c", b"a\nb\nc\n", "а\nб\n".encode())
    with pytest.raises(DataError) as e:
        read_pairs(prefix)
    assert str(e.value) == f"{prefix}.en: has 3 lines but {prefix}.ru has 2; " \
                           "line N of one file must translate line N of the other"


def test_read_pairs_bad_encoding_names_file_line_then_cp1251_reads(tmp_path):
    prefix = write(tmp_path, "c", b"cat\ndog\n", "кот\nпёс\n".encode("cp1251"))
    with pytest.raises(DataError) as e:
        read_pairs(prefix)
    assert e.value.path == f"{prefix}.ru" and e.value.line == 1
    assert "translation.data.encoding" in str(e.value)
    assert read_pairs(prefix, encoding="cp1251") == [("cat", "кот"), ("dog", "пёс")]
    with pytest.raises(ConfigError, match="translation.data.encoding"):
        read_pairs(prefix, encoding="no-such-codec")


def test_bad_byte_on_a_later_line_gets_that_line(tmp_path):
    prefix = write(tmp_path, "c", b"a\nb\nc\n", b"\xd0\xb0\n\xd0\xb1\n\xff\n")
    with pytest.raises(DataError, match=r"c\.ru:3: byte 0xff"):
        read_pairs(prefix)


def test_write_pairs_round_trip_and_rejects_line_breaks(tmp_path):
    pairs = [("A cat.", "Кот."), ("Two  spaces", "Два")]
    en, ru = write_pairs(tmp_path / "out", "train", pairs)
    assert ru.read_bytes() == "Кот.\nДва\n".encode()
    assert read_pairs(tmp_path / "out" / "train") == pairs
    with pytest.raises(DataError, match="line break"):
        write_pairs(tmp_path / "out", "test", [("a\nb", "в")])
    assert not (tmp_path / "out" / "test.en").exists()


# ---------------------------------------------------------------- cleaning


def test_normalize_nfc_and_whitespace():
    assert normalize(" \tИ\u0306од\u00a0\u00a0и  ещё\n") == "Йод и ещё"
    assert normalize("и\u0306") == "й"


def test_clean_config_validation():
    assert CleanConfig.from_config({"max_words": 50}).max_words == 50
    assert CleanConfig.from_config(None) == CleanConfig()
    with pytest.raises(ConfigError, match="'translation.clean.max_lenght'.*unknown key"):
        CleanConfig.from_config({"max_lenght": 3})
    with pytest.raises(ConfigError, match="translation.clean.max_len_ratio"):
        CleanConfig.from_config({"max_len_ratio": 1.0})
    with pytest.raises(ConfigError, match="translation.clean.max_words"):
        CleanConfig.from_config({"max_words": 2, "min_words": 3})
    with pytest.raises(ConfigError, match="translation.clean.target_script"):
        CleanConfig.from_config({"target_script": "[a-"})


def test_each_filter_counted_under_its_name():
    train = [
        ("  ", "кот"),                                       # empty after normalizing
        ("Hello World", "hello world"),                     # untranslated: same text, other case
        ("Hello", "Hello"), ("Hello", "Hello"),             # untranslated twice: first failing filter wins
        ("The cat sleeps", "The cat sleeps now"),           # untranslated: no Cyrillic in the target
        ("Good morning", "Доброе утро вам всем, дорогие друзья и коллеги"),  # length_ratio 12 vs 46 chars
        ("Hi you", "Здравствуйте, товарищи"),               # ratio 3.7 but under ratio_min_chars: kept
        ("one two three four five six seven", "раз два три четыре пять шесть семь"),  # too_long
        ("Yes", "Да"),                                      # too_short (min_words=2)
        ("The dog barks", "Собака лает"),
        ("The  dog\tbarks", "Собака\u00a0лает"),            # duplicate once normalized
    ]
    cfg = CleanConfig(max_words=6, min_words=2)
    out, report = clean_splits({"train": train, **EVAL}, cfg)
    assert out["train"] == [("Hi you", "Здравствуйте, товарищи"), ("The dog barks", "Собака лает")]
    assert report["splits"]["train"] == {
        "read": 11, "kept": 2,
        "dropped": {"empty": 1, "untranslated": 4, "length_ratio": 1, "too_long": 1, "too_short": 1,
                    "duplicate": 1, "test_overlap": 0, "validation_overlap": 0},
        "untranslated_kept": 0, "test_overlap_kept": 0, "validation_overlap_kept": 0,
    }


def test_target_script_check_can_be_disabled():
    train = [("The cat sleeps", "Le chat dort")]
    out, _ = clean_splits({"train": train, **EVAL}, CleanConfig(target_script=None))
    assert out["train"] == train
    with pytest.raises(DataError, match="untranslated=1"):
        clean_splits({"train": train, **EVAL})


def test_overlap_with_test_and_validation_dropped_from_train():
    train = [
        ("The moon sets", "Месяц садится"),     # source of a test pair
        ("Sunrise", "Солнце встаёт"),           # target of a validation pair
        ("The moon  sets", "Солнце встаёт"),    # both (after normalizing): counted as test_overlap
        ("A bird sings", "Птица поёт"),
    ]
    out, report = clean_splits({"train": train, **EVAL})
    assert out["train"] == [("A bird sings", "Птица поёт")]
    dropped = report["splits"]["train"]["dropped"]
    assert (dropped["test_overlap"], dropped["validation_overlap"]) == (2, 1)

    out, report = clean_splits({"train": train, **EVAL}, CleanConfig(drop_test_overlap=False))
    assert len(out["train"]) == 4
    r = report["splits"]["train"]
    assert (r["dropped"]["test_overlap"], r["test_overlap_kept"], r["validation_overlap_kept"]) == (0, 2, 1)


def test_hold_out_is_seeded_and_keeps_order():
    pairs = [(f"sentence {i}", f"предложение {i}") for i in range(50)]
    held, rest = hold_out(pairs, 10, seed=3)
    assert (held, rest) == hold_out(pairs, 10, seed=3) and held != hold_out(pairs, 10, seed=4)[0]
    assert len(held) == 10 and sorted(held + rest) == sorted(pairs)
    assert held == sorted(held, key=pairs.index) and rest == sorted(rest, key=pairs.index)
    for size in (0, 50, 2.5, True):
        with pytest.raises(ConfigError, match=r"translation.data.holdout.size.*between 1 and 49"):
            hold_out(pairs, size, seed=0)


def test_extra_test_set_is_cleaned_and_held_out_of_train():
    train = [("I see a cat", "Я вижу кошку"),           # the same source as a held-out pair
             ("A bird sings", "Птица поёт")]
    extra = [("I see a cat", "Я вижу кота"), ("Paris", "Paris")]
    out, report = clean_splits({"train": train, **EVAL, "test_tatoeba": extra})
    assert out["test_tatoeba"] == extra  # evaluation sets stay whole (the untranslated pair is only flagged)
    assert out["train"] == [("A bird sings", "Птица поёт")]
    assert report["splits"]["train"]["dropped"]["test_overlap"] == 1
    assert report["splits"]["test_tatoeba"]["untranslated_kept"] == 1
    with pytest.raises(DataError, match=r"no \['test'\] split"):
        clean_splits({"train": train, "validation": EVAL["validation"], "test_tatoeba": extra})


def test_evaluation_splits_stay_complete():
    test = [("OK", "OK"), ("Paris", "Paris"), ("", "пусто"), ("Yes", "Да"), ("Yes", "Да"),
            ("Good morning", "Доброе утро вам всем, дорогие друзья и коллеги")]
    train = [("A bird sings", "Птица поёт")]
    out, report = clean_splits({"train": train, "validation": EVAL["validation"], "test": test},
                               CleanConfig(min_words=2))
    # only the empty pair goes; untranslated, too short, duplicate and ratio outliers stay
    assert out["test"] == [p for p in test if p[0]]
    r = report["splits"]["test"]
    assert (r["read"], r["kept"], r["untranslated_kept"]) == (6, 5, 2)
    assert r["dropped"] == {f: int(f == "empty") for f in FILTERS}


def test_report_always_has_every_key():
    _, report = clean_splits({"train": [("A bird sings", "Птица поёт")], **EVAL})
    assert report["config"] == {"max_len_ratio": 3.0, "ratio_min_chars": 10, "max_words": 100, "min_words": 1,
                                "dedupe": True, "drop_test_overlap": True, "target_script": "[\\u0400-\\u04FF]"}
    for split in SPLITS:
        r = report["splits"][split]
        assert list(r) == ["read", "kept", "dropped", *FLAGS]
        assert list(r["dropped"]) == list(FILTERS)
    json.dumps(report)  # the report is written as JSON


def test_empty_split_error_says_what_removed_it():
    with pytest.raises(DataError) as e:
        clean_splits({"train": [("", "a"), ("x y", "x y")], **EVAL})
    assert str(e.value) == "split 'train': no pairs left after cleaning (2 read; dropped: empty=1, untranslated=1)"
    with pytest.raises(DataError, match="split 'validation': no pairs: the input files are empty"):
        clean_splits({"train": [("A bird sings", "Птица поёт")], "validation": [], "test": EVAL["test"]})


# ---------------------------------------------------------------- synthetic corpus


def test_synthetic_corpus_deterministic_and_disjoint():
    a, b = synthetic_corpus(300, 50, 50, seed=3), synthetic_corpus(300, 50, 50, seed=3)
    assert a == b
    assert synthetic_corpus(300, 50, 50, seed=4) != a
    assert [len(a[s]) for s in SPLITS] == [304, 50, 50]  # four planted dirty pairs in train
    for one, other in [("train", "validation"), ("train", "test"), ("validation", "test")]:
        assert not set(a[one]) & set(a[other])
        assert not {s for s, _ in a[one]} & {s for s, _ in a[other]}


def test_synthetic_grammar_reorders():
    verbs = {v for *_, sg, pl in VERBS for v in (sg, pl)}
    for src, tgt in synthetic_corpus(200, 0, 0, seed=1)["train"]:
        if tgt and src != tgt and len(tgt) < 3 * len(src):  # skip the planted dirty pairs
            assert 3 <= len(src.split()) <= 8
            assert tgt.split()[-1] in verbs  # verb moved to the end
            assert not {"the", "a", "an"} & set(tgt.split())


def test_cleaning_synthetic_reports_planted_pairs():
    out, report = clean_splits(synthetic_corpus(500, 50, 50, seed=0))
    assert len(out["train"]) == 500
    assert report["splits"]["train"]["dropped"] == {
        "empty": 1, "untranslated": 1, "length_ratio": 1, "too_long": 0, "too_short": 0, "duplicate": 1,
        "test_overlap": 0, "validation_overlap": 0}
    for split in ("validation", "test"):
        assert report["splits"][split]["kept"] == 50 and report["splits"][split]["untranslated_kept"] == 0


# ---------------------------------------------------------------- vocabulary

EXTRA = ["Съешь же ещё этих мягких французских булок, да выпей чаю.",
         "The quick brown fox jumps over the lazy dog in 2024!"]
UNSEEN = [
    "Hello, world! 3.14 is not 22/7; see https://example.org (page 42).",
    "Прелюбопытнейший зверёк: ёж, 5 шт. — «ёжик»?",
    "Flibbertigibbet zyxquv ajoelhou 🙂🚀",
    "И\u0306од и ёлка",  # decomposed Й: the tokenizer normalizes to NFC, like normalize()
]


@pytest.fixture(scope="module")
def texts():
    out, _ = clean_splits(synthetic_corpus(1000, 10, 10, seed=0))
    return [s for pair in out["train"] for s in pair] + EXTRA


@pytest.fixture(scope="module")
def bpe(texts):
    return train_vocab(texts, 500)


def test_bpe_round_trip_never_unknown(bpe):
    ids = encode(bpe, UNSEEN)
    assert all(UNK_ID not in seq for seq in ids)
    assert decode(bpe, ids) == [normalize(s) for s in UNSEEN]


def test_unigram_round_trip_on_training_text(texts):
    tok = train_vocab(texts, 400, kind="unigram")
    assert tok.get_vocab_size() <= 400
    assert decode(tok, encode(tok, texts)) == texts


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_vocab_size_and_special_ids(texts, kind):
    tok = train_vocab(texts, 300, kind=kind)
    assert tok.get_vocab_size() <= 300
    ids = [tok.token_to_id(t) for t in ("<pad>", "<s>", "</s>", "<unk>")]
    assert ids == [PAD_ID, BOS_ID, EOS_ID, UNK_ID] == [0, 1, 2, 3]


def test_bpe_deterministic(texts, bpe):
    assert train_vocab(texts, 500).to_str() == bpe.to_str()
    assert train_vocab(texts, 400).to_str() != bpe.to_str()


def test_encode_without_bos_eos_and_truncation(bpe):
    [full] = encode(bpe, ["кот видит пса"])
    assert BOS_ID not in full and EOS_ID not in full and len(full) > 2
    assert encode(bpe, ["кот видит пса"], max_len=2) == [full[:2]]


def test_decode_drops_specials_and_stops_at_eos(bpe):
    [ids] = encode(bpe, ["кот видит пса"])
    assert decode(bpe, [[BOS_ID, *ids, EOS_ID, *ids, PAD_ID, PAD_ID]]) == ["кот видит пса"]
    assert decode(bpe, [[BOS_ID, EOS_ID, PAD_ID]]) == [""]


def test_save_load_identical(tmp_path, bpe):
    path = tmp_path / "vocab" / "tokenizer.json"
    save_vocab(bpe, path)
    assert [p.name for p in path.parent.iterdir()] == ["tokenizer.json"]  # no temp file left behind
    loaded = load_vocab(path)
    assert encode(loaded, UNSEEN + EXTRA) == encode(bpe, UNSEEN + EXTRA)
    assert loaded.to_str() == bpe.to_str()


def test_vocab_config_errors(texts):
    with pytest.raises(ConfigError, match="'translation.vocab.size'"):
        train_vocab(texts, 299)
    with pytest.raises(ConfigError, match="'translation.vocab.kind'.*wordpiece"):
        train_vocab(texts, 500, kind="wordpiece")


def test_raw_splits_with_holdout_carve_one_train_corpus(tmp_path):
    from shrink.core.errors import ShrinkError
    from shrink.translation.jobs import read_raw_splits

    def corpus(name, n):
        return write(tmp_path, name, "".join(f"{name} {i}\n" for i in range(n)).encode(),
                     "".join(f"{name} {i} ру\n" for i in range(n)).encode())

    prefixes = {"train": [corpus("news", 5), corpus("tatoeba", 20)], "validation": [corpus("dev", 3)],
                "test": [corpus("flores", 4)]}
    data = {"src": "en", "tgt": "ru", "encoding": "utf-8"}
    holdout = {"name": "tatoeba", "prefix": str(prefixes["train"][1]), "size": 6}
    splits = read_raw_splits(prefixes, data, holdout, seed=0)
    assert list(splits) == ["train", "validation", "test", "test_tatoeba"]
    assert len(splits["test_tatoeba"]) == 6 and len(splits["train"]) == 5 + 14
    assert all(p[0].startswith("tatoeba") for p in splits["test_tatoeba"])
    assert not set(splits["test_tatoeba"]) & set(splits["train"])
    assert read_raw_splits(prefixes, data, None)["train"] == read_split(prefixes["train"])
    with pytest.raises(ShrinkError, match="translation.data.holdout.prefix"):
        read_raw_splits(prefixes, data, {**holdout, "prefix": str(prefixes["test"][0])})
