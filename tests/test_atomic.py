"""Tests for shrink.core.atomic: a failed write leaves the old state and no temp files; concurrent
writers of one cache never expose a partial version; a full or read-only disk gives a clear error."""

import errno
import hashlib
import json
import multiprocessing
import os
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from shrink.core import atomic
from shrink.core.atomic import (
    atomic_dir,
    atomic_path,
    read_json,
    write_json,
    write_text,
)
from shrink.core.errors import DataError, StorageError


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


def test_temp_names_are_unique_per_writer_and_carry_the_pid(tmp_path):
    target = tmp_path / "cache.bin"
    with atomic_path(target) as a, atomic_path(target) as b, atomic_dir(target) as c:
        names = {a.name, b.name, c.name}
        assert len(names) == 3 and all(str(os.getpid()) in n for n in names)
        assert {a.parent, b.parent, c.parent} == {tmp_path}  # same filesystem, so rename is atomic
        a.write_text("a")
        b.write_text("b")
        (c / "x").write_text("c")
    # installed innermost first: the folder, then file b over it, then file a
    assert listing(tmp_path) == ["cache.bin"] and target.read_text() == "a"


def test_atomic_dir_replaces_a_file_and_atomic_path_a_folder(tmp_path):
    target = tmp_path / "t"
    target.write_text("a file")
    with atomic_dir(target) as tmp:
        (tmp / "f").write_text("folder")
    assert (target / "f").read_text() == "folder"
    with atomic_path(target) as tmp:  # a library that saves a folder at the path it is given
        tmp.mkdir()
        (tmp / "g").write_text("again")
    assert listing(target) == ["g"] and listing(tmp_path) == ["t"]


# ---------------------------------------------------------------- concurrent writers of one cache
# Writers and the reader are separate processes (spawn), as two jobs sharing a cache would be.
# Every blob ends with the SHA-256 of the rest, so a reader can tell a complete one from a partial one.

SHARDS = [f"shard-{i}.bin" for i in range(3)]


def blob(seed, size):
    data = random.Random(str(seed)).randbytes(size)
    return data + hashlib.sha256(data).digest()


def complete(data):
    return len(data) > 32 and hashlib.sha256(data[:-32]).digest() == data[-32:]


def write_slowly(path, data):
    with open(path, "wb") as f:  # in pieces, as libraries write: a non-atomic write is seen half done
        for i in range(0, len(data), 1 << 16):
            f.write(data[i:i + (1 << 16)])
            f.flush()


def write_cache(target, kind, seed, rounds):
    target = Path(target)
    for r in range(rounds):
        if kind == "file":
            with atomic_path(target) as tmp:
                write_slowly(tmp, blob((seed, r), 1 << 20))
        else:
            with atomic_dir(target) as tmp:
                for i, name in enumerate(SHARDS):
                    write_slowly(tmp / name, blob((seed, r, i), 256 << 10))
                (tmp / "manifest.json").write_text(json.dumps(SHARDS))


def read_cache(target, kind):
    """None if the cache is complete, else what is wrong with it.

    A folder is read through one descriptor, so every file comes from one version. When that version
    was replaced during the read, its writer deletes it while it is being read, so what was read may
    be partial; a careful reader sees that `target` now holds another folder and reads again, and so
    does this one. A partial read of the folder that is still at `target` is a failure.
    """
    if kind == "file":
        return None if complete(target.read_bytes()) else "partial file"
    while True:
        fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
        try:
            problem = read_folder(fd)
            replaced = os.fstat(fd).st_ino != os.stat(target).st_ino
        finally:
            os.close(fd)
        if not replaced:
            return problem


def read_folder(fd):
    def read(name):
        f = os.open(name, os.O_RDONLY, dir_fd=fd)
        with os.fdopen(f, "rb") as fh:
            return fh.read()

    try:
        names = json.loads(read("manifest.json"))
        listed = sorted(os.listdir(fd))
        if names != SHARDS or listed != sorted(SHARDS + ["manifest.json"]):
            return f"partial folder: {names}, {listed}"
        bad = [n for n in names if not complete(read(n))]
    except (FileNotFoundError, ValueError) as e:  # a file gone or half written in the version read
        return f"partial folder: {type(e).__name__}: {e}"
    return f"partial shards {bad}" if bad else None


