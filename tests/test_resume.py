"""A training job killed mid-epoch resumes from its last epoch checkpoint and ends where an
uninterrupted run ends (same seed, CPU)."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import REPO, TEST_CONFIG

pytestmark = pytest.mark.slow

# 4,800 train sentences: an epoch long enough (several seconds at one thread) that a kill 0.5 s after the
# epoch-1 checkpoint lands inside epoch 2 even on a fast CPU (2,400 sentences once let epoch 2 finish first)
CONFIG = {"data": {"synthetic": {"sizes": {"train": 4800, "validation": 80, "test": 80}}},
          "train": {"epochs": 3, "log_every": 20}}
TARGET = "results/train/teacher/epochs.csv"


def test_killed_training_resumes_and_matches(run_workflow, tmp_path):
    import yaml

    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "override.yaml").write_text(yaml.safe_dump(CONFIG))
    cmd = [sys.executable, "-m", "snakemake", TARGET, "-s", str(REPO / "Snakefile"), "--directory", str(killed),
           "--cores", "2", "--configfile", str(TEST_CONFIG), str(killed / "override.yaml")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ckpt = killed / "results" / "checkpoints" / "teacher"
    deadline = time.time() + 300
    while not (ckpt / "epoch-1" / "state.json").exists():
        assert proc.poll() is None, "the workflow ended before its first checkpoint"
        assert time.time() < deadline, "no checkpoint after 300 s"
        time.sleep(0.05)
    time.sleep(0.5)  # inside epoch 2
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (ckpt / "epoch-2").exists(), "the kill came too late to test a mid-epoch resume"
    assert not (killed / TARGET).exists()

    assert run_workflow(killed, "--unlock", config=CONFIG).returncode == 0
    r = run_workflow(killed, TARGET, "--rerun-incomplete", config=CONFIG)
    assert r.returncode == 0, r.stderr[-3000:]
    log = (killed / "results" / "logs" / "train_teacher.log").read_text()
    assert "resuming from" in log and "(epoch 1 of 3 done)" in log
    assert "epoch 1/3" not in log  # epoch 1 was not trained again

    reference = tmp_path / "reference"
    r = run_workflow(reference, TARGET, config=CONFIG)
    assert r.returncode == 0, r.stderr[-3000:]
    cols = ["epoch", "step", "train_loss", "val_f1"]
    resumed = pd.read_csv(killed / TARGET)[cols]
    uninterrupted = pd.read_csv(reference / TARGET)[cols]
    pd.testing.assert_frame_equal(resumed, uninterrupted)
    steps_resumed = pd.read_csv(killed / "results" / "train" / "teacher" / "steps.csv")
    steps_reference = pd.read_csv(reference / "results" / "train" / "teacher" / "steps.csv")
    pd.testing.assert_frame_equal(steps_resumed, steps_reference)
