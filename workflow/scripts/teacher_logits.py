# Thin entry point: the logic is shrink.steps.teacher_logits; the package is tested in tests/.
import sys
from pathlib import Path

# Import the package from this checkout, also inside a --sdm conda env without `pip install -e .`
# (Snakemake sets __file__ to this script's real path).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from shrink import steps  # noqa: E402

steps.run(steps.teacher_logits, snakemake)  # noqa: F821
