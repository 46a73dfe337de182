"""Training hard-concrete head gates on a token classifier (Voita et al. 2019), then removing the
closed heads physically.

The objective is the task loss (or distillation from the cached teacher logits) plus
lambda * E[L0], the expected number of open heads. Gates start open on the converged model and
train with their own, larger learning rate (log-alpha must travel several units to close a gate,
while the encoder weights only need small corrections).
"""

import copy

import torch
from torch import nn

from ..core.distributed import global_mean
from .attention_heads import (
    attach_head_gates,
    gate_shape,
    head_scales,
    heads_kept,
    prune_heads,
)
from .distill import kd_loss
from .gates import HardConcreteGates
from .ops import record_op


class HeadGateObjective(nn.Module):
    def __init__(self, model, lam, init_open=0.99, gate_lr=0.05, freeze_model=False, cache=None, alpha=0.5,
                 temperature=2.0):
        super().__init__()
        self.model, self.lam, self.gate_lr = model, lam, gate_lr
        self.gates = HardConcreteGates(gate_shape(model), init_open=init_open)
        self.cache, self.alpha, self.temperature = cache, alpha, temperature
        if freeze_model:
            model.requires_grad_(False)
        self.gated = attach_head_gates(model, self.gates)

    def optimizer_groups(self, groups):
        """The trainer's parameter groups, with the gates moved to a group of their own learning rate."""
        gate_ids = {id(p) for p in self.gates.parameters()}
        for g in groups:
            g["params"] = [p for p in g["params"] if id(p) not in gate_ids]
        return [g for g in groups if g["params"]] + [
            {"params": list(self.gates.parameters()), "weight_decay": 0.0, "lr": self.gate_lr}]

    def forward(self, batch, indices):
        if self.cache is None:
            task, parts = global_mean(self.model(**batch).loss, (batch["labels"] != -100).sum()), {}
        else:
            logits = self.model(**{k: v for k, v in batch.items() if k != "labels"}).logits
            teacher = self.cache.batch(indices, logits.shape[1]).to(logits.device)
            task, parts = kd_loss(logits, teacher, batch["labels"], batch["attention_mask"], self.alpha,
                                  self.temperature)
        l0 = self.gates.expected_l0()
        parts.update(task=task.detach(), expected_heads=l0.detach())
        return task + self.lam * l0, parts

    @torch.no_grad()
    def log_rows(self, step, epoch):
        p, value = self.gates.open_probability(), self.gates.deterministic()
        return [{"step": step, "epoch": epoch, "layer": i, "head": h, "p_open": round(float(p[i, h]), 6),
                 "gate": round(float(value[i, h]), 6)}
                for i in range(p.shape[0]) for h in range(p.shape[1])]

    def export(self, model):
        """A copy of `model` with closed heads removed and the open ones' eval gate values folded in."""
        keep, scale = heads_kept(self.gates), head_scales(self.gates)
        self.gated.remove()  # hooks must not travel into the copy
        try:
            pruned = copy.deepcopy(model)
        finally:
            self.gated = attach_head_gates(model, self.gates)
        prune_heads(pruned, keep, scale)
        return record_op(pruned, "prune_heads", keep={str(k): v for k, v in keep.items()})
