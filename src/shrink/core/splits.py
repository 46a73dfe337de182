"""The three splits every task reads, in this order. Only validation picks anything; test is only reported."""

SPLITS = ("train", "validation", "test")
