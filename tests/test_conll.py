"""Tests for shrink.ner.conll: the CoNLL reader/writer, encoding detection and IOB scheme helpers;
and data.files in shrink.ner.sources.resolve_conll_dir."""

import pytest

from shrink.core.errors import ConfigError, DataError
from shrink.ner.conll import (
    Sentence,
    iob1_violations,
    label_list,
    read_conll,
    to_iob2,
    write_conll,
)
from shrink.ner.sources import ENV_VAR, resolve_conll_dir

FOUR_COL = (
    "-DOCSTART- -X- -X- O\n"          # 1
    "\n"                               # 2
    "EU NNP B-NP B-ORG\n"              # 3
    "rejects VBZ B-VP O\n"             # 4
    "German JJ B-NP B-MISC\n"          # 5
    "call NN I-NP O\n"                 # 6
    "\n"                               # 7
    "Peter NNP B-NP B-PER\n"           # 8
    "Blackburn NNP I-NP I-PER\n"       # 9
    "\n"                               # 10
    "-DOCSTART- -X- -X- O\n"          # 11
    "\n"                               # 12
    "BRUSSELS NNP B-NP B-LOC\n"        # 13
)


def write(tmp_path, text, name="data.txt", newline="\n"):
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


def as_pairs(result):
    return [(s.tokens, s.tags) for s in result.sentences]


# --- well-formed input -------------------------------------------------------------------------


def test_reads_four_column_file(tmp_path):
    path = write(tmp_path, FOUR_COL)
    res = read_conll(path)
    assert as_pairs(res) == [
        (["EU", "rejects", "German", "call"], ["B-ORG", "O", "B-MISC", "O"]),
        (["Peter", "Blackburn"], ["B-PER", "I-PER"]),
        (["BRUSSELS"], ["B-LOC"]),
    ]
    assert res.rejected == []
    # line of the first token, 1-based, and the path it came from
    assert [s.line for s in res.sentences] == [3, 8, 13]
    assert all(s.path == str(path) for s in res.sentences)
    assert res.sentences[0].line_of(0) == 3
    assert res.sentences[0].line_of(2) == 5


def test_reads_two_column_file(tmp_path):
    path = write(tmp_path, "EU B-ORG\nrejects O\n\nPeter B-PER\nBlackburn I-PER\n")
    res = read_conll(path)
    assert as_pairs(res) == [(["EU", "rejects"], ["B-ORG", "O"]), (["Peter", "Blackburn"], ["B-PER", "I-PER"])]
    assert [s.line for s in res.sentences] == [1, 4]


def test_docstart_is_skipped_and_splits_sentences(tmp_path):
    # -DOCSTART- directly after a token line (no blank line) still ends the sentence
    path = write(tmp_path, "a O\nb B-PER\n-DOCSTART- O\nc B-LOC\n")
    res = read_conll(path)
    assert as_pairs(res) == [(["a", "b"], ["O", "B-PER"]), (["c"], ["B-LOC"])]
    assert all("-DOCSTART-" not in s.tokens for s in res.sentences)


def test_blank_lines_split_sentences_and_runs_of_blanks_make_no_empty_sentence(tmp_path):
    path = write(tmp_path, "\n\na O\n\n\n\nb O\nc O\n  \n\t\nd O")  # no trailing newline, whitespace-only lines
    res = read_conll(path)
    assert as_pairs(res) == [(["a"], ["O"]), (["b", "c"], ["O", "O"]), (["d"], ["O"])]
    assert [s.line for s in res.sentences] == [3, 7, 11]


def test_crlf_input_reads_like_lf(tmp_path):
    lf = read_conll(write(tmp_path, FOUR_COL, "lf.txt"))
    crlf_path = write(tmp_path, FOUR_COL, "crlf.txt", newline="\r\n")
    assert b"\r\n" in crlf_path.read_bytes()
    crlf = read_conll(crlf_path)
    assert as_pairs(crlf) == as_pairs(lf)
    assert [s.line for s in crlf.sentences] == [s.line for s in lf.sentences]
    assert not any("\r" in t for s in crlf.sentences for t in s.tags + s.tokens)


