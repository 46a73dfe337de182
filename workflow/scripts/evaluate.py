# Thin entry point: the logic is shrink.steps.evaluate (unit-tested in tests/).
from shrink import steps

steps.run(steps.evaluate, snakemake)  # noqa: F821 (injected by Snakemake)
