# The one entry point of every lm rule: shrink.core.harness.run_job runs shrink.lm.jobs.JOBS[rule].
import sys
from pathlib import Path

# Import the package from this checkout, also inside a --sdm conda env without `pip install -e .`
# (Snakemake sets __file__ to this script's real path).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from shrink.core.harness import run_job  # noqa: E402

# A training job with train.processes > 1 spawns worker processes, which import this file again as
# __mp_main__: only the process Snakemake started runs the job.
if __name__ == "__main__":
    run_job(snakemake, "lm")  # noqa: F821
