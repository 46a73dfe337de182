"""Encoder-head pruning of a trained translation model (Voita et al. 2019).

Each encoder self-attention head gets a hard-concrete gate (the shared `methods.gates` module)
in front of the output projection. Only the gates train, on cross-entropy + lambda * E[L0];
every model weight, decoder included, stays frozen, and `assert_unchanged` proves it at the end
of training. Closed heads are then cut out of the q/k/v/out weights, with the open gates' eval
values folded into the output projection, so the pruned model computes what the gated one did.
"""

import torch
from torch import nn

from ..core.errors import TrainingError
from ..methods.attention_heads import head_scales, heads_kept, slice_linear
from ..methods.gates import GatedHeads, HardConcreteGates
from .model import Attention


class EncoderHeadGates(nn.Module):
    """The gate-training objective. Freezes `model`; its only trainable parameters are the gates."""

    def __init__(self, model, lam, init_open=0.99, label_smoothing=0.0):
        super().__init__()
        cfg = model.config
        if cfg.encoder_heads is not None:
            raise ValueError("gate an unpruned model: this one already had encoder heads removed")
        self.model, self.lam, self.label_smoothing = model, lam, label_smoothing
        model.requires_grad_(False)
        self.gates = HardConcreteGates((cfg.encoder_layers, cfg.heads), init_open=init_open)
        self.attached = GatedHeads(model.encoder, self.gates)  # one sample per encoder pass
        for i, layer in enumerate(model.encoder.layers):
            self.attached.gate(layer.self_attn.out, i, cfg.heads)

    def forward(self, batch):
        task = self.model.loss(batch, self.label_smoothing)
        l0 = self.gates.expected_l0()
        return task + self.lam * l0, {"task": task.detach(), "expected_heads": l0.detach()}

    @torch.no_grad()
    def log_rows(self, step):
        p, value = self.gates.open_probability(), self.gates.deterministic()
        return [{"step": step, "layer": i, "head": h, "p_open": round(float(p[i, h]), 6),
                 "gate": round(float(value[i, h]), 6)} for i in range(p.shape[0]) for h in range(p.shape[1])]

    def eval_row(self):
        return {"heads_open": int(self.gates.keep_mask().sum()),
                "expected_heads": round(float(self.gates.expected_l0()), 4)}

    def export(self):
        """Remove the gates and the closed heads from the model, in place; returns {layer: kept heads}."""
        keep, scale = heads_kept(self.gates), head_scales(self.gates)
        self.attached.remove()
        prune_encoder_heads(self.model, keep, scale)
        return keep


def prune_encoder_heads(model, keep, scale=None):
    """Keep heads keep[i] of encoder layer i, scaling each kept head's output by scale[i]."""
    cfg = model.config
    hd = cfg.head_dim
    for i, layer in enumerate(model.encoder.layers):
        heads = sorted(keep.get(i, range(layer.self_attn.n_heads)))
        factors = dict(zip(sorted(keep.get(i, [])), scale.get(i, []))) if scale else {}
        old = layer.self_attn
        new = Attention(cfg.d_model, len(heads), hd, old.dropout)
        idx = (torch.tensor(heads, dtype=torch.long)[:, None] * hd + torch.arange(hd)).flatten()
        col_scale = torch.tensor([factors.get(h, 1.0) for h in heads]).repeat_interleave(hd)
        for name in ("q", "k", "v"):
            slice_linear(getattr(old, name), idx, 0)
            getattr(new, name).load_state_dict(getattr(old, name).state_dict())
        slice_linear(old.out, idx, 1, col_scale)
        new.out.load_state_dict(old.out.state_dict())
        layer.self_attn = new.requires_grad_(old.out.weight.requires_grad)
    cfg.encoder_heads = [sorted(keep.get(i, range(cfg.heads))) for i in range(cfg.encoder_layers)]
    return model


def snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def assert_unchanged(model, before):
    """Raise if any parameter of `model` differs from the snapshot `before` (a frozen-weights check)."""
    changed = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]
    if changed:
        raise TrainingError(f"{len(changed)} frozen parameters changed during gate training, e.g. {changed[:3]}")
    return len(before)