def test_missing_file_raises_data_error(tmp_path):
    path = tmp_path / "nope.txt"
    with pytest.raises(DataError, match="file not found") as ei:
        read_conll(path)
    assert str(path) in str(ei.value)


# --- malformed input ---------------------------------------------------------------------------


def test_line_with_fewer_columns_names_file_and_line(tmp_path):
    text = FOUR_COL.replace("German JJ B-NP B-MISC", "German B-MISC")  # line 5 has 2 columns
    path = write(tmp_path, text)
    with pytest.raises(DataError) as ei:
        read_conll(path)
    msg = str(ei.value)
    assert msg.startswith(f"{path}:5:")
    assert "has 2 columns" in msg and "4" in msg
    assert ei.value.line == 5
    assert ei.value.path == str(path)


def test_single_column_first_line_is_rejected(tmp_path):
    path = write(tmp_path, "\nlonely\nb O\n")
    with pytest.raises(DataError) as ei:
        read_conll(path)
    assert str(ei.value).startswith(f"{path}:2:")


def test_bad_tag_names_file_and_line(tmp_path):
    path = write(tmp_path, "EU B-ORG\nrejects O\n\nPeter X-PER\n")
    with pytest.raises(DataError) as ei:
        read_conll(path)
    msg = str(ei.value)
    assert msg.startswith(f"{path}:4:")
    assert "X-PER" in msg
    assert ei.value.line == 4


@pytest.mark.parametrize("tag", ["B-", "I", "b-PER", "PER", "O-PER", "B_PER"])
def test_other_bad_tags_are_rejected(tmp_path, tag):
    path = write(tmp_path, f"a O\nb {tag}\n")
    with pytest.raises(DataError) as ei:
        read_conll(path)
    assert str(ei.value).startswith(f"{path}:2:")


