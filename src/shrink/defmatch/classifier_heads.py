"""Small heads scoring whether a usage (word vector u) matches a definition (vector v).

The first three follow the seed report's experiments, with its 1024-dim encoder width replaced by
the feature width d:
  towers        exp 1: per side tanh(Linear(d,d)) twice, Linear(d,1) on the elementwise product
  bottleneck32  exp 2: per side Linear(d,32) -> tanh -> Linear(32,1), one scalar each; their
                product through Linear(1,1) (a rank-one match: a deliberately weak design to compare)
  towers128_32  exp 3/4: per side Linear(d,128) -> tanh -> Linear(128,32) -> tanh, Linear(32,1)
                on the product
  logreg        a plain baseline: logistic regression on [u, v, u*v, |u-v|]
Every head returns one logit per pair (the sigmoid lives in the loss). Inputs are standardised
with the training features' per-dimension mean and std (stored as buffers, so a saved state
carries them): summed hidden states are large and would saturate tanh.
"""

import torch
from torch import nn

from ..core.errors import ConfigError

HEAD_KEY = "definition_match.heads"
SETTINGS_KEY = "definition_match.head"
DEFAULTS = {"dropout": 0.0, "seed": 0}


class PairHead(nn.Module):
    def __init__(self, dim, dropout):
        super().__init__()
        for name, value in (("u_mean", 0.0), ("u_std", 1.0), ("v_mean", 0.0), ("v_std", 1.0)):
            self.register_buffer(name, torch.full((dim,), value))
        self.drop = nn.Dropout(dropout)

    @torch.no_grad()
    def fit_standardization(self, u, v):
        """Take the per-dimension mean and std from training features (std floored to avoid division by 0)."""
        self.u_mean.copy_(u.mean(0))
        self.u_std.copy_(u.std(0, unbiased=False).clamp_min(1e-6))
        self.v_mean.copy_(v.mean(0))
        self.v_std.copy_(v.std(0, unbiased=False).clamp_min(1e-6))

    def forward(self, u, v):
        u = self.drop((u - self.u_mean) / self.u_std)
        v = self.drop((v - self.v_mean) / self.v_std)
        return self.score(u, v)


def _tower(sizes):
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*layers)


class ProductTowers(PairHead):
    """Each side through its own tanh tower; a linear layer scores the towers' elementwise product."""

    def __init__(self, dim, sizes, dropout):
        super().__init__(dim, dropout)
        self.word = _tower([dim, *sizes])
        self.definition = _tower([dim, *sizes])
        self.out = nn.Linear(sizes[-1], 1)

    def score(self, u, v):
        return self.out(self.word(u) * self.definition(v)).squeeze(-1)


class Bottleneck(PairHead):
    def __init__(self, dim, width, dropout):
        super().__init__(dim, dropout)
        self.word = nn.Sequential(nn.Linear(dim, width), nn.Tanh(), nn.Linear(width, 1))
        self.definition = nn.Sequential(nn.Linear(dim, width), nn.Tanh(), nn.Linear(width, 1))
        self.out = nn.Linear(1, 1)

    def score(self, u, v):
        return self.out(self.word(u) * self.definition(v)).squeeze(-1)


class LogReg(PairHead):
    def __init__(self, dim, dropout):
        super().__init__(dim, dropout)
        self.out = nn.Linear(4 * dim, 1)

    def score(self, u, v):
        return self.out(torch.cat([u, v, u * v, (u - v).abs()], dim=-1)).squeeze(-1)


HEADS = {
    "towers": lambda d, p: ProductTowers(d, [d, d], p),
    "bottleneck32": lambda d, p: Bottleneck(d, 32, p),
    "towers128_32": lambda d, p: ProductTowers(d, [128, 32], p),
    "logreg": lambda d, p: LogReg(d, p),
}


def build_head(name, dim, settings=None):
    """A head by name for features of width `dim`; settings: dropout (on the inputs), seed (initialisation)."""
    settings = dict(settings or {})
    if name not in HEADS:
        raise ConfigError(HEAD_KEY, f"unknown head {name!r} (known: {', '.join(HEADS)})")
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"{SETTINGS_KEY}.{unknown[0]}", f"unknown key (known: {', '.join(DEFAULTS)})")
    cfg = {**DEFAULTS, **settings}
    if not 0 <= cfg["dropout"] < 1:
        raise ConfigError(f"{SETTINGS_KEY}.dropout", f"must be in [0, 1), got {cfg['dropout']!r}")
    # Initialise from the seed without disturbing the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg["seed"]))
        return HEADS[name](int(dim), float(cfg["dropout"]))
