import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / ".test" / "config.yaml"


TRANSLATION_CONFIG = REPO / ".test" / "translation.yaml"
LM_CONFIG = REPO / ".test" / "lm.yaml"
DM_CONFIG = REPO / ".test" / "definition_match.yaml"
WORKFLOW_FILES = ("Snakefile", "config.yaml", "config", "rules", "workflow", "schemas", "report", "envs", "src/shrink")


def copy_workflow(dest):
    """A copy of the workflow's files, for tests that edit code (the installed package still runs)."""
    import shutil

    for name in WORKFLOW_FILES:
        src, dst = REPO / name, Path(dest) / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    return Path(dest) / "Snakefile"


def snakemake(workdir, *args, config=None, timeout=900, env=None, snakefile=REPO / "Snakefile", configfiles=()):
    """Run the workflow in `workdir` with the CI config, then `configfiles`, plus `config` overrides."""
    # --configfile takes several values, so it goes last, after targets and flags
    cmd = [sys.executable, "-m", "snakemake", *args, "-s", str(snakefile), "--directory", str(workdir),
           "--cores", "2", "--configfile", str(TEST_CONFIG), *map(str, configfiles)]
    if config:
        extra = Path(workdir) / "override.yaml"
        Path(workdir).mkdir(parents=True, exist_ok=True)
        extra.write_text(yaml.safe_dump(config))
        cmd.append(str(extra))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def completed_run(workdir, **kwargs):
    """snakemake() in `workdir`, failing the test with the end of stderr unless it succeeds; returns workdir."""
    r = snakemake(workdir, **kwargs)
    assert r.returncode == 0, r.stderr[-4000:]
    return workdir


def planned_resources(dry_run_output):
    """rule -> its first job's resources, from the output of `snakemake -n`."""
    out, rule = {}, None
    for line in dry_run_output.splitlines():
        if line.startswith("rule ") and line.endswith(":"):
            rule = line[5:-1]
        elif line.strip().startswith("resources:") and rule and rule not in out:
            pairs = (kv.split("=", 1) for kv in line.split(":", 1)[1].split(", "))
            out[rule] = {k.strip(): int(v) if v.isdigit() else v for k, v in pairs}
    return out



def sbatch_line(resources, threads):
    """The sbatch command line the SLURM executor plugin would submit for a job with these resources
    (its own submit-string code; only the job's identity is filled in)."""
    import types

    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    class Resources(dict):
        __getattr__ = dict.__getitem__

    job = types.SimpleNamespace(threads=threads, resources=Resources(resources))
    params = dict(run_uuid="job", slurm_logfile="log", comment_str="rule", account="", partition="", workdir="")
    return get_submit_command(job, params) + set_gres_string(job) + " "


@pytest.fixture
def run_workflow():
    return snakemake


def missing_corpus(why):
    """A real-data test without its corpus: skipped on a developer's machine, a failure where
    SHRINK_REQUIRE_DATA is set (.ci/run sets it, so CI never passes by skipping)."""
    if os.environ.get("SHRINK_REQUIRE_DATA"):
        pytest.fail(f"SHRINK_REQUIRE_DATA is set but {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def conll_dir():
    path = os.environ.get("CONLL2003_DIR")
    if not path or not (Path(path) / "train.txt").is_file():
        missing_corpus("CONLL2003_DIR is not set to a CoNLL-2003 folder")
    return Path(path)


def make_tiny_bert(seed=0, hidden=32, layers=4, heads=4, ffn=64, vocab=100, labels=5, dropout=0.0):
    """A small random BertForTokenClassification (dropout off unless asked, so outputs are comparable)."""
    import torch
    from transformers import AutoModelForTokenClassification, BertConfig

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=ffn, num_labels=labels, hidden_dropout_prob=dropout,
                        attention_probs_dropout_prob=dropout, max_position_embeddings=64)
    return AutoModelForTokenClassification.from_config(config).eval()


def make_batch(seed=0, batch=3, length=9, vocab=100, labels=5):
    """Token ids with padding at the end of all rows but the first, and labels (-100 on padding)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.long)
    for row in range(1, batch):
        mask[row, length - 2 * row:] = 0
    y = torch.randint(0, labels, (batch, length), generator=g).masked_fill(mask == 0, -100)
    return {"input_ids": ids * mask, "attention_mask": mask, "labels": y}


@pytest.fixture
def tiny_bert():
    return make_tiny_bert


@pytest.fixture
def batch():
    return make_batch
