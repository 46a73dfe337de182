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

from ..core import settings
from ..core.errors import ConfigError
from ..methods.registry import METHODS
from .train_settings import STEP_TRAIN_SETTINGS

ROOTS = ("teacher", "pretrained")
TRAIN_KEYS = {s.name for s in STEP_TRAIN_SETTINGS}


def declared(method):
    """Every setting a step of `method` takes: its own, and the train overrides if it trains."""
    m = METHODS[method]
    return m.settings + (STEP_TRAIN_SETTINGS if m.trains else ())


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
    settings.check(params, declared(method), f"{where}.{method}")
    one_of = METHODS[method].one_of
    if one_of and sum(k in params for k in one_of) != 1:
        raise ConfigError(f"{where}.{method}", f"set exactly one of {' or '.join(one_of)}")
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
                    known = settings.by_name(declared(method))
                    if key not in known:
                        raise ConfigError(f"{where}.sweep.{key}", f"not a setting of {method}")
                    known[key].check(value, f"{where}.sweep.{key}")
                    params[key] = value
                # the id hashes the settings the step runs with, declared defaults included: a default
                # changed in shrink.methods.registry gives the steps that use it new ids, so they rerun
                sid = step_id(parent, method, {**step_settings(method, params), **split_train(params)[1]})
                # the first variant's spelling of a shared step wins, so a variant added later in the
                # config (or with its keys in another order) leaves the step's rule params unchanged
                steps.setdefault(sid, Step(sid, method, params, parent, METHODS[method].trains))
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


def step_settings(method, params):
    """The settings a step of `method` runs with: its own, and every declared one it leaves out at its
    declared default. Step ids hash these (with the step's train overrides), not the recipe as written:
    Snakemake's params trigger ignores parameters computed from wildcards, so a changed default could not
    rerun a cached step any other way (measured: a `settings` rule parameter did not)."""
    return settings.with_defaults(split_train(params)[0], METHODS[method].settings)


def reference_markdown():
    """docs/method_settings.md: every recipe method's declared settings (`python -m shrink.ner.recipes`)."""
    head = "| setting | type | default | range | meaning |\n| --- | --- | --- | --- | --- |"
    parts = ["# Compression method settings", "",
             "Generated from the declarations in `src/shrink/methods/registry.py` and "
             "`src/shrink/ner/train_settings.py` by `python -m shrink.ner.recipes > docs/method_settings.md`; "
             "`tests/test_method_settings.py` fails when this page is stale. A recipe step is checked against "
             "these declarations when the workflow starts, and runs with these defaults.", ""]
    for m in METHODS.values():
        parts += [f"## `{m.name}`", "", m.summary + ("." if not m.summary.endswith(".") else ""), ""]
        if m.one_of:
            parts += [f"Set exactly one of {' and '.join(f'`{k}`' for k in m.one_of)}.", ""]
        if m.settings:
            parts += [head, *settings.markdown_rows(m.settings), ""]
        if m.trains:
            parts += ["It trains, so it also takes the train settings below.", ""]
    parts += ["## Train settings a step that trains may override", "",
              "Default: the run's `train` section (config.yaml); these are that section's declared defaults.", "",
              head, *settings.markdown_rows(STEP_TRAIN_SETTINGS), ""]
    return "\n".join(parts)


if __name__ == "__main__":
    print(reference_markdown(), end="")
