"""Tests for shrink.atomic: a failed write leaves the old state and no temp files."""

import os

import pytest

from shrink.atomic import atomic_dir, atomic_path, read_json, write_json, write_text


class Boom(Exception):
    pass


def listing(folder):
    return sorted(os.listdir(folder))


def test_atomic_path_failure_keeps_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path
            assert tmp != target
            tmp.write_text("new, half written")
            assert tmp.exists()
            raise Boom
    assert target.read_text() == "old"
    assert listing(tmp_path) == ["out.txt"]


def test_atomic_path_failure_on_new_path_creates_nothing(tmp_path):
    target = tmp_path / "sub" / "new.json"
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            tmp.write_text("{}")
            raise Boom
    assert not target.exists()
    assert listing(tmp_path / "sub") == []


def test_atomic_path_failure_removes_a_temp_folder(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "weights.bin").write_bytes(b"123")
            raise Boom
    assert listing(tmp_path) == []


def test_atomic_path_success_replaces(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert not tmp.exists()  # the caller creates it
        tmp.write_text("new")
        assert target.read_text() == "old"  # not visible before the block ends
    assert target.read_text() == "new"
    assert listing(tmp_path) == ["out.txt"]


def test_atomic_dir_failure_keeps_old_folder_and_no_temp(tmp_path):
    target = tmp_path / "shards"
    target.mkdir()
    (target / "old.arrow").write_text("old data")
    with pytest.raises(Boom):
        with atomic_dir(target) as tmp:
            assert tmp.is_dir() and tmp.parent == tmp_path
            (tmp / "new.arrow").write_text("new data")
            (tmp / "nested").mkdir()
            (tmp / "nested" / "x").write_text("x")
            raise Boom
    assert listing(target) == ["old.arrow"]
    assert (target / "old.arrow").read_text() == "old data"
    assert listing(tmp_path) == ["shards"]


def test_atomic_dir_failure_on_new_path_creates_nothing(tmp_path):
    target = tmp_path / "fresh"
    with pytest.raises(Boom):
        with atomic_dir(target) as tmp:
            (tmp / "f").write_text("f")
            raise Boom
    assert listing(tmp_path) == []


def test_atomic_dir_success_replaces_whole_folder(tmp_path):
    target = tmp_path / "shards"
    target.mkdir()
    (target / "old.arrow").write_text("old data")
    with atomic_dir(target) as tmp:
        (tmp / "new.arrow").write_text("new data")
        (tmp / "nested").mkdir()
        (tmp / "nested" / "x").write_text("x")
        assert listing(target) == ["old.arrow"]
    assert listing(target) == ["nested", "new.arrow"]  # the old file is gone, not merged
    assert (target / "nested" / "x").read_text() == "x"
    assert listing(tmp_path) == ["shards"]


def test_write_text_and_json_round_trip(tmp_path):
    write_text(tmp_path / "a" / "t.txt", "h\u00e9llo")
    assert (tmp_path / "a" / "t.txt").read_text(encoding="utf-8") == "h\u00e9llo"
    obj = {"b": [1, 2.5, None], "a": {"x": "y"}, "p": tmp_path}
    write_json(tmp_path / "o.json", obj)
    text = (tmp_path / "o.json").read_text()
    assert text.endswith("\n")
    assert text.index('"b"') < text.index('"a"')  # key order kept
    assert read_json(tmp_path / "o.json") == {"b": [1, 2.5, None], "a": {"x": "y"}, "p": str(tmp_path)}
    assert listing(tmp_path) == ["a", "o.json"]
