"""The CI-sized translation run on a real SLURM cluster (tests/cluster/start_slurm.sh starts one).

Checked from SLURM's own records (its job-completion log and `squeue -t all`), not from Snakemake's:
every rule ran as a SLURM job, with the CPUs and memory of its config resources; a training job
cancelled mid-run (`scancel`) was resubmitted by the profile's `retries` and resumed from its
checkpoint; and the results equal a local run's.
"""

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import REPO, TEST_CONFIG, TRANSLATION_CONFIG, completed_run, snakemake
from test_workflow import planned_jobs

pytestmark = pytest.mark.slow
SLURM_CI_DIR = Path(os.environ.get("SLURM_CI_DIR", "/tmp/shrink-slurm"))
JOBCOMP = SLURM_CI_DIR / "jobcomp.log"
PROFILE = REPO / "profiles" / "slurm-ci"
# The command docs/cluster.md shows for this cluster, as the test runs it.
COMMAND = "snakemake --workflow-profile profiles/slurm-ci --configfile .test/config.yaml .test/translation.yaml"


def slurm_up():
    try:
        r = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=10)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and bool({"idle", "mix"} & set(r.stdout.split()))


@pytest.fixture(scope="module", autouse=True)
def cluster():
    if not slurm_up():
        if os.environ.get("SHRINK_REQUIRE_SLURM"):  # CI starts SLURM: a missing cluster is a failure there
            pytest.fail("SHRINK_REQUIRE_SLURM is set but no idle SLURM node answers sinfo")
        pytest.skip("no SLURM cluster (bash tests/cluster/start_slurm.sh starts one)")


def job_records(since):
    """JobId -> fields of the job-completion log lines after line `since` (one line per finished job)."""
    lines = JOBCOMP.read_text().splitlines()[since:] if JOBCOMP.exists() else []
    return {f["JobId"]: f for f in (dict(re.findall(r"(\w+)=(\S*)", line)) for line in lines)}


def job_rules(ids):
    """JobId -> rule, from the comment the executor plugin gives every job ("rule_<name>[_wildcards_...]")."""
    r = subprocess.run(["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i|%k"],
                       capture_output=True, text=True, check=True)
    out = {}
    for line in r.stdout.split():
        jobid, comment = line.split("|", 1)
        out[jobid] = re.match(r"rule_(.+?)(_wildcards_.*)?$", comment).group(1)
    return out


