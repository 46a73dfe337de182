# Thin entry point: the logic is shrink.steps.get_raw (unit-tested in tests/).
from shrink import steps

steps.run(steps.get_raw, snakemake)  # noqa: F821 (injected by Snakemake)
