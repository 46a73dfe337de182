# Thin entry point for every definition-matching rule: shrink.defmatch.steps picks the step by rule name.
import sys
from pathlib import Path

# Import the package from this checkout, also inside a --sdm conda env without `pip install -e .`.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from shrink import steps  # noqa: E402
from shrink.defmatch.steps import dispatch  # noqa: E402

steps.run(dispatch, snakemake)  # noqa: F821
