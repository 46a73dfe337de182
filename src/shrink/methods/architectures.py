"""Where the parts of each encoder family live, so that the compression methods need not know.

A family is picked from `model.config.model_type`. Its `Adapter` answers, for a token-classification
model (or its bare encoder):
  layers(model)            the ModuleList of transformer layers (set_layers replaces it)
  embeddings(model)        the word-embedding table
  classifier(model)        the token classifier (None on a bare encoder)
  self_attention(layer)    the module holding the q/k/v projections (and the head count)
  qkv(layer)               {"query", "key", "value"} linears, or {"qkv"} for a fused projection laid out
                           as [all queries | all keys | all values], heads contiguous in each
  attention_output(layer)  the projection that mixes the concatenated heads (its input is heads * size)
  ffn(layer)               (input linear, output linear) of the feed-forward block
  num_heads(layer), head_size(layer)
  encoder_linears(model)   (full name, nn.Linear) of every linear inside the layers

`check_supported(method, model_type)` refuses, before a recipe step runs, the combinations that are not
implemented (table UNSUPPORTED), naming the reason.
"""

from dataclasses import dataclass

from torch import nn


class UnsupportedArchitecture(ValueError):
    """A model family (or a method on it) that shrink does not handle; the message says why."""


def _get(module, path):
    for part in path.split(".") if path else ():
        module = getattr(module, part)
    return module


@dataclass(frozen=True)
class Adapter:
    family: str
    layers_path: str            # from the base model to the ModuleList of layers
    attention_path: str         # from a layer to the self-attention module
    projections: tuple          # names in the attention module: (query, key, value) or (fused qkv,)
    output_path: str            # from a layer to the attention output projection
    ffn_paths: tuple            # from a layer to the feed-forward (input, output) linears
    head_size_attr: str         # attribute of the attention module giving the head size
    heads_attrs: tuple = ()     # attributes of the attention module that count heads (set after pruning)
    embeddings_path: str = "embeddings.word_embeddings"  # from the base model
    output_in_attention: bool = False  # the attention module applies its output projection itself
    extra_head_projections: tuple = ()  # more per-head projections to slice with q/k (DeBERTa's pos_*_proj)

    # -- model level
    @staticmethod
    def base(model):
        """The bare encoder: model.<base_model_prefix> of a task model, or the model itself."""
        prefix = getattr(model, "base_model_prefix", "")
        inner = getattr(model, prefix, None) if prefix else None
        return inner if isinstance(inner, nn.Module) else model

    def layers(self, model):
        return _get(self.base(model), self.layers_path)

    def set_layers(self, model, modules):
        """Replace the layer list (keeping, dropping or repeating layers) and the config's depth."""
        parent_path, _, attr = self.layers_path.rpartition(".")
        setattr(_get(self.base(model), parent_path), attr, nn.ModuleList(modules))
        model.config.num_hidden_layers = len(modules)
        return model

    def layers_name(self, model):
        """Full name of the layer list inside `model` (e.g. "bert.encoder.layer")."""
        target = self.layers(model)
        return next(n for n, m in model.named_modules() if m is target)

    def embeddings(self, model):
        return _get(self.base(model), self.embeddings_path)

    @staticmethod
    def classifier(model):
        return getattr(model, "classifier", None)

    def encoder_linears(self, model):
        """(full name, module) of every nn.Linear inside the transformer layers (each shared module once)."""
        prefix = self.layers_name(model)
        return [(f"{prefix}.{n}", m) for n, m in self.layers(model).named_modules() if isinstance(m, nn.Linear)]

    # -- layer level
    def self_attention(self, layer):
        return _get(layer, self.attention_path)

    def set_self_attention(self, layer, module):
        parent_path, _, attr = self.attention_path.rpartition(".")
        setattr(_get(layer, parent_path), attr, module)

    @property
    def fused(self):
        return len(self.projections) == 1

    def qkv(self, layer):
        att = self.self_attention(layer)
        if getattr(att, "no_heads", False):
            return {}
        names = ("qkv",) if self.fused else ("query", "key", "value")
        return {k: getattr(att, p) for k, p in zip(names, self.projections)}

    def attention_output(self, layer):
        return _get(layer, self.output_path)

    def ffn(self, layer):
        return tuple(_get(layer, p) for p in self.ffn_paths)

    def head_size(self, layer):
        return getattr(self.self_attention(layer), self.head_size_attr)

    def num_heads(self, layer):
        """Heads the layer runs now, from the projection shapes (so it stays true after pruning)."""
        att = self.self_attention(layer)
        if getattr(att, "no_heads", False):
            return 0
        rows = next(iter(self.qkv(layer).values())).out_features
        return rows // (3 if self.fused else 1) // self.head_size(layer)


