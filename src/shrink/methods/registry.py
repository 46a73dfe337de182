"""The compression methods a recipe step can name, each declared once: its settings (name, type, default,
range, meaning) and whether it trains.

Torch-free, so the workflow checks recipes when it starts in a fraction of a second. The recipe check
(shrink.ner.recipes), the defaults each step runs with (shrink.ner.compress) and the reference table
in docs/method_settings.md (tests/test_method_settings.py keeps it current) all read these declarations.
"""

from dataclasses import dataclass

from ..core.settings import NO_DEFAULT, Setting

# recipe step `factorize_embeddings`: ALBERT's factorised embedding table
FACTORIZE_EMBEDDINGS = (
    Setting("rank", int, 64, "inner dimension of the (vocab x rank)(rank x hidden) factorisation from the SVD",
            minimum=1),
)
# recipe step `low_rank`: every encoder linear as a truncated-SVD pair; exactly one of the two settings
LOW_RANK = (
    Setting("energy", float, NO_DEFAULT, "keep the smallest rank holding this share of each matrix's squared "
            "singular values", minimum=0.0, maximum=1.0),
    Setting("ratio", float, NO_DEFAULT, "keep this share of each matrix's full rank", minimum=0.0, maximum=1.0),
)

# recipe step `share_layers`: ALBERT cross-layer sharing
SHARE_LAYERS = (
    Setting("groups", int, 1, "distinct layers kept; each is applied to a contiguous run of the original depth",
            minimum=1),
)

# `distill.student`: the student's shape (TinyBERT's uniform layer map when layers_from is absent)
STUDENT = (
    Setting("init", str, "parent", "parent: the parent's weights and width, some of its layers; random: a fresh "
            "BERT of the shape below", choices=("parent", "random")),
    Setting("layers", int, NO_DEFAULT, "encoder layers of the student (default: the parent's)", minimum=1),
    Setting("layers_from", list, NO_DEFAULT, "with init parent: the parent's layers kept, 0-based (default: the "
            "top layer of each of `layers` equal spans; on ModernBERT layer 0 first, then the top layer of each "
            "position's local/global kind)"),
    Setting("hidden", int, NO_DEFAULT, "with init random: hidden size (default: the parent's)", minimum=1),
    Setting("heads", int, NO_DEFAULT, "with init random: attention heads (default: the parent's)", minimum=1),
    Setting("ffn", int, NO_DEFAULT, "with init random: feed-forward size (default: the parent's)", minimum=1),
    Setting("embedding_rank", int, NO_DEFAULT, "with init random: factorised embeddings of this rank", minimum=1),
)
# `distill.intermediate`: TinyBERT's layer losses (Jiao et al. 2020, eq. 7-9)
INTERMEDIATE = (
    Setting("hidden_weight", float, 1.0, "weight of the MSE between projected student and teacher hidden states "
            "(embeddings included)", minimum=0.0),
    Setting("attention_weight", float, 1.0, "weight of the attention MSE; 0 switches it off (needed when head "
            "counts differ)", minimum=0.0),
    Setting("attention", str, "scores", "what the attention MSE compares: scores, the paper's unnormalised "
            "QK^T/sqrt(d) of real token pairs, or probabilities (after the softmax; this project's earlier loss)",
            choices=("scores", "probabilities")),
)
# recipe step `distill`: Hinton KD (logits) or TinyBERT (`intermediate`) into a student
DISTILL = (
    Setting("student", dict, None, "student shape (fields below); null keeps the parent", fields=STUDENT),
    Setting("alpha", float, 0.5, "weight of the gold-label cross-entropy; 1 - alpha weighs the soft-target (KD) loss",
            minimum=0.0, maximum=1.0),
    Setting("temperature", float, 2.0, "softmax temperature of the soft targets", minimum=0.01),
    Setting("budget", int, NO_DEFAULT, "parameter budget of the student (default compress.student_budget); "
            "a larger student fails before training", minimum=1),
    Setting("intermediate", dict, NO_DEFAULT, "TinyBERT layer losses on uniformly mapped layers, on top of the "
            "logit loss (fields below); the teacher runs live", fields=INTERMEDIATE),
)

