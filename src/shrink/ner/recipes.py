"""Variants as recipes: each variant is a list of compression steps applied in order from a root
model (the fine-tuned teacher, or the pretrained encoder). Every step prefix gets its own id, the
hash of the prefix, so two variants sharing a prefix share its cached output.

config:
  compress:
    variants:
      emb64:
        recipe:
          - factorize_embeddings: {rank: 64}
          - finetune: {epochs: 1}
      gates:
        recipe: [{gate_heads: {epochs: 2}}]
        sweep: {lambda: [0.05, 0.01]}      # one variant per value, set on the last step
"""

import hashlib
import json
from dataclasses import dataclass, field

from ..core.errors import ConfigError

ROOTS = ("teacher", "pretrained")
# method -> (keys it reads besides train settings, whether it trains)
METHODS = {
    "factorize_embeddings": ({"rank"}, False),
    "low_rank": ({"energy", "ratio"}, False),
    "share_layers": ({"groups"}, False),
    "finetune": (set(), True),
    "distill": ({"student", "alpha", "temperature", "budget", "intermediate", "cache_teacher"}, True),
    "prune": ({"method", "sparsity", "pattern", "calibration_sentences", "blocksize", "percdamp"}, False),
    "gate_heads": ({"lambda", "loss", "alpha", "temperature", "init_open", "gate_lr", "freeze", "select"}, True),
    "quantize": ({"bits"}, False),
    "feature_based": ({"layers", "head", "head_hidden"}, True),
}
TRAIN_KEYS = {"epochs", "lr", "batch_size", "batch_tokens", "warmup_ratio", "scheduler", "weight_decay",
              "max_grad_norm", "precision", "log_every"}


@dataclass
class Step:
    id: str
    method: str
    params: dict
    parent: str  # a step id or a root
    trains: bool

    def describe(self):
        """The short form stored in metrics (nested settings left out; the table shows them all)."""
        return format_step(self.method, {k: v for k, v in self.params.items() if not isinstance(v, dict)})


@dataclass
class Variant:
    name: str
    root: str
    base: str  # the config entry it comes from (differs from name for swept variants)
    steps: list = field(default_factory=list)  # step ids, in order

    @property
    def last(self):
        return self.steps[-1]


def step_id(parent, method, params):
    key = json.dumps([parent, method, params], sort_keys=True, default=str)
    return f"{method}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def _parse_step(entry, where):
    if not isinstance(entry, dict) or len(entry) != 1:
        raise ConfigError(where, "each recipe step is a mapping with one method name, e.g. {finetune: {epochs: 1}}")
    (method, params), = entry.items()
    if method not in METHODS:
        raise ConfigError(where, f"unknown method {method!r} (known: {', '.join(METHODS)})")
    params = dict(params or {})
    allowed = METHODS[method][0] | (TRAIN_KEYS if METHODS[method][1] else set())
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ConfigError(f"{where}.{method}.{unknown[0]}", f"not a setting of {method} "
                          f"(known: {', '.join(sorted(allowed)) or 'none'})")
    return method, params


def _sweep(name, v, where):
    sweep = v.get("sweep") or {}
    if len(sweep) > 1:
        raise ConfigError(f"{where}.sweep", "sweep one setting at a time")
    if not sweep:
        return [(name, None, None)]
    (key, values), = sweep.items()
    return [(f"{name}_{key}{value}", key, value) for value in values]


def plan(compress_cfg):
    """(variants by name, steps by id) for the `compress` config section."""
    variants, steps = {}, {}
    for name, v in ((compress_cfg or {}).get("variants") or {}).items():
        where = f"compress.variants.{name}"
        root = v.get("from", "teacher")
        if root not in ROOTS:
            raise ConfigError(f"{where}.from", f"must be one of {ROOTS}, not {root!r}")
        recipe = v.get("recipe") or []
        if not recipe:
            raise ConfigError(f"{where}.recipe", "a variant needs at least one step")
        parsed = [_parse_step(e, f"{where}.recipe[{i}]") for i, e in enumerate(recipe)]
        for vname, key, value in _sweep(name, v, where):
            if vname in variants or vname in ROOTS:
                raise ConfigError(where, f"variant name {vname!r} is used twice")
            variant, parent = Variant(vname, root, name), root
            for i, (method, params) in enumerate(parsed):
                params = dict(params)
                if key is not None and i == len(parsed) - 1:
                    if key not in METHODS[method][0] | TRAIN_KEYS:
                        raise ConfigError(f"{where}.sweep.{key}", f"not a setting of {method}")
                    params[key] = value
                sid = step_id(parent, method, params)
                # the first variant's spelling of a shared step wins, so a variant added later in the
                # config (or with its keys in another order) leaves the step's rule params unchanged
                steps.setdefault(sid, Step(sid, method, params, parent, METHODS[method][1]))
                variant.steps.append(sid)
                parent = sid
            variants[vname] = variant
    run = (compress_cfg or {}).get("run")
    if run is not None:
        # a name selects one variant, or all variants of a sweep by the entry's name
        known = set(variants) | {v.base for v in variants.values()}
        unknown = [n for n in run if n not in known]
        if unknown:
            raise ConfigError("compress.run", f"no variant named {unknown[0]!r} (known: {', '.join(sorted(known))})")
        variants = {k: v for k, v in variants.items() if k in run or v.base in run}
        steps = {sid: st for sid, st in steps.items() if any(sid in v.steps for v in variants.values())}
    return variants, steps


def format_step(method, params):
    """`distill(student={layers: 2}, alpha=0.5, intermediate={hidden_weight: 1.0, ...})`: every setting."""
    def value(v):
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k}: {value(x)}" for k, x in v.items()) + "}"
        return str(v)
    return f"{method}({', '.join(f'{k}={value(v)}' for k, v in params.items())})"


def recipe_string(variant, steps):
    return " > ".join(steps[s].describe() for s in variant.steps)


def split_train(params):
    """(method settings, train-setting overrides) of a step."""
    return ({k: v for k, v in params.items() if k not in TRAIN_KEYS},
            {k: v for k, v in params.items() if k in TRAIN_KEYS})
