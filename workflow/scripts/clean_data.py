# Thin entry point: the logic is shrink.steps.clean (unit-tested in tests/).
from shrink import steps

steps.run(steps.clean, snakemake)  # noqa: F821 (injected by Snakemake)
