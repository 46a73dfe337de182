"""Head gates on any supported encoder (shrink.methods.architectures), and physical removal of heads.

transformers 5 no longer ships `prune_heads` / `head_mask`, so heads are removed here by slicing:
rows of the query/key/value projections (of each third of a fused qkv projection) and columns of the
attention output projection. Which heads a layer
keeps (as indices of the original heads) is stored in `config.pruned_heads_kept` ({"layer": [heads]},
JSON-safe), so `restructure_from_config` can rebuild the shapes on a fresh model before its state dict
is loaded.
"""

import torch
from torch import nn
from transformers.models.bert.modeling_bert import BertSelfAttention

from .architectures import adapter_for, head_rows
from .gates import GatedHeads, HardConcreteGates


def gate_shape(model):
    """(layers, heads) of the gates that fit `model`; all layers must have the same head count."""
    a = adapter_for(model)
    layers = a.layers(model)
    num_heads = {a.num_heads(layer) for layer in layers}
    if len(num_heads) != 1:
        raise ValueError(f"layers have different head counts {sorted(num_heads)} (gate an unpruned model)")
    return len(layers), num_heads.pop()


def attach_head_gates(model, gates: HardConcreteGates) -> GatedHeads:
    """Gate layer i's heads with gates()[i], sampled once per forward of the encoder model; each gate
    multiplies its head's slice of the attention output projection's input.

    The sample is drawn by a forward pre-hook on the bare encoder, so every layer of one pass sees
    the same draw, whether the task model or the base model is called. Detach (remove()) before pruning.
    """
    a = adapter_for(model)
    layers = a.layers(model)
    num_heads = {a.num_heads(layer) for layer in layers}
    if tuple(gates.log_alpha.shape) != (len(layers), *num_heads):
        raise ValueError(f"gates of shape {tuple(gates.log_alpha.shape)} do not fit {len(layers)} "
                         f"layers with heads {sorted(num_heads)} (gate an unpruned model)")
    gated = GatedHeads(a.base(model), gates)
    for i, layer in enumerate(layers):
        gated.gate(a.attention_output(layer), i, a.num_heads(layer))
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

    no_heads = True

    def __init__(self, config, head_size):
        nn.Module.__init__(self)  # no projections to build, so skip BertSelfAttention.__init__
        self.config = config
        self.num_attention_heads, self.attention_head_size, self.all_head_size = 0, head_size, 0
        self.head_dim = head_size
        self.kept_heads = []

    def forward(self, hidden_states, *args, **kwargs):
        batch, length = hidden_states.shape[:2]
        return hidden_states.new_zeros(batch, length, 0), hidden_states.new_zeros(batch, 0, length, length)


class NoHeadsAttention(nn.Module):
    """Stand-in for an attention module that applies its own output projection (DistilBERT, ModernBERT)
    once all its heads are removed: the 0-column projection gives just its bias (or zeros)."""

    no_heads = True

    def __init__(self, output, head_size, output_name):
        super().__init__()
        self.attention_head_size = self.head_dim = head_size
        self.output_name, self.kept_heads = output_name, []
        setattr(self, output_name, output)  # same name as in the original module, so state dicts match

    def forward(self, hidden_states, *args, **kwargs):
        out = getattr(self, self.output_name)(hidden_states.new_zeros(*hidden_states.shape[:2], 0))
        return out, None


def slice_linear(linear, idx, dim, col_scale=None):
    """Keep rows (dim 0, with bias) or columns (dim 1, optionally scaled) `idx` of `linear`, in place."""
    with torch.no_grad():
        weight = linear.weight.index_select(dim, idx)
        if col_scale is not None:
            weight = weight * col_scale.to(weight)
        linear.weight = nn.Parameter(weight, requires_grad=linear.weight.requires_grad)
        if dim == 0:
            if linear.bias is not None:
                linear.bias = nn.Parameter(linear.bias[idx], requires_grad=linear.bias.requires_grad)
            linear.out_features = len(idx)
        else:
            linear.in_features = len(idx)


def prune_heads(model, keep: dict, scale: dict | None = None):
    """Remove every head of layer i not in keep[i]; layers absent from `keep` are left alone.

    Indices refer to the layer's current heads (the original ones on an unpruned model). If `scale`
    gives a factor per kept head (same order as keep[i]), it is folded into the output projection's
    columns, so pruning with head_scales(gates) reproduces the gated model in eval mode. Parameters are
    replaced, so build the optimizer afterwards.
    """
    a = adapter_for(model)
    keep = {int(i): list(heads) for i, heads in keep.items()}
    scale = {int(i): list(s) for i, s in (scale or {}).items()}
    record = dict(getattr(model.config, "pruned_heads_kept", None) or {})
    layers = a.layers(model)
    for i, heads in keep.items():
        layer = layers[i]
        current = a.self_attention(layer)
        n, d = a.num_heads(layer), a.head_size(layer)
        factors = scale.get(i, [1.0] * len(heads))
        if len(factors) != len(heads) or len(set(heads)) != len(heads) or not all(0 <= h < n for h in heads):
            raise ValueError(f"layer {i}: bad keep {heads} / scale {factors} for {n} heads")
        pairs = sorted(zip(heads, factors))
        heads, factors = [h for h, _ in pairs], [f for _, f in pairs]
        original = getattr(current, "kept_heads", list(range(n)))
        idx = torch.tensor(head_rows(heads, d, n), dtype=torch.long)
        output = a.attention_output(layer)
        slice_linear(output, idx, 1, torch.tensor(factors).repeat_interleave(d))
        if heads:
            for linear in a.qkv(layer).values():
                slice_linear(linear, torch.tensor(head_rows(heads, d, n, a.fused), dtype=torch.long), 0)
            for name in a.extra_head_projections:
                if isinstance(getattr(current, name, None), nn.Linear):
                    slice_linear(getattr(current, name), idx, 0)
            for attr in a.heads_attrs:  # head counts some attention modules keep as attributes
                setattr(current, attr, len(heads) * (d if attr == "all_head_size" else 1))
            current.kept_heads = [original[h] for h in heads]
        elif a.output_in_attention:
            a.set_self_attention(layer, NoHeadsAttention(output, d, a.output_path.rpartition(".")[2]))
        else:
            a.set_self_attention(layer, NoHeadsSelfAttention(getattr(current, "config", model.config), d))
        record[str(i)] = a.self_attention(layer).kept_heads
    model.config.pruned_heads_kept = record
    return model




def restructure_from_config(model):
    """Give a freshly built model the pruned shapes recorded in its config (weights: load afterwards)."""
    kept = getattr(model.config, "pruned_heads_kept", None) or {}
    return prune_heads(model, {int(i): heads for i, heads in kept.items()})
