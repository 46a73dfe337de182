"""Four causal language models behind one interface (see each module's docstring for its design):

  transformer  nanoGPT-shaped decoder-only Transformer                     transformer.py
  gru          embedding -> multi-layer GRU -> LayerNorm                    gru.py
  bdh          BDH-GPU, "The Dragon Hatchling" (Kosowski et al. 2025)       bdh.py
  reflex       Transformer whose attention also reads earlier layers' states reflex.py

Every model maps token ids (B, T) to logits (B, T, vocab_size), has `block_size`, `vocab_size` and
`generate(idx, max_new_tokens, temperature=1.0, top_k=None, generator=None)`, and ties its output head
to the input embedding, so the embedding takes the same share of a parameter budget in each.
"""

import torch

from ...core.errors import ConfigError, ShrinkError
from . import bdh, gru, reflex, transformer
from .common import resolve_settings

ARCHS = ("transformer", "gru", "bdh", "reflex")

# arch -> (its settings with their defaults, the model class)
_REGISTRY = {
    "transformer": (transformer.DEFAULTS, transformer.Transformer),
    "gru": (gru.DEFAULTS, gru.GRULM),
    "bdh": (bdh.DEFAULTS, bdh.BDH),
    "reflex": (reflex.DEFAULTS, reflex.ReflexTransformer),
}


def _resolve(arch, settings):
    if arch not in _REGISTRY:
        raise ConfigError("lm.archs", f"unknown architecture {arch!r} (known: {', '.join(ARCHS)})")
    defaults, cls = _REGISTRY[arch]
    return resolve_settings(arch, settings, defaults), cls


def _width_step(cfg):
    """Widths are multiples of 2 n_head: heads split the width evenly and RoPE pairs coordinates."""
    return 2 * cfg.get("n_head", 1)


def build(arch, vocab_size, block_size, width, settings):
    """A freshly initialised `arch` model. `settings` is the config section lm.archs.<arch>."""
    cfg, cls = _resolve(arch, settings)
    step = _width_step(cfg)
    if not isinstance(width, int) or width < step or width % step:
        raise ConfigError(f"lm.archs.{arch}.n_head" if "n_head" in cfg else f"lm.archs.{arch}",
                          f"width {width!r} must be a positive multiple of {step} (2 * n_head)")
    if vocab_size < 1 or block_size < 1:
        raise ShrinkError(f"vocab_size ({vocab_size}) and block_size ({block_size}) must be positive")
    return cls(vocab_size, block_size, width, **cfg)


def count_params(model):
    """Number of parameters, each shared tensor (the tied embedding/head) counted once."""
    unique = {id(p): p.numel() for p in model.parameters()}
    return sum(unique.values())


def fit_width(arch, vocab_size, block_size, budget, settings):
    """The width (a multiple of 2 n_head) whose parameter count is closest to `budget` (ties: smaller)."""
    cfg, cls = _resolve(arch, settings)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget < 1 or budget != int(budget):
        raise ShrinkError(f"parameter budget must be a positive integer, got {budget!r}")
    budget = int(budget)  # YAML may give 2e6
    step = _width_step(cfg)
    # Every parameter is a width x c*width matrix, a vector of c*width or a table of rows x width, so the
    # count is a quadratic in the width: tiny real builds at widths 1, 2, 3 (x step) pin it down exactly
    # (Newton's form from finite differences) and a fourth checks that this still holds.
    with torch.random.fork_rng(devices=[]):  # the builds' random init must not move the caller's RNG
        p1, p2, p3, p4 = (count_params(cls(vocab_size, block_size, k * step, **cfg)) for k in (1, 2, 3, 4))
    d1, d2 = p2 - p1, p3 - 2 * p2 + p1

    def params(k):  # parameter count at width k * step
        return p1 + (k - 1) * d1 + (k - 1) * (k - 2) // 2 * d2

    if params(4) != p4:
        raise RuntimeError(f"{arch}: parameter count is not quadratic in the width; fit_width needs updating")
    hi = 1  # the count grows with the width: double, then bisect, to bracket the budget
    while params(hi) < budget:
        hi *= 2
    lo = hi // 2  # params(lo) < budget <= params(hi), or lo == 0 when the smallest width is already over
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if params(mid) < budget else (lo, mid)
    best = lo if lo >= 1 and budget - params(lo) <= params(hi) - budget else hi
    return best * step
