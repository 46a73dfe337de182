# Thin entry point: the logic is shrink.steps.plot (unit-tested in tests/).
from shrink import steps

steps.run(steps.plot, snakemake)  # noqa: F821 (injected by Snakemake)