def cancel_teacher_after_checkpoint(workdir, stop, cancelled):
    """Wait for the teacher's first checkpoint after step 0, then scancel its SLURM job."""
    state = workdir / "results/translation/checkpoints/teacher/last/state.json"
    while not stop.is_set():
        try:
            step = json.loads(state.read_text())["step"]
        except (OSError, ValueError, KeyError):
            step = 0
        if step > 0:
            r = subprocess.run(["squeue", "-h", "-o", "%i|%k|%T"], capture_output=True, text=True)
            for line in r.stdout.split():
                jobid, comment, status = line.split("|")
                if comment == "rule_tr_train_teacher" and status == "RUNNING":
                    subprocess.run(["scancel", jobid], check=True)
                    cancelled.append((jobid, step))
                    return
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cluster")
    since = len(JOBCOMP.read_text().splitlines()) if JOBCOMP.exists() else 0
    # From the repository, as a user types it; only the working directory differs.
    cmd = [sys.executable, "-m", *COMMAND.split(), "--directory", str(workdir)]
    stop, cancelled = threading.Event(), []
    killer = threading.Thread(target=cancel_teacher_after_checkpoint, args=(workdir, stop, cancelled), daemon=True)
    killer.start()
    t0 = time.perf_counter()
    # The plugin's status loop ignores SIGTERM, hence `timeout -k` (SIGKILL 10 s after SIGTERM).
    r = subprocess.run(["timeout", "-k", "10", "900", *cmd], capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - t0
    stop.set()
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    records = job_records(since)
    return workdir, records, job_rules(list(records)), cancelled, seconds


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    return completed_run(tmp_path_factory.mktemp("local"), configfiles=[TRANSLATION_CONFIG])


def test_docs_show_the_command_this_test_runs():
    assert COMMAND in (REPO / "docs" / "cluster.md").read_text()
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm" and profile["retries"] >= 1


def test_every_rule_ran_as_a_slurm_job(cluster_run, tmp_path):
    workdir, records, rules, cancelled, seconds = cluster_run
    # What a local run of the same config executes (the `all` target rule runs no code).
    dry = snakemake(tmp_path, "-n", configfiles=[TRANSLATION_CONFIG])
    expected = {rule: n for rule, n in planned_jobs(dry.stdout).items() if rule != "all"}
    completed = Counter(rules[j] for j, f in records.items() if f["JobState"] == "COMPLETED")
    assert dict(completed) == expected, (completed, expected)
    print(f"{sum(completed.values())} SLURM jobs in {seconds:.0f} s")


def test_jobs_asked_for_their_config_resources(cluster_run):
    """SLURM granted each job the CPUs, memory and time limit its config resource group names."""
    _, records, rules, _, _ = cluster_run
    resources = yaml.safe_load(TEST_CONFIG.read_text())["resources"]  # the CI config sets every group
    group = {"tr_train_teacher": "train", "tr_prune": "train", "tr_evaluate": "evaluate",
             "tr_get_raw": "data", "tr_clean": "data", "tr_vocab": "data", "tr_tokenize": "data"}
    for jobid, f in records.items():
        want = resources[group.get(rules[jobid], "default")]
        tres = dict(kv.split("=") for kv in f["Tres"].split(","))
        assert (int(tres["cpu"]), tres["mem"]) == (want["threads"], f"{want['mem_mb']}M"), (rules[jobid], f)
        assert f["TimeLimit"] == str(want["runtime"]), (rules[jobid], f["TimeLimit"])  # minutes


def test_cancelled_training_job_was_retried_and_resumed(cluster_run):
    workdir, records, rules, cancelled, _ = cluster_run
    assert cancelled, "the teacher finished before its first checkpoint could be cancelled"
    jobid, step = cancelled[0]
    teacher = sorted((int(j), records[j]["JobState"]) for j in records if rules[j] == "tr_train_teacher")
    assert teacher[0] == (int(jobid), "CANCELLED") and teacher[-1][1] == "COMPLETED", teacher
    log = (workdir / "results/translation/logs/train_teacher.log").read_text()
    assert re.search(rf"resuming from \S+ at step {step} of", log), log[-2000:]


def _scores(workdir):
    out = {}
    for path in sorted((workdir / "results/translation/metrics").glob("*.json")):
        m = json.loads(path.read_text())
        out[path.stem] = {"test": m["test"], "other": m.get("other_tests"), "structure": m.get("structure")}
    for path in sorted((workdir / "results/translation/train").glob("*/prune.json")):
        out[path.parent.name] = json.loads(path.read_text())["keep"]
    return out


def test_results_equal_a_local_run(cluster_run, local_run):
    """Same seed, same CPU: the interrupted cluster run ends with the local run's scores and gates."""
    workdir = cluster_run[0]
    assert _scores(workdir) == _scores(local_run)


def test_a_failed_jobs_error_reaches_the_console(tmp_path):
    """Under SLURM a job's stderr goes to its SLURM log, not the console: the workflow's `onerror`
    prints each failed job's one-line error after Snakemake's own error block (`message: None`)."""
    from shrink.ner.synthetic import write_corpus

    data = write_corpus(tmp_path / "data", {"train": 40, "validation": 10, "test": 10}, seed=1)
    lines = (data / "test.txt").read_text().splitlines()
    bad = next(i for i, line in enumerate(lines) if len(line.split()) == 4 and i > 5)
    lines[bad] = " ".join(lines[bad].split()[:3])
    (data / "test.txt").write_text("\n".join(lines) + "\n")
    r = snakemake(tmp_path / "run", "--workflow-profile", str(PROFILE), "results/data/clean/report.json",
                  config={"data": {"source": "local", "conll_dir": str(data)}})
    assert r.returncode != 0
    assert "slurm" in (r.stdout + r.stderr).lower()  # it did run under the SLURM executor
    line = f"ERROR in rule clean_data: {data / 'test.txt'}:{bad + 1}: has 3 columns, the rest of the file has 4"
    summary = r.stderr.rfind("The failed jobs said:")
    assert summary > r.stderr.find("Error in rule clean_data") >= 0, r.stderr[-3000:]
    assert line in r.stderr[summary:], r.stderr[-3000:]
