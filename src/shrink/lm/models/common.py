"""Pieces the four language models share: settings checks, nanoGPT initialisation and sampling."""

import torch
import torch.nn.functional as F
from torch import nn

from ...core.errors import ConfigError, ShrinkError


def _count(v, low):
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


# key -> (test, what a valid value is); each architecture declares which keys it takes and their defaults
CHECKS = {
    "n_layer": (lambda v: _count(v, 1), "a positive integer"),
    "n_head": (lambda v: _count(v, 1), "a positive integer"),
    "mlp_multiplier": (lambda v: _count(v, 1), "a positive integer"),
    "dropout": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1,
                "a number in [0, 1)"),
    "bias": (lambda v: isinstance(v, bool), "true or false"),
    "sources": (lambda v: v is None or _count(v, 0), "null (all earlier layers) or an integer >= 0"),
}


def resolve_settings(arch, settings, defaults):
    """`defaults` overlaid with `settings`; a ConfigError names `lm.archs.<arch>.<key>` for an unknown
    key or a bad value."""
    if settings is None:
        settings = {}
    if not isinstance(settings, dict):
        raise ConfigError(f"lm.archs.{arch}", f"must be a mapping of settings, got {type(settings).__name__}")
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise ConfigError(f"lm.archs.{arch}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(defaults))})")
    resolved = {**defaults, **settings}
    for key, value in resolved.items():
        valid, what = CHECKS[key]
        if not valid(value):
            raise ConfigError(f"lm.archs.{arch}.{key}", f"must be {what}, got {value!r}")
    return resolved


def init_nanogpt(model, n_layer, residual_suffix="proj.weight"):
    """nanoGPT's initialisation: N(0, 0.02) for linear and embedding weights, zero biases, and the
    projections that write into the residual stream scaled by 1/sqrt(2 n_layer) so its variance does
    not grow with depth. Small tied embeddings keep the first logits near zero (loss near ln vocab)."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    for name, param in model.named_parameters():
        if name.endswith(residual_suffix):
            nn.init.normal_(param, mean=0.0, std=0.02 / (2 * n_layer) ** 0.5)


def sample_next(logits, temperature=1.0, top_k=None, generator=None):
    """(B, 1) next-token ids drawn from the last-position logits (B, V); temperature <= 0 is greedy."""
    if temperature <= 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(int(top_k), logits.size(-1))).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)


class CausalLM(nn.Module):
    """Base of the models: the `block_size` / `vocab_size` attributes and generation by re-running the
    (cropped) context for each new token; the GRU overrides `generate` to carry its state instead."""

    def __init__(self, vocab_size, block_size):
        super().__init__()
        self.vocab_size, self.block_size = int(vocab_size), int(block_size)

    def check_length(self, idx):
        """For models with learned positions: a longer input has no position embedding to use."""
        if idx.size(1) > self.block_size:
            raise ShrinkError(f"sequence of {idx.size(1)} tokens is longer than the model's block_size "
                              f"{self.block_size}")

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None):
        """idx (B, T) extended by `max_new_tokens` sampled tokens; each step sees the last block_size tokens.
        Dropout stays as the caller set it: call model.eval() first for reproducible samples."""
        for _ in range(max_new_tokens):
            logits = self(idx[:, -self.block_size:])
            idx = torch.cat([idx, sample_next(logits[:, -1], temperature, top_k, generator)], dim=1)
        return idx