def read_until(target, kind, stop, results, may_vanish):
    target, reads, problems = Path(target), 0, []
    while not target.exists() and not stop.is_set():
        pass
    while not stop.is_set():
        try:
            problem = read_cache(target, kind)
        except FileNotFoundError as e:
            problem = None if may_vanish else f"missing: {e}"
        except (ValueError, OSError) as e:  # a truncated manifest, a folder that is half a file
            problem = f"{type(e).__name__}: {e}"
        if problem:
            problems.append(problem)
        reads += 1
    results.put((reads, problems[:5]))


def exchange_supported(folder):
    a, b = folder / "swap_a", folder / "swap_b"
    a.mkdir()
    b.mkdir()
    try:
        return atomic._exchange(a, b)
    finally:
        a.rmdir()
        b.rmdir()


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_concurrent_writers_never_expose_a_partial_cache(tmp_path, kind):
    ctx = multiprocessing.get_context("spawn")
    target = tmp_path / ("train_logits.bin" if kind == "file" else "tokenized")
    # Without an atomic swap (renameat2) a folder is briefly absent while it is replaced; never partial.
    may_vanish = kind == "dir" and not exchange_supported(tmp_path)
    stop, results = ctx.Event(), ctx.Queue()
    reader = ctx.Process(target=read_until, args=(str(target), kind, stop, results, may_vanish))
    reader.start()
    writers = [ctx.Process(target=write_cache, args=(str(target), kind, seed, 20)) for seed in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(300)
    stop.set()
    reads, problems = results.get(timeout=60)
    reader.join(60)
    assert [w.exitcode for w in writers] == [0, 0, 0, 0]  # no writer failed on another's rename
    assert problems == [], problems
    assert reads >= 20, f"the reader read only {reads} times while the writers wrote"
    assert read_cache(target, kind) is None
    assert listing(tmp_path) == [target.name]  # no temporary or moved-aside copy left behind


# ---------------------------------------------------------------- full, read-only or forbidden storage

def fail_with(code):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


def test_disk_full_while_writing_keeps_the_previous_version(tmp_path):
    target = tmp_path / "train_logits.safetensors"
    target.write_text("previous complete version")
    with pytest.raises(StorageError) as e:
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise OSError(errno.ENOSPC, "No space left on device")
    msg = str(e.value)
    assert str(target) in msg and "full" in msg and "free space" in msg and "--directory" in msg
    assert e.value.errno == errno.ENOSPC
    assert target.read_text() == "previous complete version"
    assert listing(tmp_path) == [target.name]


def test_read_only_results_at_the_rename_leave_nothing(tmp_path, monkeypatch):
    target = tmp_path / "metrics" / "teacher.json"
    monkeypatch.setattr(atomic.os, "replace", fail_with(errno.EROFS))
    with pytest.raises(StorageError) as e:
        write_json(target, {"f1": 0.9})
    msg = str(e.value)
    assert str(target) in msg and "read-only" in msg and "point the results elsewhere" in msg
    assert not target.exists() and listing(tmp_path / "metrics") == []


def test_quota_when_installing_a_folder_keeps_the_old_folder(tmp_path, monkeypatch):
    target = tmp_path / "tokenized"
    target.mkdir()
    (target / "old.arrow").write_text("old")
    monkeypatch.setattr(atomic.os, "replace", fail_with(errno.EDQUOT))
    with pytest.raises(StorageError, match="full .or over quota.: free space"):
        with atomic_dir(target) as tmp:
            (tmp / "new.arrow").write_text("new")
    assert listing(target) == ["old.arrow"] and listing(tmp_path) == ["tokenized"]


def test_permission_denied_creating_the_results_folder(tmp_path, monkeypatch):
    target = tmp_path / "results" / "models" / "teacher"
    monkeypatch.setattr(Path, "mkdir", fail_with(errno.EACCES))
    with pytest.raises(StorageError, match="no permission to write in .*fix its permissions"):
        with atomic_dir(target):
            pass
    assert listing(tmp_path) == []


def test_a_library_error_on_a_full_disk_is_recognised(tmp_path, monkeypatch):
    # torch.save reports a full disk as a RuntimeError without errno: the free space tells.
    target = tmp_path / "model.pt"

    def save():
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    with pytest.raises(RuntimeError, match="PytorchStreamWriter"):  # plenty of space: not a disk fault
        save()
    monkeypatch.setattr(atomic.os, "statvfs", lambda p: SimpleNamespace(f_flag=0, f_bavail=3, f_frsize=4096))
    with pytest.raises(StorageError, match="is full"):
        save()
    assert listing(tmp_path) == []


@pytest.mark.parametrize("error", [OSError(errno.ENOENT, "gone"), DataError("x.txt", 3, "bad line"), KeyError("k")])
def test_other_errors_pass_through_unchanged(tmp_path, error):
    with pytest.raises(type(error)) as e:
        with atomic_path(tmp_path / "out") as tmp:
            tmp.write_text("x")
            raise error
    assert e.value is error
    assert listing(tmp_path) == []


class Named(dict):
    """Stands in for Snakemake's named lists: items by key and by attribute."""
    __getattr__ = dict.__getitem__


def test_disk_full_through_a_workflow_step(tmp_path, monkeypatch, capsys):
    """shrink.core.harness.run, what every workflow script calls: one line naming rule, path and remedy; exit 1;
    no output or temporary left in the results folder."""
    from shrink.core import guard
    from shrink.core.harness import run
    from shrink.ner import jobs
    from shrink.ner.synthetic import write_corpus

    raw = write_corpus(tmp_path / "raw", {"train": 20, "validation": 5, "test": 5}, seed=1)
    out = tmp_path / "results" / "data" / "clean"
    splits = ("train", "validation", "test")
    smk = SimpleNamespace(
        rule="clean_data", log=[str(tmp_path / "clean_data.log")],
        input=Named({s: str(raw / f"{s}.txt") for s in splits}),
        output=Named({**{s: str(out / f"{s}.txt") for s in splits}, "labels": str(out / "labels.json"),
                      "report": str(out / "report.json")}),
        params=Named(data={"encoding": "utf-8", "tag_scheme": "auto", "on_malformed": "error"}, seed=1),
        resources=Named(mem_mb=100_000, runtime=60, resource_group="data"))
    monkeypatch.setattr(atomic.os, "replace", fail_with(errno.ENOSPC))
    with pytest.raises(SystemExit) as e:
        run(jobs.clean, smk)
    assert e.value.code == 1
    err = capsys.readouterr().err
    line = f"ERROR in rule clean_data: cannot write {out / 'train.txt'}: the disk holding {out} is full"
    assert line in err and "free space there" in err
    assert line in Path(smk.log[0]).read_text()
    assert listing(out) == []
    assert os.environ.get(guard.ENV) is None  # the job's guard stopped with it


@pytest.mark.skipif(sys.platform != "linux", reason="renameat2 is Linux-only")
def test_folder_swap_is_one_step_on_linux(tmp_path):
    assert exchange_supported(tmp_path)  # ext4, xfs, btrfs, tmpfs: the reader above never finds no folder


READ_ONLY_CLEAN = '''
import errno, os
_replace = os.replace
def replace(src, dst, *args, **kwargs):  # results/data/clean/ sits on a read-only disk
    if "results/data/clean/" in os.fspath(dst):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(dst))
    return _replace(src, dst, *args, **kwargs)
os.replace = replace
'''


@pytest.mark.slow
def test_read_only_results_through_the_workflow(run_workflow, tmp_path):
    """Through Snakemake and the clean_data script, with every process's os.replace failing for
    results/data/clean/ (a sitecustomize module; as root, chmod cannot make a folder read-only)."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(READ_ONLY_CLEAN)
    r = run_workflow(tmp_path / "run", "results/data/clean/report.json",
                     env={"PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])})
    out = r.stdout + r.stderr
    clean = tmp_path / "run" / "results" / "data" / "clean"
    assert r.returncode != 0
    assert ("ERROR in rule clean_data: cannot write results/data/clean/train.txt: results/data/clean is on "
            "a read-only filesystem: point the results elsewhere") in out, out[-3000:]
    assert not clean.exists() or listing(clean) == []
