"""Knowledge distillation (Hinton et al. 2015) and intermediate-layer distillation (TinyBERT, Jiao et al. 2020).

The logit loss is alpha * CE(hard labels) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T)).
The T^2 keeps the soft term's gradient on the same scale as the hard term's when T changes:
d KL / d s is (softmax(s/T) - softmax(t/T)) / T, and for large T that difference itself shrinks
like 1/T, so the gradient falls like 1/T^2 without the factor.
"""

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core.distributed import global_mean
from ..core.errors import ConfigError
from ..core.model_size import count_parameters
from ..core.precision import loss_dtype
from .architectures import UnsupportedArchitecture, adapter_for, check_supported
from .factorize import factorize_embeddings

_kl = nn.KLDivLoss(reduction="batchmean", log_target=True)


def kd_loss(student_logits, teacher_logits, labels, mask, alpha=0.5, temperature=2.0):
    """(loss, parts). Soft term on real (unpadded) word pieces only; hard term on labelled ones."""
    mask, dtype = mask.bool(), loss_dtype(student_logits)
    s, t = student_logits[mask].to(dtype), teacher_logits[mask].to(dtype)
    # batchmean over the flattened real tokens: the mean KL per token
    soft = _kl(F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1)) * temperature**2
    hard = F.cross_entropy(student_logits.flatten(0, 1).to(dtype), labels.flatten(), ignore_index=-100)
    # each term a mean over its own tokens, of the whole batch when processes hold shards of it
    soft, hard = global_mean(soft, mask.sum()), global_mean(hard, (labels != -100).sum())
    return alpha * hard + (1 - alpha) * soft, {"ce": hard.detach(), "kd": soft.detach()}


class TeacherLogits:
    """The teacher's logits on every word piece of a split, computed once: a flat (tokens, labels)
    tensor and per-sentence offsets, so any batch of sentence indices can be padded back together."""

    def __init__(self, flat, offsets):
        self.flat, self.offsets = flat, offsets

    @classmethod
    @torch.no_grad()
    def compute(cls, teacher, dataset, tokenizer, batch_size=64, device="cpu"):
        from ..core.batching import Padder, sequential_batches

        teacher.eval()
        pad, lengths = Padder(tokenizer), list(dataset["length"])
        rows = [None] * len(dataset)
        for idx in sequential_batches(lengths, batch_size):
            batch = pad(dataset, idx, device)
            batch.pop("labels", None)
            logits = teacher(**batch).logits.float().cpu()
            for row, i in zip(logits, idx):
                rows[i] = row[: lengths[i]]
        offsets = torch.tensor([0] + lengths).cumsum(0)
        return cls(torch.cat(rows), offsets)

    def save(self, path):
        from safetensors.torch import save_file

        save_file({"flat": self.flat.contiguous(), "offsets": self.offsets}, str(path))

    @classmethod
    def load(cls, path):
        from safetensors.torch import load_file

        d = load_file(str(path))
        return cls(d["flat"], d["offsets"])

    def batch(self, indices, seq_len):
        out = torch.zeros(len(indices), seq_len, self.flat.shape[1])
        for row, i in enumerate(indices):
            lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
            out[row, : hi - lo] = self.flat[lo:hi]
        return out


class Distillation(nn.Module):
    """Objective: KD from cached teacher logits (`TeacherLogits`) or from a live teacher model."""

    def __init__(self, model, alpha=0.5, temperature=2.0, cache=None, teacher=None):
        super().__init__()
        if (cache is None) == (teacher is None):
            raise ValueError("give the teacher's cached logits or the teacher model, not both")
        self.model, self.alpha, self.temperature, self.cache = model, alpha, temperature, cache
        self.__dict__["teacher"] = teacher  # not a submodule: frozen, never optimised or checkpointed
        if teacher is not None:
            teacher.eval().requires_grad_(False)

    def _apply(self, fn, *args, **kwargs):
        # .to(device), .double(), .cuda() reach submodules through _apply; the teacher is not a
        # submodule, so without this it stayed on the CPU in fp32 while the student moved (issue 16)
        super()._apply(fn, *args, **kwargs)
        if self.teacher is not None:
            self.teacher._apply(fn, *args, **kwargs)
        return self

    def teacher_logits(self, batch, indices):
        if self.cache is not None:
            return self.cache.batch(indices, batch["input_ids"].shape[1]).to(batch["input_ids"].device)
        with torch.no_grad():
            return self.teacher(**{k: v for k, v in batch.items() if k != "labels"}).logits

    def forward(self, batch, indices):
        out = self.model(**{k: v for k, v in batch.items() if k != "labels"})
        return kd_loss(out.logits, self.teacher_logits(batch, indices), batch["labels"], batch["attention_mask"],
                       self.alpha, self.temperature)


