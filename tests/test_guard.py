"""shrink.core.guard: a job over its memory or time request stops with a message naming the rule and the
config key to raise; jobs SLURM killed are found in the executor plugin's logs."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from shrink.core import guard
from shrink.core.guard import Guard, SlurmKill, job_errors, slurm_kills, slurm_message


def run_job(body, mem_mb=None, runtime=None, grace=30):
    """Run `body` as the step of a workflow script (shrink.core.harness.run) of rule train_teacher, group
    train, in a fresh process; the guard checks every 0.1 s."""
    code = textwrap.dedent("""
        import subprocess, sys, time
        from types import SimpleNamespace
        from shrink.core import guard
        from shrink.core.harness import run
        guard.INTERVAL, guard.GRACE = 0.1, {grace}

        def step(smk):
        {body}

        resources = SimpleNamespace(mem_mb={mem_mb}, runtime={runtime}, resource_group="train")
        run(step, SimpleNamespace(rule="train_teacher", log=[], resources=resources))
        print("step finished")
    """).format(grace=grace, body=textwrap.indent(textwrap.dedent(body), "    "), mem_mb=mem_mb, runtime=runtime)
    env = {k: v for k, v in os.environ.items() if k not in (guard.ENV, "SHRINK_GUARD")}
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    return r, time.monotonic() - t0


def alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except FileNotFoundError:
        return False


def test_memory_over_the_request_stops_the_job():
    r, seconds = run_job("hog = bytearray(b'x') * (200 << 20)\ntime.sleep(60)", mem_mb=50)
    assert r.returncode == 1, r.stderr
    m = re.search(r"rule train_teacher exceeded its memory request: (\d+) MB used, mem_mb is 50; "
                  r"raise config key resources.train.mem_mb", r.stderr)
    assert m and int(m.group(1)) > 55, r.stderr
    assert "step finished" not in r.stdout and "Traceback" not in r.stderr
    assert "killing it" not in r.stderr and seconds < 15  # stopped cleanly, not killed after the grace


def test_runtime_over_the_request_stops_the_job():
    r, seconds = run_job("time.sleep(60)", runtime=0.01)  # 0.6 s
    assert r.returncode == 1, r.stderr
    assert re.search(r"rule train_teacher exceeded its time request: running for 0\.0 min, runtime is 0\.01 min; "
                     r"raise config key resources.train.runtime", r.stderr), r.stderr
    assert "step finished" not in r.stdout
    assert "killing it" not in r.stderr and seconds < 15


def test_memory_of_child_processes_counts_and_they_are_stopped(tmp_path):
    # A DDP rank or data worker holds the memory; the script itself is small.
    pid_file = tmp_path / "child.pid"
    hog = "import time; hog = bytearray(b'x') * (300 << 20); time.sleep(120)"
    body = f"""
        child = subprocess.Popen([sys.executable, "-c", {hog!r}], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(60)
    """
    r, seconds = run_job(body, mem_mb=150)
    assert r.returncode == 1 and "exceeded its memory request" in r.stderr, r.stderr
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child), "the job's child process outlived it"


def test_a_job_that_ignores_the_stop_is_killed():
    body = """
        while True:
            try:
                time.sleep(60)
            except guard.ResourceExceeded:
                print("ignored", flush=True)
    """
    r, seconds = run_job(body, runtime=0.005, grace=1)
    assert r.returncode == 1
    assert "ignored" in r.stdout
    assert "exceeded its time request" in r.stderr
    assert "rule train_teacher still running 1 s after exceeding its request: killing it" in r.stderr
    assert seconds < 30


def test_a_job_within_its_requests_runs_undisturbed():
    r, _ = run_job("x = bytearray(b'x') * (5 << 20)\ntime.sleep(0.5)", mem_mb=4000, runtime=1)
    assert r.returncode == 0 and "step finished" in r.stdout and r.stderr == ""


def test_watch_cleans_up_after_itself(monkeypatch):
    monkeypatch.delenv(guard.ENV, raising=False)
    before = signal.getsignal(signal.SIGUSR1)
    with guard.watch("evaluate", SimpleNamespace(mem_mb=10 ** 6, runtime=10), interval=0.01) as g:
        assert isinstance(g, Guard) and os.environ[guard.ENV] == str(os.getpid())
        time.sleep(0.1)
    assert g.breach is None and not g._thread.is_alive()
    assert signal.getsignal(signal.SIGUSR1) is before and guard.ENV not in os.environ


def test_nothing_to_guard(monkeypatch):
    monkeypatch.delenv(guard.ENV, raising=False)
    res = SimpleNamespace(mem_mb=10 ** 6, runtime=60)
    with guard.watch("r", None) as g:
        assert g is None  # no resources: run unguarded
    with guard.watch("r", SimpleNamespace(mem_mb=None, runtime=0)) as g:
        assert g is None
    monkeypatch.setenv("SHRINK_GUARD", "0")
    with guard.watch("r", res) as g:
        assert g is None
    monkeypatch.delenv("SHRINK_GUARD")
    # A child of a guarded process is not guarded twice (its ancestor's guard counts its memory).
    child = ("import sys; from types import SimpleNamespace as S; from shrink.core import guard\n"
             "with guard.watch('r', S(mem_mb=10 ** 6, runtime=60)) as g:\n    sys.exit(0 if g is None else 3)")
    r = subprocess.run([sys.executable, "-c", child], env={**os.environ, guard.ENV: str(os.getpid())})
    assert r.returncode == 0
    r = subprocess.run([sys.executable, "-c", child], env={**os.environ, guard.ENV: "999999999"})
    assert r.returncode == 3  # a pid that is not an ancestor: guarded
    other = subprocess.Popen(["sleep", "5"])  # a guard elsewhere, not an ancestor: guard this one
    try:
        monkeypatch.setenv(guard.ENV, str(other.pid))
        with guard.watch("r", res) as g:
            assert isinstance(g, Guard)
    finally:
        other.kill()
        other.wait()


def test_messages_name_the_rule_and_the_config_key():
    assert Guard("evaluate", "evaluate", mem_mb=10 ** 7).check() is None
    msg = Guard("evaluate", "evaluate", mem_mb=1, margin=0).check()
    assert re.fullmatch(r"rule evaluate exceeded its memory request: \d+ MB used, mem_mb is 1; "
                        r"raise config key resources.evaluate.mem_mb", msg)
    # a rule that does not name its group still says what to raise
    msg = Guard("plot_x", None, mem_mb=1, margin=0).check()
    assert msg.endswith("raise its mem_mb (config section 'resources', or --set-resources plot_x:mem_mb=...)")


def test_job_memory_counts_the_whole_process_tree():
    child = subprocess.Popen([sys.executable, "-c", "import time; hog = bytearray(b'x') * (100 << 20); "
                              "print(flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    try:
        child.stdout.readline()  # the memory is held
        assert child.pid in guard.descendants(os.getpid())
        assert guard.job_memory_mb() > guard._rss_kb(os.getpid()) / 1024 + 95
    finally:
        child.kill()
        child.wait()


# ---------------------------------------------------------------- jobs SLURM killed

TIMEOUT_LINE = "slurmstepd: error: *** JOB {id} ON node1 CANCELLED AT 2026-11-23T01:00:00 DUE TO TIME LIMIT ***\n"
OOM_LINE = ("slurmstepd: error: Detected 1 oom_kill event in StepId={id}.batch. "
            "Some of the step tasks have been OOM Killed.\n")


def slurm_log(logdir, rel, text, mtime=None):
    path = logdir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_slurm_kills_are_read_from_the_plugin_logs(tmp_path):
    logdir = tmp_path / ".snakemake" / "slurm_logs"
    start = time.time() - 60
    progress = "epoch 1: step 10 loss 0.5\n" * 100_000  # 2.6 MB before the verdict
    slurm_log(logdir, "rule_train_teacher/4242.log", progress + TIMEOUT_LINE.format(id=4242))
    slurm_log(logdir, "rule_evaluate/model_teacher/4243.log", "loading\n" + OOM_LINE.format(id=4243))
    slurm_log(logdir, "rule_tr_prune/lam_0.1/4244.log",
              "slurmstepd: error: Exceeded job memory limit at some point.\n")
    # not kills for time or memory: a Python error, a GPU out of memory, a kill from an earlier run
    slurm_log(logdir, "rule_tokenize/4245.log", "Traceback ...\nValueError: bad\n")
    slurm_log(logdir, "rule_distill/hash_ab12cd34/4246.log", "torch.OutOfMemoryError: CUDA out of memory.\n")
    slurm_log(logdir, "rule_train_teacher/4100.log", TIMEOUT_LINE.format(id=4100), mtime=start - 3600)
    kills = slurm_kills(logdir, since=start)
    assert sorted((k.rule, k.resource, k.jobid) for k in kills) == [
        ("evaluate", "mem_mb", "4243"), ("tr_prune", "mem_mb", "4244"), ("train_teacher", "runtime", "4242")]
    assert slurm_kills(tmp_path / "nowhere") == []


def test_slurm_message_names_the_rule_and_the_config_key(tmp_path):
    kill = SlurmKill("train_teacher", "runtime", "4242", tmp_path / "4242.log")
    assert slurm_message(kill, "train", 240) == (
        f"rule train_teacher exceeded its time request and SLURM killed it (runtime is 240, SLURM job 4242, "
        f"log {tmp_path / '4242.log'}); raise config key resources.train.runtime")
    kill = SlurmKill("evaluate", "mem_mb", "7", tmp_path / "7.log")
    assert "exceeded its memory request" in slurm_message(kill, "evaluate", 4000)
    assert slurm_message(kill, "evaluate", 4000).endswith("raise config key resources.evaluate.mem_mb")


@pytest.mark.slow
def test_workflow_names_rule_and_key_for_local_and_slurm_breaches(run_workflow, tmp_path):
    """Through Snakemake: the guard stops clean_data (mem_mb set to 1) and names resources.data.mem_mb;
    the onerror handler reports a SLURM time-limit kill of this run from the plugin's log folder."""
    work = tmp_path / "run"
    slurm_log(work / ".snakemake" / "slurm_logs", "rule_train_teacher/4242.log", TIMEOUT_LINE.format(id=4242),
              mtime=time.time() + 3600)  # written during the run
    r = run_workflow(work, "results/data/clean/report.json", "--set-resources", "clean_data:mem_mb=1")
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert re.search(r"rule clean_data exceeded its memory request: \d+ MB used, mem_mb is 1; "
                     r"raise config key resources.data.mem_mb", out), out[-3000:]
    assert re.search(r"rule train_teacher exceeded its time request and SLURM killed it \(runtime is 20, "
                     r"SLURM job 4242, .*\); raise config key resources.train.runtime", out), out[-3000:]
    clean = work / "results" / "data" / "clean"
    assert not clean.exists() or list(clean.iterdir()) == []


def test_job_errors_reads_this_runs_logs_once_each_in_time_order(tmp_path):
    old = tmp_path / "results" / "logs" / "old.log"
    old.parent.mkdir(parents=True)
    old.write_text("ERROR in rule tokenize: an earlier run's error\n")
    os.utime(old, (1000, 1000))
    first = tmp_path / "results" / "logs" / "clean_data.log"
    first.write_text("reading\nERROR in rule clean_data: data/test.txt:9: has 3 columns\n")
    os.utime(first, (3000, 3000))
    second = tmp_path / "slurm" / "rule_clean_data" / "77.log"  # the same line, in the SLURM job's log
    second.parent.mkdir(parents=True)
    second.write_text("srun: ...\nERROR in rule clean_data: data/test.txt:9: has 3 columns\n"
                      "ERROR in rule evaluate: no model\nnot an ERROR in rule line\n")
    os.utime(second, (4000, 4000))
    assert job_errors([tmp_path / "results", tmp_path / "slurm", tmp_path / "missing"], since=2000) == [
        "ERROR in rule clean_data: data/test.txt:9: has 3 columns", "ERROR in rule evaluate: no model"]