_BERT_LIKE = {"layers_path": "encoder.layer", "attention_path": "attention.self",
              "projections": ("query", "key", "value"), "output_path": "attention.output.dense",
              "ffn_paths": ("intermediate.dense", "output.dense"), "head_size_attr": "attention_head_size",
              "heads_attrs": ("num_attention_heads", "all_head_size")}

ADAPTERS = {
    "bert": Adapter("bert", **_BERT_LIKE),
    "roberta": Adapter("roberta", **_BERT_LIKE),
    "xlm-roberta": Adapter("roberta", **_BERT_LIKE),
    "electra": Adapter("electra", **_BERT_LIKE),
    "deberta-v2": Adapter("deberta-v2", **{**_BERT_LIKE, "projections": ("query_proj", "key_proj", "value_proj")},
                          extra_head_projections=("pos_query_proj", "pos_key_proj")),
    "distilbert": Adapter("distilbert", layers_path="transformer.layer", attention_path="attention",
                          projections=("q_lin", "k_lin", "v_lin"), output_path="attention.out_lin",
                          ffn_paths=("ffn.lin1", "ffn.lin2"), head_size_attr="attention_head_size",
                          heads_attrs=("n_heads",), output_in_attention=True),
    "modernbert": Adapter("modernbert", layers_path="layers", attention_path="attn", projections=("Wqkv",),
                          output_path="attn.Wo", ffn_paths=("mlp.Wi", "mlp.Wo"), head_size_attr="head_dim",
                          embeddings_path="embeddings.tok_embeddings", output_in_attention=True),
}
FAMILIES = sorted(ADAPTERS)

# (method, model_type) -> why it is not done. Methods are recipe step names; "distill:attention_scores"
# is TinyBERT's attention loss on the raw scores (distill.intermediate.attention: scores).
UNSUPPORTED = {
    ("distill:attention_scores", "deberta-v2"):
        "DeBERTa's attention scores add disentangled relative-position terms (c2p, p2c) with their own scale, "
        "so Q K^T / sqrt(d) recorded from the projections is not its score matrix; use "
        "intermediate.attention: probabilities",
    ("distill:attention_scores", "modernbert"):
        "ModernBERT rotates queries and keys (RoPE) inside attention, after the fused Wqkv projection, and its "
        "local layers mask a sliding window, so Q K^T / sqrt(d) from the projection is not its score matrix; "
        "use intermediate.attention: probabilities",
}


def model_type(model_or_config):
    config = getattr(model_or_config, "config", model_or_config)
    return getattr(config, "model_type", None)


def adapter_for(model_or_type) -> Adapter:
    """The adapter of a model (or a config, or a model_type string)."""
    kind = model_or_type if isinstance(model_or_type, str) else model_type(model_or_type)
    if kind not in ADAPTERS:
        raise UnsupportedArchitecture(f"model type {kind!r} is not supported; shrink knows {', '.join(FAMILIES)}")
    return ADAPTERS[kind]


def check_supported(method, model_type):
    """Raise UnsupportedArchitecture naming the method, the model type and the reason, if not supported."""
    adapter_for(model_type)
    reason = UNSUPPORTED.get((method, model_type))
    if reason:
        raise UnsupportedArchitecture(f"{method} is not supported on model type {model_type!r}: {reason}")


def head_rows(heads, head_size, num_heads, fused=False):
    """Row indices of the given heads in a projection whose rows are heads of `head_size` (one block of
    num_heads * head_size rows, or three, q|k|v, for a fused projection)."""
    rows = [h * head_size + j for h in heads for j in range(head_size)]
    if not fused:
        return rows
    width = num_heads * head_size
    return [part * width + r for part in range(3) for r in rows]
