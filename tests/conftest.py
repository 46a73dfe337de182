import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / ".test" / "config.yaml"


WORKFLOW_FILES = ("Snakefile", "config.yaml", "rules", "workflow", "schemas", "report", "envs", "src/shrink")


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


def snakemake(workdir, *args, config=None, timeout=900, env=None, snakefile=REPO / "Snakefile"):
    """Run the workflow in `workdir` with the CI config plus `config` overrides."""
    # --configfile takes several values, so it goes last, after targets and flags
    cmd = [sys.executable, "-m", "snakemake", *args, "-s", str(snakefile), "--directory", str(workdir),
           "--cores", "2", "--configfile", str(TEST_CONFIG)]
    if config:
        extra = Path(workdir) / "override.yaml"
        Path(workdir).mkdir(parents=True, exist_ok=True)
        extra.write_text(yaml.safe_dump(config))
        cmd.append(str(extra))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture
def run_workflow():
    return snakemake


@pytest.fixture(scope="session")
def conll_dir():
    path = os.environ.get("CONLL2003_DIR")
    if not path or not (Path(path) / "train.txt").is_file():
        pytest.skip("CONLL2003_DIR is not set to a CoNLL-2003 folder")
    return Path(path)
