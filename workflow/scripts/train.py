# Thin entry point: the logic is shrink.steps.train (unit-tested in tests/).
from shrink import steps

steps.run(steps.train, snakemake)  # noqa: F821 (injected by Snakemake)
