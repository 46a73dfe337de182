"""Each compression method's settings are declared once (shrink.methods.registry) and the trainer's in
shrink.ner.train_settings: the recipe check, the defaults, the config schema and the docs table agree."""

from pathlib import Path

import pytest
import yaml

from shrink.core.errors import ConfigError
from shrink.core.settings import REQUIRED
from shrink.methods.registry import METHODS
from shrink.ner.recipes import declared, plan, reference_markdown
from shrink.ner.train import TrainConfig
from shrink.ner.train_settings import RUN_WIDE, TRAIN_SETTINGS

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string", dict: "object"}


def valid_value(s):
    if s.choices:
        return s.choices[-1]
    if s.type is bool:
        return not s.default
    if s.type is dict:
        return {}
    if s.type is str:
        return "2:4" if s.name == "pattern" else "x"
    lo = s.minimum if s.minimum is not None else 0
    hi = s.maximum if s.maximum is not None else lo + 10
    value = (lo + hi) / 2
    return int(value) if s.type is int else float(value)


def bad_value(s):
    """A value of the right type outside the declared range or choices, or of the wrong type."""
    if s.choices:
        return "not-a-choice" if s.type is str else -12345
    if s.minimum is not None:
        return s.minimum - 1
    if s.maximum is not None:
        return s.maximum + 1
    return [] if s.type is not list else "x"


def recipe(method, params):
    return {"variants": {"v": {"recipe": [{method: params}]}}}


def with_required(method, params):
    """`params` plus one of the `one_of` settings, if the method has them."""
    m = METHODS[method]
    if m.one_of and not any(k in params for k in m.one_of):
        params[m.one_of[0]] = 0.5
    return params


@pytest.mark.parametrize("method", METHODS)
def test_recipe_check_accepts_every_declared_setting_and_rejects_bad_values(method):
    for s in declared(method):
        if s.name in METHODS[method].one_of:
            params = {s.name: valid_value(s)}
        else:
            params = with_required(method, {s.name: valid_value(s)})
        plan(recipe(method, params))  # a value in range parses
        params[s.name] = bad_value(s)
        with pytest.raises(ConfigError, match=rf"compress\.variants\.v\.recipe\[0\]\.{method}\.{s.name}"):
            plan(recipe(method, params))
    with pytest.raises(ConfigError, match="not a setting here"):
        plan(recipe(method, with_required(method, {"undeclared_setting": 1})))


def test_exactly_one_of_is_checked_at_start_up():
    with pytest.raises(ConfigError, match="exactly one of energy or ratio"):
        plan(recipe("low_rank", {"energy": 0.5, "ratio": 0.5}))
    with pytest.raises(ConfigError, match="exactly one of energy or ratio"):
        plan(recipe("low_rank", {}))


def test_a_sweep_value_is_checked_against_the_declaration():
    cfg = {"variants": {"p": {"recipe": [{"prune": {}}], "sweep": {"sparsity": [0.3, 1.5]}}}}
    with pytest.raises(ConfigError, match=r"compress\.variants\.p\.sweep\.sparsity"):
        plan(cfg)


def test_docs_table_is_generated_from_the_declarations():
    page = (REPO / "docs" / "method_settings.md").read_text()
    assert page == reference_markdown(), "regenerate: python -m shrink.ner.recipes > docs/method_settings.md"
    for m in METHODS.values():
        for s in m.settings:
            assert f"| `{s.name}` |" in page


def test_schema_lists_the_declared_methods():
    recipe_schema = SCHEMA["properties"]["compress"]["properties"]["variants"]["additionalProperties"]
    described = recipe_schema["properties"]["recipe"]["description"].split("methods: ")[1]
    assert [m.strip() for m in described.split(",")] == list(METHODS)


def test_schema_train_section_agrees_with_the_declarations():
    schema = SCHEMA["properties"]["train"]["properties"]
    assert set(schema) == {s.name for s in TRAIN_SETTINGS} - {"seed"}  # the seed is the top-level `seed`
    for s in TRAIN_SETTINGS:
        if s.name == "seed":
            continue
        entry = schema[s.name]
        if s.choices:
            assert entry["enum"] == list(s.choices), s.name
        else:
            types = entry["type"] if isinstance(entry["type"], list) else [entry["type"]]
            assert JSON_TYPES[s.type] in types, s.name
            assert ("null" in types) == (s.default is None), s.name
        if s.name != "processes":  # no schema default on purpose (see the schema's comment)
            assert entry.get("default") == s.default, s.name
        assert entry.get("exclusiveMinimum" if s.exclusive_minimum else "minimum") == s.minimum, s.name
        assert entry.get("maximum") == s.maximum, s.name


# precision values are resolved by shrink.core.precision (tests/test_precision.py)
@pytest.mark.parametrize("setting", [s for s in TRAIN_SETTINGS if (s.minimum is not None or s.choices)
                                     and s.name != "precision"], ids=lambda s: s.name)
def test_train_config_validates_with_the_declarations(setting):
    with pytest.raises(ConfigError, match=f"train.{setting.name}"):
        TrainConfig.from_dict({setting.name: bad_value(setting)})


def test_train_config_defaults_are_the_declared_ones():
    cfg = TrainConfig()
    assert {s.name: getattr(cfg, s.name) for s in TRAIN_SETTINGS} == {s.name: s.default for s in TRAIN_SETTINGS}
    assert RUN_WIDE.isdisjoint({s.name for m in METHODS for s in declared(m)})


def test_every_method_setting_has_a_default_or_is_optional():
    for m in METHODS.values():
        for s in m.settings:
            assert s.default is not REQUIRED or s.name in m.one_of, (m.name, s.name)
            assert s.description, (m.name, s.name)
