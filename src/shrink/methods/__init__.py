"""Compression methods; each module implements one paper and is tested on its own."""
