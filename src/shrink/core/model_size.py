"""Parameter counts and bytes on disk of a model, whatever its task."""

from pathlib import Path


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
        if hasattr(m, "_packed_params") and hasattr(m, "weight") and callable(m.weight):
            w, b = m.weight(), m.bias()
            total += w.numel() + (b.numel() if b is not None else 0)
            nonzero += int((w.int_repr() != 0).sum()) + (int(torch.count_nonzero(b)) if b is not None else 0)
    tables = {id(m.weight): m.weight for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    emb = sum(w.numel() for w in tables.values())
    return {"total": total, "embedding": emb, "non_embedding": total - emb, "nonzero": nonzero}


def folder_bytes(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