class QueryKeyRecorder:
    """Forward hooks on the query and key projections of some encoder layers, so that a model's attention
    scores can be computed after a forward pass with any attention kernel (eager, SDPA, flash), none of
    which returns the scores before the softmax. For a fused qkv projection (ModernBERT's Wqkv) the query
    and key are sliced out of its output."""

    def __init__(self, layers, adapter=None):
        adapter = adapter or adapter_for("bert")  # the layers of a BERT-like model unless told otherwise
        self.layers, self.adapter, self.outputs, self.handles = list(layers), adapter, {}, []
        for i, layer in enumerate(self.layers):
            for part, linear in adapter.qkv(layer).items():
                if part in ("query", "key", "qkv"):
                    self.handles.append(linear.register_forward_hook(self._keep((i, part))))

    def _keep(self, key):
        def hook(mod, args, out):
            self.outputs[key] = out
        return hook

    def query_key(self, i):
        """Layer i's projected queries and keys, (batch, L, heads * d) each."""
        if (i, "qkv") in self.outputs:
            return split_fused_qkv(self.outputs[(i, "qkv")])[:2]
        return self.outputs[(i, "query")], self.outputs[(i, "key")]

    def scores(self, i):
        """Layer i's unnormalised attention scores Q K^T / sqrt(d): (batch, heads, query, key)."""
        return attention_scores(*self.query_key(i), self.adapter.num_heads(self.layers[i]))

    def remove(self):
        for h in self.handles:
            h.remove()


def split_fused_qkv(qkv):
    """(query, key, value) of a fused projection's output laid out as [queries | keys | values]."""
    return qkv.chunk(3, dim=-1)


def attention_scores(query, key, heads):
    """(batch, heads, L, L) scaled dot products of projected queries and keys given as (batch, L, heads * d)."""
    b, n, width = query.shape
    d = width // heads
    q = query.view(b, n, heads, d).transpose(1, 2)
    k = key.view(b, n, heads, d).transpose(1, 2)
    return q @ k.transpose(-1, -2) * d**-0.5


