import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / ".test" / "config.yaml"


def snakemake(workdir, *args, config=None, timeout=900, env=None):
    """Run the repository's workflow in `workdir` with the CI config plus `config` overrides."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--cores", "2", "--configfile", str(TEST_CONFIG)]
    if config:
        extra = Path(workdir) / "override.yaml"
        Path(workdir).mkdir(parents=True, exist_ok=True)
        extra.write_text(yaml.safe_dump(config))
        cmd.append(str(extra))
    cmd += ["--", *args] if args else []
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
