# Thin entry point: the logic is shrink.steps.tokenize (unit-tested in tests/).
from shrink import steps

steps.run(steps.tokenize, snakemake)  # noqa: F821 (injected by Snakemake)