class IntermediateDistillation(Distillation):
    """TinyBERT (Jiao et al. 2020): MSE between projected student hidden states and the teacher's on a
    layer map (eq. 8, embeddings included), MSE between attention matrices (eq. 7), plus the logit KD loss;
    the teacher runs live.

    Layer m of the student (1-based; 0 = embeddings) is matched to teacher layer `layer_map[m]`.
    `attention="scores"` compares the unnormalised scores Q K^T / sqrt(d), as the paper does (its A_i is
    the matrix before the softmax); `"probabilities"` compares the softmax outputs instead. Either way only
    pairs of real (unpadded) tokens count, per head, so student and teacher need the same head count.
    """

    def __init__(self, model, teacher, layer_map, alpha=0.5, temperature=2.0, hidden_weight=1.0,
                 attention_weight=1.0, seed=0, attention="scores"):
        super().__init__(model, alpha, temperature, teacher=teacher)
        if attention not in ("scores", "probabilities"):
            raise ConfigError("intermediate.attention", f"must be scores or probabilities, not {attention!r}")
        self.layer_map, self.hidden_weight, self.attention_weight = layer_map, hidden_weight, attention_weight
        self.attention = attention
        hs, ht = model.config.hidden_size, teacher.config.hidden_size
        # one learned projection per matched layer (TinyBERT's W_h), student width -> teacher width, drawn
        # from `seed`: torch's global RNG starts from a random state in every process
        self.project = nn.ModuleList(nn.Linear(hs, ht, bias=False) for _ in layer_map)
        g = torch.Generator().manual_seed(seed)
        for lin in self.project:  # nn.Linear's own initialisation, from the seeded generator
            nn.init.kaiming_uniform_(lin.weight, a=math.sqrt(5), generator=g)
        if attention_weight and model.config.num_attention_heads != teacher.config.num_attention_heads:
            raise ConfigError("intermediate.attention_weight", "attention maps need equal head counts "
                              f"(student {model.config.num_attention_heads}, teacher "
                              f"{teacher.config.num_attention_heads}); set it to 0")
        if attention_weight and attention == "scores":
            for m in (model, teacher):
                try:
                    check_supported("distill:attention_scores", m.config.model_type)
                except UnsupportedArchitecture as e:
                    raise ConfigError("intermediate.attention", str(e)) from None
        if attention_weight and attention == "probabilities":
            for m in (model, teacher):  # attention probabilities are only returned by the eager kernel
                m.set_attn_implementation("eager")

    def _attention_maps(self, model, inputs):
        """(output, {layer (1-based): attention matrix}) of one forward pass, per self.attention."""
        a = adapter_for(model)
        layers = a.layers(model)
        if self.attention == "probabilities":
            out = model(**inputs, output_hidden_states=True, output_attentions=True)
            return out, {i + 1: a for i, a in enumerate(out.attentions)}
        recorder = QueryKeyRecorder(layers, a)
        try:
            out = model(**inputs, output_hidden_states=True)
        finally:
            recorder.remove()
        return out, {i + 1: recorder.scores(i) for i in range(len(layers))}

    def forward(self, batch, indices):
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        if self.attention_weight:
            out, maps = self._attention_maps(self.model, inputs)
            with torch.no_grad():
                ref, ref_maps = self._attention_maps(self.teacher, inputs)
        else:
            out = self.model(**inputs, output_hidden_states=True)
            with torch.no_grad():
                ref = self.teacher(**inputs, output_hidden_states=True)
        loss, parts = kd_loss(out.logits, ref.logits, batch["labels"], batch["attention_mask"], self.alpha,
                              self.temperature)
        mask, dtype = batch["attention_mask"].bool(), loss_dtype(out.logits)
        hidden = sum(F.mse_loss(proj(out.hidden_states[s])[mask].to(dtype), ref.hidden_states[t][mask].to(dtype))
                     for proj, (s, t) in zip(self.project, enumerate(self.layer_map)))
        hidden = global_mean(hidden, mask.sum())  # every layer's mean runs over the same real tokens
        parts["hidden"] = hidden.detach()
        loss = loss + self.hidden_weight * hidden
        if self.attention_weight:
            pair = mask[:, None, :, None] & mask[:, None, None, :]  # real query and key positions
            att = sum(F.mse_loss(maps[s].to(dtype).masked_select(pair), ref_maps[t].to(dtype).masked_select(pair))
                      for s, t in enumerate(self.layer_map) if s > 0)
            att = global_mean(att, pair.sum())
            parts["attention"] = att.detach()
            loss = loss + self.attention_weight * att
        return loss, parts


