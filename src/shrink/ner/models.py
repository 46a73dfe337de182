"""The NER model: a token classifier on a pretrained encoder (shrink.core.encoders) or a random tiny BERT."""

from ..core.encoders import resolve_source


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