def test_non_utf8_byte_names_line_and_config_key_and_latin1_reads(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("EU B-ORG\n\nPeter B-PER\nM\u00fcller I-PER\n".encode("latin-1"))  # 0xfc on line 4
    with pytest.raises(DataError) as ei:
        read_conll(path)
    msg = str(ei.value)
    assert msg.startswith(f"{path}:4:")
    assert "data.encoding" in msg
    assert "0xfc" in msg
    assert ei.value.line == 4

    res = read_conll(path, encoding="latin-1")
    assert as_pairs(res) == [(["EU"], ["B-ORG"]), (["Peter", "M\u00fcller"], ["B-PER", "I-PER"])]


@pytest.mark.parametrize("raw, encoding", [
    ("EU B-ORG\nfoo\u2028bar O\nnext O\n".encode("utf-8"), "utf-8"),
    (b"EU B-ORG\nwait\x85 O\nnext O\n", "latin-1"),  # cp1252 ellipsis byte read as latin-1
])
def test_unicode_line_separators_inside_a_token_do_not_split_lines(tmp_path, raw, encoding):
    path = tmp_path / "sep.txt"
    path.write_bytes(raw)
    res = read_conll(path, encoding=encoding)
    assert len(res.sentences) == 1
    assert len(res.sentences[0].tokens) == 3
    assert res.sentences[0].tokens[2] == "next"


def test_unknown_encoding_names_config_key(tmp_path):
    path = write(tmp_path, "a O\n")
    with pytest.raises(DataError, match="data.encoding"):
        read_conll(path, encoding="no-such-codec")


def test_skip_mode_drops_only_the_bad_sentence(tmp_path):
    text = (
        "a NN O\n"          # 1
        "b NN B-PER\n"      # 2
        "\n"                # 3
        "c NN O\n"          # 4
        "d B-LOC\n"         # 5  too few columns
        "e NN X-LOC\n"      # 6  bad tag, same sentence: recorded once
        "f NN O\n"          # 7
        "\n"                # 8
        "g NN B-ORG\n"      # 9
        "\n"                # 10
        "h NN Q\n"          # 11 bad tag, sentence of its own
    )
    path = write(tmp_path, text)
    res = read_conll(path, on_malformed="skip")
    assert as_pairs(res) == [(["a", "b"], ["O", "B-PER"]), (["g"], ["B-ORG"])]
    assert [s.line for s in res.sentences] == [1, 9]
    assert [w for w, _ in res.rejected] == [f"{path}:5", f"{path}:11"]
    assert "column" in res.rejected[0][1]
    assert "'Q'" in res.rejected[1][1]
    # the same file stops at the first problem in error mode
    with pytest.raises(DataError) as ei:
        read_conll(path)
    assert ei.value.line == 5


# --- writing -----------------------------------------------------------------------------------


def test_write_then_read_round_trips(tmp_path):
    sents = [Sentence(["EU", "rejects"], ["B-ORG", "O"], 1), Sentence(["Peter"], ["B-PER"], 4)]
    path = tmp_path / "out.txt"
    write_conll(sents, path)
    assert path.read_text() == "EU B-ORG\nrejects O\n\nPeter B-PER\n\n"
    assert as_pairs(read_conll(path)) == [(s.tokens, s.tags) for s in sents]


# --- IOB schemes -------------------------------------------------------------------------------


def test_iob1_violations_indices():
    assert iob1_violations(["I-PER", "I-PER", "O", "I-LOC"]) == [0, 3]
    assert iob1_violations(["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]) == []
    assert iob1_violations(["B-PER", "I-LOC"]) == [1]  # type change
    assert iob1_violations(["I-ORG", "I-ORG", "I-MISC"]) == [0, 2]
    assert iob1_violations([]) == []
    assert iob1_violations(["O", "O"]) == []


def test_to_iob2_converts_iob1():
    assert to_iob2(["I-PER", "I-PER", "O", "I-LOC"]) == ["B-PER", "I-PER", "O", "B-LOC"]
    # IOB1 uses B- only between two adjacent entities of one type: that B- stays
    assert to_iob2(["I-PER", "B-PER"]) == ["B-PER", "B-PER"]
    assert to_iob2(["I-PER", "I-PER", "B-PER", "I-PER"]) == ["B-PER", "I-PER", "B-PER", "I-PER"]
    assert to_iob2(["I-ORG", "I-MISC", "I-MISC"]) == ["B-ORG", "B-MISC", "I-MISC"]


def test_to_iob2_leaves_iob2_alone_and_does_not_mutate():
    tags = ["B-PER", "I-PER", "O", "B-LOC"]
    assert to_iob2(tags) == tags
    iob1 = ["I-PER", "O"]
    out = to_iob2(iob1)
    assert iob1 == ["I-PER", "O"]
    assert out == ["B-PER", "O"]
    assert iob1_violations(out) == []


def test_label_list_order_and_completeness():
    sents = [
        Sentence(["a", "b", "c"], ["O", "B-PER", "I-PER"], 1),
        Sentence(["d", "e"], ["I-MISC", "O"], 5),   # only I-MISC occurs
        Sentence(["f"], ["B-LOC"], 8),              # only B-LOC occurs
    ]
    assert label_list(sents) == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-PER", "I-PER"]


def test_label_list_all_o():
    assert label_list([Sentence(["a"], ["O"], 1)]) == ["O"]


# --- encodings: auto detection (data.encoding: auto) ----------------------------------------------

SPANISH = ("El Gobierno de España anunció que la señora Peña viajará a Málaga . Según fuentes , el ministro "
           "José Martínez Alcalá y la alcaldesa de Cádiz hablarán mañana en León .").split()
ENTITIES = {"España", "Peña", "Málaga", "José", "Martínez", "Alcalá", "Cádiz", "León"}


def spanish_conll(n=5):
    sents = [[(w, "B-LOC" if w in ENTITIES else "O") for w in SPANISH[i:] + SPANISH[:i]] for i in range(n)]
    return "".join("".join(f"{w} {t}\n" for w, t in s) + "\n" for s in sents)


def tokens_of(result):
    return {t for s in result.sentences for t in s.tokens}


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_auto_reads_utf8_and_latin1_files_right(tmp_path, encoding):
    path = tmp_path / "esp.train"
    path.write_bytes(spanish_conll().encode(encoding))
    res = read_conll(path, encoding="auto")
    assert ENTITIES <= tokens_of(res)  # no mojibake: 'España', not 'EspaÃ±a' or 'Espaďa'
    assert res.encoding_from == "detected"
    if encoding == "utf-8":  # strict UTF-8 decides at once
        assert res.encoding == "utf-8" and res.encoding_doubt is None
    else:  # a guess among code pages: the Western European one wins a tie, and the tie is said
        assert res.encoding == "cp1252"
        assert "cp1250" in res.encoding_doubt and "set data.encoding" in res.encoding_doubt


def test_auto_strips_a_utf8_byte_order_mark(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + spanish_conll(1).encode("utf-8"))
    res = read_conll(path, encoding="auto")
    assert res.encoding == "utf-8-sig"
    assert res.sentences[0].tokens[0] == SPANISH[0]


def test_configured_encoding_is_recorded_and_a_utf8_file_read_as_latin1_is_doubted(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes(spanish_conll().encode("utf-8"))
    res = read_conll(path, encoding="latin-1", key="data.encoding.train")
    assert (res.encoding, res.encoding_from) == ("latin-1", "configured")
    assert "Espa\u00c3\u00b1a" in tokens_of(res)  # what was asked for, mojibake included ...
    assert "valid UTF-8" in res.encoding_doubt and "data.encoding.train" in res.encoding_doubt  # ... but said
    ascii_only = write(tmp_path, "EU B-ORG\n")
    assert read_conll(ascii_only, encoding="latin-1").encoding_doubt is None


def test_bad_byte_names_the_split_key(tmp_path):
    path = tmp_path / "test.txt"
    path.write_bytes(spanish_conll().encode("latin-1"))
    with pytest.raises(DataError, match="set data.encoding.test in the config"):
        read_conll(path, encoding="utf-8", key="data.encoding.test")


# --- data.files: the split files of a local corpus folder ----------------------------------------


def test_conll_dir_with_configured_file_names(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    for name in ("esp.train", "esp.testa", "esp.testb"):
        (tmp_path / name).write_text("EU B-ORG\n\n")
    files = {"train": "esp.train", "validation": "esp.testa", "test": "esp.testb"}
    assert resolve_conll_dir(str(tmp_path), files) == tmp_path.resolve()
    with pytest.raises(ConfigError) as ei:  # the default names are not there
        resolve_conll_dir(str(tmp_path))
    assert "train.txt" in str(ei.value)


def test_conll_dir_missing_configured_file_names_its_key_and_path(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    (tmp_path / "esp.train").write_text("EU B-ORG\n\n")
    (tmp_path / "esp.testb").write_text("EU B-ORG\n\n")
    files = {"train": "esp.train", "validation": "esp.testA", "test": "esp.testb"}
    with pytest.raises(ConfigError) as ei:
        resolve_conll_dir(str(tmp_path), files)
    assert ei.value.key == "data.files.validation"
    assert str(tmp_path / "esp.testA") in str(ei.value)
    assert "esp.train" not in str(ei.value)


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside.txt", ""])
def test_file_names_outside_the_folder_are_refused(tmp_path, monkeypatch, name):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(ConfigError) as ei:
        resolve_conll_dir(str(tmp_path), {"train": "train.txt", "validation": "validation.txt", "test": name})
    assert ei.value.key == "data.files.test"
