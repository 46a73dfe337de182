"""Matplotlib without a display, and figures written atomically. No torch: replotting takes seconds."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .atomic import atomic_path  # noqa: E402

__all__ = ["plt", "save_figure"]


def save_figure(fig, out):
    """Write `fig` to `out` (format from the suffix, PNG by default) and close it."""
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format=Path(out).suffix.lstrip(".") or "png")
    plt.close(fig)
