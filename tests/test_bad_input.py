"""Each bad input stops the workflow with one clear message naming the file:line or config key,
and leaves no output that a later run could mistake for finished work."""

import pytest

from shrink.ner.synthetic import write_corpus

pytestmark = pytest.mark.slow


def corpus(tmp_path):
    data = write_corpus(tmp_path / "data", {"train": 40, "validation": 10, "test": 10}, seed=1)
    return data


def run_local(run_workflow, tmp_path, data_dir, **extra):
    cfg = {"data": {"source": "local", "conll_dir": str(data_dir)}, **extra}
    return run_workflow(tmp_path / "run", config=cfg)


def assert_failed_cleanly(r, tmp_path, *needles):
    out = r.stdout + r.stderr
    assert r.returncode != 0
    for needle in needles:
        assert needle in out, f"{needle!r} not in output:\n{out[-3000:]}"
    clean = tmp_path / "run" / "results" / "data" / "clean"
    leftovers = [p.name for p in clean.iterdir()] if clean.exists() else []
    assert leftovers == [], f"partial output left behind: {leftovers}"


def test_line_with_fewer_columns(run_workflow, tmp_path):
    data = corpus(tmp_path)
    lines = (data / "train.txt").read_text().splitlines()
    bad = next(i for i, line in enumerate(lines) if len(line.split()) == 4 and i > 10)
    lines[bad] = " ".join(lines[bad].split()[:3])
    (data / "train.txt").write_text("\n".join(lines) + "\n")
    r = run_local(run_workflow, tmp_path, data)
    assert_failed_cleanly(r, tmp_path, f"{data / 'train.txt'}:{bad + 1}", "has 3 columns, the rest of the file has 4")


def test_tag_unknown_to_train(run_workflow, tmp_path):
    data = corpus(tmp_path)
    lines = (data / "test.txt").read_text().splitlines()
    bad = next(i for i, line in enumerate(lines) if line.endswith(" O") and i > 2)
    lines[bad] = lines[bad][:-1] + "B-XYZ"
    (data / "test.txt").write_text("\n".join(lines) + "\n")
    r = run_local(run_workflow, tmp_path, data)
    assert_failed_cleanly(r, tmp_path, f"{data / 'test.txt'}:{bad + 1}", "B-XYZ", "never occurs in the train split")


def test_empty_split(run_workflow, tmp_path):
    data = corpus(tmp_path)
    (data / "validation.txt").write_text("-DOCSTART- -X- -X- O\n\n")
    r = run_local(run_workflow, tmp_path, data)
    assert_failed_cleanly(r, tmp_path, str(data / "validation.txt"), "validation split has no sentences")


def test_file_not_utf8(run_workflow, tmp_path):
    data = corpus(tmp_path)
    text = (data / "train.txt").read_text().splitlines()
    text[5] = "Müller NNP I-NP B-PER"
    (data / "train.txt").write_bytes("\n".join(text).encode("latin-1"))
    # a configured utf-8 (auto, the default, would detect latin-1) that the file does not hold
    r = run_workflow(tmp_path / "run", config={"data": {"source": "local", "conll_dir": str(data),
                                                         "encoding": "utf-8"}})
    assert_failed_cleanly(r, tmp_path, f"{data / 'train.txt'}:6", "not valid utf-8", "data.encoding")
    # ... and the right encoding, configured or detected, makes the same file acceptable.
    for encoding in ("latin-1", "auto"):
        ok = tmp_path / f"ok_{encoding}"
        r = run_workflow(ok, "results/data/clean/report.json",
                         config={"data": {"source": "local", "conll_dir": str(data), "encoding": encoding}})
        assert r.returncode == 0, r.stderr[-2000:]
        assert "Müller" in (ok / "results" / "data" / "clean" / "train.txt").read_text(encoding="utf-8")


def test_learning_rate_not_a_number(run_workflow, tmp_path):
    r = run_workflow(tmp_path / "run", "-n", config={"train": {"lr": "fast"}})
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "'fast' is not of type 'number'" in out and "['train']['properties']['lr']" in out


def test_learning_rate_out_of_range(run_workflow, tmp_path):
    # The seed report's 5e-12 trained nothing for 20 epochs; the schema refuses it before any job starts.
    r = run_workflow(tmp_path / "run", "-n", config={"train": {"lr": 5e-12}})
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "5e-12 is less than the minimum of 1e-06" in out


def test_missing_data_directory(run_workflow, tmp_path):
    r = run_local(run_workflow, tmp_path, tmp_path / "nowhere")
    assert_failed_cleanly(r, tmp_path, "config key 'data.conll_dir'", f"{tmp_path / 'nowhere'}' does not exist")


def test_missing_data_directory_from_environment(run_workflow, tmp_path):
    r = run_workflow(tmp_path / "run", "-n", config={"data": {"source": "auto", "conll_dir": None}},
                     env={"CONLL2003_DIR": str(tmp_path / "gone")})
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "CONLL2003_DIR" in out and "does not exist" in out


@pytest.mark.parametrize("recipe, key", [
    ([{"prune": {"sparsity": 0.5, "ratio": 2}}], "compress.variants.x.recipe[0].prune.ratio"),
    ([{"factorize_embeddings": {"rank": 8}}, {"distil": {}}], "compress.variants.x.recipe[1]"),
])
def test_bad_recipe_fails_before_any_job(run_workflow, tmp_path, recipe, key):
    r = run_workflow(tmp_path / "run", "-n", config={"compress": {"variants": {"x": {"recipe": recipe}}}})
    out = r.stdout + r.stderr
    assert r.returncode != 0 and f"config key '{key}'" in out
    assert not (tmp_path / "run" / "results").exists()
