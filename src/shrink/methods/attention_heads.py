"""BERT adapter for head gates, and physical removal of attention heads.

transformers 5 no longer ships `prune_heads` / `head_mask`, so heads are removed here by slicing:
rows of the query/key/value projections and columns of the attention output dense. Which heads a layer
keeps (as indices of the original heads) is stored in `config.pruned_heads_kept` ({"layer": [heads]},
JSON-safe), so `restructure_from_config` can rebuild the shapes on a fresh model before its state dict
is loaded.
"""

import torch
from torch import nn
from transformers.models.bert.modeling_bert import BertSelfAttention

from .gates import GatedHeads, HardConcreteGates


def _layers(model):
    # base_model is the BertModel itself or the .bert inside a task model.
    return model.base_model.encoder.layer


def attach_bert_head_gates(model, gates: HardConcreteGates) -> GatedHeads:
    """Gate layer i's heads with gates()[i], sampled once per forward of the BERT encoder model.

    The sample is drawn by a forward pre-hook on `model.base_model`, so every layer of one pass sees
    the same draw, whether the task model or the base model is called. Detach (remove()) before pruning.
    """
    layers = _layers(model)
    num_heads = {layer.attention.self.num_attention_heads for layer in layers}
    if tuple(gates.log_alpha.shape) != (len(layers), *num_heads):
        raise ValueError(f"gates of shape {tuple(gates.log_alpha.shape)} do not fit {len(layers)} "
                         f"layers with heads {sorted(num_heads)} (gate an unpruned model)")
    gated = GatedHeads(model.base_model, gates)
    for i, layer in enumerate(layers):
        gated.gate(layer.attention.output.dense, i, layer.attention.self.num_attention_heads)
    return gated


def heads_kept(gates: HardConcreteGates) -> dict[int, list[int]]:
    """{layer: heads whose eval gate is > 0} (see HardConcreteGates.keep_mask)."""
    return {i: row.nonzero().flatten().tolist() for i, row in enumerate(gates.keep_mask())}


def head_scales(gates: HardConcreteGates) -> dict[int, list[float]]:
    """{layer: eval gate value of each kept head}, the `scale` that makes pruning exact."""
    with torch.no_grad():
        values, mask = gates.deterministic(), gates.keep_mask()
    return {i: values[i][mask[i]].tolist() for i in range(len(mask))}


def count_heads(keep: dict) -> int:
    return sum(len(heads) for heads in keep.values())


class NoHeadsSelfAttention(BertSelfAttention):
    """Stand-in for a self-attention whose heads were all removed.

    BertSelfAttention cannot run with zero heads (its view(..., -1, head_size) of an empty tensor is
    ambiguous), so this returns a (B, T, 0) output: the 0-column output dense then yields just its bias,
    followed as usual by residual + LayerNorm. It subclasses BertSelfAttention only so that code which
    finds attention modules by class (e.g. output_attentions) still sees one per layer; it gives
    (B, 0, T, T) attention weights.
    """

    def __init__(self, config, head_size):
        nn.Module.__init__(self)  # no projections to build, so skip BertSelfAttention.__init__
        self.config = config
        self.num_attention_heads, self.attention_head_size, self.all_head_size = 0, head_size, 0
        self.kept_heads = []

    def forward(self, hidden_states, *args, **kwargs):
        batch, length = hidden_states.shape[:2]
        return hidden_states.new_zeros(batch, length, 0), hidden_states.new_zeros(batch, 0, length, length)


def slice_linear(linear, idx, dim, col_scale=None):
    """Keep rows (dim 0, with bias) or columns (dim 1, optionally scaled) `idx` of `linear`, in place."""
    with torch.no_grad():
        weight = linear.weight.index_select(dim, idx)
        if col_scale is not None:
            weight = weight * col_scale.to(weight)
        linear.weight = nn.Parameter(weight, requires_grad=linear.weight.requires_grad)
        if dim == 0:
            linear.bias = nn.Parameter(linear.bias[idx], requires_grad=linear.bias.requires_grad)
            linear.out_features = len(idx)
        else:
            linear.in_features = len(idx)


def prune_bert_heads(model, keep: dict, scale: dict | None = None):
    """Remove every head of layer i not in keep[i]; layers absent from `keep` are left alone.

    Indices refer to the layer's current heads (the original ones on an unpruned model). If `scale`
    gives a factor per kept head (same order as keep[i]), it is folded into the output dense columns,
    so pruning with head_scales(gates) reproduces the gated model in eval mode. Parameters are replaced,
    so build the optimizer afterwards.
    """
    keep = {int(i): list(heads) for i, heads in keep.items()}
    scale = {int(i): list(s) for i, s in (scale or {}).items()}
    record = dict(getattr(model.config, "pruned_heads_kept", None) or {})
    layers = _layers(model)
    for i, heads in keep.items():
        attention = layers[i].attention
        current = attention.self
        n, d = current.num_attention_heads, current.attention_head_size
        factors = scale.get(i, [1.0] * len(heads))
        if len(factors) != len(heads) or len(set(heads)) != len(heads) or not all(0 <= h < n for h in heads):
            raise ValueError(f"layer {i}: bad keep {heads} / scale {factors} for {n} heads")
        pairs = sorted(zip(heads, factors))
        heads, factors = [h for h, _ in pairs], [f for _, f in pairs]
        original = getattr(current, "kept_heads", list(range(n)))
        idx = (torch.tensor(heads, dtype=torch.long)[:, None] * d + torch.arange(d)).flatten()
        if heads:
            for linear in (current.query, current.key, current.value):
                slice_linear(linear, idx, 0)
            current.num_attention_heads, current.all_head_size = len(heads), len(heads) * d
            current.kept_heads = [original[h] for h in heads]
        else:
            attention.self = NoHeadsSelfAttention(current.config, d)
        slice_linear(attention.output.dense, idx, 1, torch.tensor(factors).repeat_interleave(d))
        record[str(i)] = attention.self.kept_heads
    model.config.pruned_heads_kept = record
    return model


def restructure_from_config(model):
    """Give a freshly built model the pruned shapes recorded in its config (weights: load afterwards)."""
    kept = getattr(model.config, "pruned_heads_kept", None) or {}
    return prune_bert_heads(model, {int(i): heads for i, heads in kept.items()})
