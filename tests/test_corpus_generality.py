"""A CoNLL-2002-style local corpus through the data rules: split files with other names (data.files),
a different encoding per file (data.encoding: auto), U+FFFD characters and a file without sentence breaks
are read right and reported; a bad line's one-line error reaches Snakemake's console."""

import json

import pytest

pytestmark = pytest.mark.slow

FILES = {"train": "esp.train", "validation": "esp.testa", "test": "esp.testb"}
SENTENCES = [
    [("El", "O"), ("Gobierno", "O"), ("de", "O"), ("España", "B-LOC"), ("anunció", "O"), (".", "O")],
    [("La", "O"), ("señora", "O"), ("Peña", "B-PER"), ("viajará", "O"), ("a", "O"), ("Málaga", "B-LOC")],
    [("José", "B-PER"), ("Martínez", "I-PER"), ("habló", "O"), ("con", "O"), ("la", "O"), ("ONU", "B-ORG")],
    [("Müller", "B-PER"), ("visitó", "O"), ("Köln", "B-LOC"), ("y", "O"), ("Zürich", "B-LOC"), (".", "O")],
]
REPLACED = [("Espa\ufffdol", "O"), ("Le\ufffdn", "B-LOC"), ("\ufffd", "O")]  # three tokens with U+FFFD
NON_ASCII = {"España", "Peña", "Málaga", "José", "Martínez", "Müller", "Köln", "Zürich"}


def conll(sentences, breaks=True):
    sep = "\n" if breaks else ""
    return "".join("".join(f"{w} POS {t}\n" for w, t in s) + sep for s in sentences)


def make_corpus(folder, bad_test_line=None):
    """esp.train in UTF-8 with U+FFFD tokens; esp.testa (validation) and esp.testb in latin-1, the
    validation file without blank lines (1,200 tokens: one sentence)."""
    folder.mkdir(parents=True)
    train = conll(SENTENCES * 10 + [REPLACED])
    (folder / FILES["train"]).write_bytes(train.encode("utf-8"))
    (folder / FILES["validation"]).write_bytes(conll(SENTENCES * 50, breaks=False).encode("latin-1"))
    test = conll(SENTENCES * 3).splitlines()
    if bad_test_line:
        test[bad_test_line - 1] = "Peña B-PER"  # two columns where the file has three
    (folder / FILES["test"]).write_bytes(("\n".join(test) + "\n").encode("latin-1"))
    return folder


def data_config(folder, **extra):
    return {"data": {"source": "local", "conll_dir": str(folder), "files": FILES, "encoding": "auto", **extra}}


def test_conll2002_style_corpus_is_read_and_reported(run_workflow, tmp_path):
    folder = make_corpus(tmp_path / "conll2002")
    run = tmp_path / "run"
    r = run_workflow(run, "results/data/clean/report.json", config=data_config(folder))
    assert r.returncode == 0, r.stderr[-3000:]
    clean = run / "results" / "data" / "clean"
    for split in ("train", "validation", "test"):  # every file decoded with its own encoding: no mojibake
        words = set(clean.joinpath(f"{split}.txt").read_text(encoding="utf-8").split())
        assert NON_ASCII <= words, split
    report = json.loads((clean / "report.json").read_text())
    rows = report["splits"]
    assert {s: rows[s]["file"] for s in FILES} == {s: str(folder / name) for s, name in FILES.items()}
    assert (rows["train"]["encoding"], rows["train"]["encoding_from"]) == ("utf-8", "detected")
    assert (rows["validation"]["encoding"], rows["test"]["encoding"]) == ("cp1252", "cp1252")
    assert [rows[s]["replacement_char_tokens"] for s in FILES] == [3, 0, 0]
    assert rows["validation"]["sentences"] == 1
    assert rows["validation"]["longest_sentence"] == {"tokens": 1200, "line": 1}
    assert rows["validation"]["sentence_breaks_suspect"] and not rows["train"]["sentence_breaks_suspect"]
    assert rows["train"]["longest_sentence"]["tokens"] == 6
    # the warnings are in the report and on the console, one line each, naming split and count
    console = r.stderr
    assert "WARNING in rule clean_data: train (" in console
    assert "3 tokens contain the U+FFFD replacement character" in console
    assert f"WARNING in rule clean_data: validation ({folder / 'esp.testa'}): the sentence at line 1 has 1200 " \
           "tokens" in console
    assert any(w.startswith("train") and "U+FFFD" in w for w in report["warnings"])
    assert any(w.startswith("validation") and "blank lines" in w for w in report["warnings"])


def test_bad_line_error_reaches_the_console(run_workflow, tmp_path):
    folder = make_corpus(tmp_path / "conll2002", bad_test_line=9)
    r = run_workflow(tmp_path / "run", "results/data/clean/report.json", config=data_config(folder))
    assert r.returncode != 0
    line = f"ERROR in rule clean_data: {folder / 'esp.testb'}:9: has 2 columns, the rest of the file has 3"
    assert line in r.stderr, r.stderr[-3000:]
    # ... and again at the end, after Snakemake's own block, from the workflow's onerror
    summary = r.stderr.rfind("The failed jobs said:")
    assert summary > r.stderr.find("Error in rule clean_data") >= 0 and line in r.stderr[summary:], r.stderr[-3000:]


def test_missing_split_file_names_its_data_files_key(run_workflow, tmp_path):
    folder = make_corpus(tmp_path / "conll2002")
    r = run_workflow(tmp_path / "run", "-n", "results/data/clean/report.json",
                     config=data_config(folder, files={**FILES, "test": "esp.testc"}))
    out = r.stdout + r.stderr  # a dry run prints its error on stdout
    assert r.returncode != 0
    assert "config key 'data.files.test'" in out and str(folder / "esp.testc") in out, out[-3000:]
