"""Parameter counts and bytes on disk of a model, whatever its task."""

from pathlib import Path


def is_quantized_linear(module):
    """A torch.ao quantized Linear (the dynamic int8 one methods/quantize.py makes is a subclass): its
    weights are packed, outside parameters(), and read through `module.weight()`."""
    import torch

    return isinstance(module, torch.ao.nn.quantized.Linear)


def count_parameters(model):
    """Total, embedding (all nn.Embedding tables), non-embedding and nonzero parameter counts."""
    import torch

    seen, total, nonzero = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:  # tied weights count once
            continue
        seen.add(id(p))
        total += p.numel()
        nonzero += int(torch.count_nonzero(p).item())
    for m in model.modules():  # dynamic int8 linears keep their weights packed, outside parameters()
        if is_quantized_linear(m):
            w, b = m.weight(), m.bias()
            total += w.numel() + (b.numel() if b is not None else 0)
            nonzero += int((w.int_repr() != 0).sum()) + (int(torch.count_nonzero(b)) if b is not None else 0)
    tables = {id(m.weight): m.weight for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    emb = sum(w.numel() for w in tables.values())
    return {"total": total, "embedding": emb, "non_embedding": total - emb, "nonzero": nonzero}


def linear_weights(module):
    """(name, weight) of every linear layer under `module`: an nn.Linear's float weight, or the quantized
    tensor a quantized Linear (torch.ao dynamic int8, as methods/quantize.py makes) keeps packed,
    outside parameters()."""
    import torch

    for name, m in module.named_modules():
        if isinstance(m, torch.nn.Linear):
            yield name, m.weight
        elif is_quantized_linear(m):
            yield name, m.weight()


def zero_weights(weight):
    """How many entries of a weight are exactly zero; in a quantized tensor, the stored integers that
    equal their zero point (per tensor or per channel), i.e. the entries that dequantize to 0."""
    import torch

    if not weight.is_quantized:
        return int((weight == 0).sum())
    q = weight.int_repr()
    if weight.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        return int((q == weight.q_zero_point()).sum())
    shape = [1] * q.dim()
    shape[weight.q_per_channel_axis()] = -1
    return int((q == weight.q_per_channel_zero_points().view(shape)).sum())


def folder_bytes(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