# recipe step `prune`: one-shot pruning of every encoder linear, layer by layer on calibration sentences
PRUNE = (
    Setting("method", str, "sparsegpt", "sparsegpt (OBS updates), magnitude or wanda (|w| x input norm)",
            choices=("sparsegpt", "magnitude", "wanda")),
    Setting("sparsity", float, 0.5, "share of weights set to zero (unstructured)", minimum=0.0, maximum=0.99),
    Setting("pattern", str, "unstructured", "unstructured, or n:m (e.g. 2:4: n zeros in every m weights)"),
    Setting("calibration_sentences", int, 128, "train sentences, chosen with the seed, that calibrate the pruning",
            minimum=1),
    Setting("blocksize", int, 128, "columns SparseGPT prunes and updates at a time", minimum=1),
    Setting("percdamp", float, 0.01, "dampening added to the Hessian diagonal, as a share of its mean",
            minimum=0.0),
    Setting("mask_selection", str, "block", "sparsegpt, unstructured: block picks the lowest OBS errors over "
            "each whole block of columns (the paper; rows lose different counts), row takes the same share "
            "in every row; magnitude (layer-wide), wanda (per row) and n:m ignore it",
            choices=("block", "row")),
)

# recipe step `gate_heads`: Voita et al. hard-concrete head gates with an expected-L0 penalty
GATE_HEADS = (
    Setting("lambda", float, 0.01, "weight of the expected-L0 penalty (more closes more heads)", minimum=0.0),
    Setting("loss", str, "task", "task (gold labels) or distill (KD from the cached teacher logits)",
            choices=("task", "distill")),
    Setting("alpha", float, 0.5, "with loss distill: weight of the gold-label cross-entropy (1 - alpha: the KD loss)", minimum=0.0, maximum=1.0),
    Setting("temperature", float, 2.0, "with loss distill: softmax temperature", minimum=0.01),
    Setting("init_open", float, 0.99, "initial probability that a gate is open", minimum=0.01, maximum=0.999),
    Setting("gate_lr", float, 0.05, "learning rate of the gate parameters", minimum=1e-6),
    Setting("freeze", bool, False, "train the gates only, the model's weights frozen"),
    Setting("select", str, "last", "keep the last epoch or the best validation epoch", choices=("best", "last")),
)

# recipe step `quantize`: dynamic int8 linears
QUANTIZE = (
    Setting("bits", int, 8, "weight bits; only 8 (dynamic int8) is implemented", choices=(8,)),
)

# recipe step `feature_based`: BERT's feature-based NER (frozen encoder, summed last layers, small tagger)
FEATURE_BASED = (
    Setting("layers", int, 4, "number of last hidden layers summed into the word features", minimum=1),
    Setting("head", str, "bilstm", "the trained tagger on the frozen features", choices=("bilstm", "linear")),
    Setting("head_hidden", int, 128, "hidden size of the BiLSTM tagger (each direction)", minimum=1),
)


@dataclass(frozen=True)
class Method:
    name: str
    settings: tuple
    trains: bool  # runs the trainer, so a step also takes train.* overrides
    module: str  # the implementation, in shrink.methods
    summary: str
    one_of: tuple = ()  # exactly one of these settings must be given


METHODS = {m.name: m for m in (
    Method("factorize_embeddings", FACTORIZE_EMBEDDINGS, False, "factorize",
           "ALBERT factorised embeddings: the vocabulary table as two thin matrices from its SVD"),
    Method("low_rank", LOW_RANK, False, "factorize",
           "Every encoder linear as a truncated-SVD pair", one_of=("energy", "ratio")),
    Method("share_layers", SHARE_LAYERS, False, "sharing", "ALBERT cross-layer parameter sharing"),
    Method("finetune", (), True, "", "Train the parent further on the task (train settings only)"),
    Method("distill", DISTILL, True, "distill", "Hinton knowledge distillation, or TinyBERT with intermediate"),
    Method("prune", PRUNE, False, "sparsegpt", "one-shot SparseGPT, magnitude or Wanda pruning"),
    Method("gate_heads", GATE_HEADS, True, "gate_training",
           "Voita et al. head gates (hard concrete, expected-L0 penalty); closed heads removed"),
    Method("quantize", QUANTIZE, False, "quantize", "dynamic int8 quantization of the linears"),
    Method("feature_based", FEATURE_BASED, True, "feature_based",
           "BERT feature-based tagging: frozen encoder, summed last layers, a trained BiLSTM or linear tagger"),
)}
