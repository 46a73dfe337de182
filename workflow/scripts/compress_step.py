# Thin entry point: the logic is shrink.steps.compress_step; the package is tested in tests/.
import sys
from pathlib import Path

# Import the package from this checkout, also inside a --sdm conda env without `pip install -e .`
# (Snakemake sets __file__ to this script's real path).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from shrink import steps  # noqa: E402

# With train.processes > 1 the step spawns worker processes, which import this file again as
# __mp_main__: only the process Snakemake started runs the step.
if __name__ == "__main__":
    steps.run(steps.compress_step, snakemake)  # noqa: F821
