# Thin entry point: the logic is shrink.steps.summary (unit-tested in tests/).
from shrink import steps

steps.run(steps.summary, snakemake)  # noqa: F821 (injected by Snakemake)