def uniform_layer_map(student_layers, teacher_layers):
    """TinyBERT's map g(m) = m * N / M: embeddings to embeddings, student layer m to teacher layer g(m)."""
    return [m * teacher_layers // student_layers for m in range(student_layers + 1)]


def default_layers(config, layers):
    """The parent layers a `layers`-layer student keeps when `student.layers_from` is not set: the top
    layer of each of `layers` equal spans (TinyBERT's map). ModernBERT reloads a student only with layer
    0 first and each kept layer of its new position's local/global kind (_check_rebuildable), so there
    position 0 keeps layer 0 and each later position the top layer of its kind in its span (or, if its
    span has none, the next one above)."""
    n = config.num_hidden_layers
    bounds = uniform_layer_map(layers, n)
    tops = [g - 1 for g in bounds[1:]]
    types = getattr(config, "layer_types", None)
    if config.model_type != "modernbert" or not types:
        return tops
    keep = [0]
    for j in range(1, layers):
        fits = [k for k in range(keep[-1] + 1, n) if types[k] == types[j]]
        in_span = [k for k in fits if k < bounds[j + 1]]
        if not fits:
            raise ConfigError("student.layers", f"a {layers}-layer ModernBERT student cannot keep a {types[j]} layer "
                              f"at position {j} after layer {keep[-1]} of {types}; set student.layers_from")
        keep.append(in_span[-1] if in_span else fits[0])
    return keep


def _check_rebuildable(config, keep):
    """ModernBERT builds layer j as local or global from config.layer_types[j] and gives only layer 0 no
    attention LayerNorm, so a saved student only reloads as it trained if kept layer j is of the kind
    of position j and the first kept layer is layer 0."""
    types = getattr(config, "layer_types", None)
    if config.model_type != "modernbert" or not types:
        return
    bad = [k for j, k in enumerate(keep) if types[k] != types[j] or (j == 0) != (k == 0)]
    if bad:
        raise ConfigError("student.layers_from", f"ModernBERT layers {bad} cannot move to their new positions in "
                          f"{keep} (layer 0 first, and each layer where the same local/global kind {types} is)")


def build_student(parent, spec, labels, seed):
    """The student a distillation step trains, from its parent model and the step's `student` spec.

    init 'parent': keep the parent's width and weights, keep the layers `layers_from` (default:
    default_layers, TinyBERT's map); embeddings stay as they are.
    init 'random': a fresh BERT of the given shape (hidden, heads, ffn, layers, embedding_rank).
    """
    spec = dict(spec or {})
    init = spec.pop("init", "parent")
    pconf = parent.config
    if init == "parent":
        shape_keys = set(spec) & {"hidden", "heads", "ffn", "embedding_rank"}
        if shape_keys:
            raise ConfigError(f"student.{sorted(shape_keys)[0]}", "a student initialised from its parent keeps "
                              "the parent's width; use init: random or a factorize step before distill")
        student = copy.deepcopy(parent)
        n = pconf.num_hidden_layers
        keep = spec.get("layers_from") or default_layers(pconf, spec.get("layers", n))
        if any(op["op"] in ("low_rank", "share_layers") for op in getattr(pconf, "shrink_ops", [])) and len(keep) != n:
            raise ConfigError("student.layers", "cannot drop layers of a low-rank or weight-shared parent")
        a = adapter_for(student)
        layers = list(a.layers(student))
        if not all(0 <= k < n for k in keep):
            raise ConfigError("student.layers_from", f"layer indices must be in [0, {n - 1}], got {keep}")
        _check_rebuildable(pconf, keep)
        a.set_layers(student, [layers[k] for k in keep])
        if getattr(student.config, "layer_types", None):  # ModernBERT: each layer's local/global kind
            student.config.layer_types = [pconf.layer_types[k] for k in keep]
        return student
    if init != "random":
        raise ConfigError("student.init", f"must be parent or random, not {init!r}")
    from transformers import AutoModelForTokenClassification, BertConfig

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=pconf.vocab_size, hidden_size=spec.get("hidden", pconf.hidden_size),
        num_hidden_layers=spec.get("layers", pconf.num_hidden_layers),
        num_attention_heads=spec.get("heads", pconf.num_attention_heads),
        intermediate_size=spec.get("ffn", getattr(pconf, "intermediate_size", None) or pconf.hidden_dim),
        max_position_embeddings=pconf.max_position_embeddings,
        type_vocab_size=getattr(pconf, "type_vocab_size", 0) or 2,  # DistilBERT has none, DeBERTa 0
        num_labels=len(labels), id2label=pconf.id2label, label2id=pconf.label2id)
    # built in torch's default dtype on the CPU; the student follows its parent's instead
    student = AutoModelForTokenClassification.from_config(config).to(parent.device, parent.dtype)
    if spec.get("embedding_rank"):
        factorize_embeddings(student, spec["embedding_rank"], init=False)
        student.config.shrink_ops = [{"op": "factorize_embeddings", "rank": spec["embedding_rank"]}]
    return student


def check_budget(model, budget, key):
    """Fail before training when the student has more parameters than the configured budget."""
    n = count_parameters(model)["total"]
    if budget and n > budget:
        raise ConfigError(key, f"the student has {n:,} parameters, over the budget of {budget:,}")
    return n
