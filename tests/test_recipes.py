"""Recipes: shared prefixes share step ids, sweeps expand, bad settings name their config key."""

import pytest

from shrink.core.errors import ConfigError
from shrink.ner.recipes import plan, recipe_string


def cfg(**variants):
    return {"variants": variants}


def test_a_shared_prefix_is_one_step():
    variants, steps = plan(cfg(
        a={"recipe": [{"factorize_embeddings": {"rank": 64}}]},
        b={"recipe": [{"factorize_embeddings": {"rank": 64}}, {"finetune": {"epochs": 1}}]},
        c={"recipe": [{"factorize_embeddings": {"rank": 32}}, {"finetune": {"epochs": 1}}]},
    ))
    assert variants["a"].steps[0] == variants["b"].steps[0] != variants["c"].steps[0]
    # the same step after a different prefix is a different step
    assert variants["b"].steps[1] != variants["c"].steps[1]
    assert len(steps) == 4
    assert steps[variants["b"].last].parent == variants["a"].last
    assert recipe_string(variants["b"], steps) == "factorize_embeddings(rank=64) > finetune(epochs=1)"


def test_step_ids_are_stable_and_readable():
    v1, _ = plan(cfg(a={"recipe": [{"prune": {"sparsity": 0.5}}]}))
    v2, _ = plan(cfg(z={"recipe": [{"prune": {"sparsity": 0.5}}]}))
    assert v1["a"].last == v2["z"].last and v1["a"].last.startswith("prune-")


def test_step_ids_hash_declared_defaults():
    """A setting left out and the same setting spelled out at its declared default are one step; a default
    that changes (here: spelled out at another value) is another step, so a cached result is not reused."""
    from shrink.methods.registry import METHODS

    default = next(s.default for s in METHODS["prune"].settings if s.name == "mask_selection")
    implicit, _ = plan(cfg(a={"recipe": [{"prune": {"sparsity": 0.5}}]}))
    explicit, _ = plan(cfg(a={"recipe": [{"prune": {"sparsity": 0.5, "mask_selection": default}}]}))
    other, _ = plan(cfg(a={"recipe": [{"prune": {"sparsity": 0.5, "mask_selection": "row"}}]}))
    assert implicit["a"].last == explicit["a"].last != other["a"].last
    nested, _ = plan(cfg(a={"recipe": [{"distill": {"intermediate": {"hidden_weight": 1.0}}}]}))
    nested_default, _ = plan(cfg(a={"recipe": [{"distill": {"intermediate": {"hidden_weight": 1.0,
                                                                             "attention": "scores"}}}]}))
    assert nested["a"].last == nested_default["a"].last


def test_sweep_makes_one_variant_per_value_on_the_last_step():
    variants, steps = plan(cfg(g={"recipe": [{"factorize_embeddings": {"rank": 8}}, {"gate_heads": {"epochs": 1}}],
                                  "sweep": {"lambda": [0.1, 0.01]}}))
    assert list(variants) == ["g_lambda0.1", "g_lambda0.01"]
    assert [steps[v.last].params["lambda"] for v in variants.values()] == [0.1, 0.01]
    assert variants["g_lambda0.1"].steps[0] == variants["g_lambda0.01"].steps[0]


def test_run_selects_variants_and_sweeps_by_name():
    variants, steps = plan({"run": ["g", "a"], "variants": {
        "a": {"recipe": [{"quantize": {}}]}, "b": {"recipe": [{"finetune": {}}]},
        "g": {"recipe": [{"prune": {}}], "sweep": {"sparsity": [0.3, 0.5]}}}})
    assert sorted(variants) == ["a", "g_sparsity0.3", "g_sparsity0.5"]
    assert all(s.method in ("quantize", "prune") for s in steps.values())
    with pytest.raises(ConfigError, match="compress.run.*'nope'"):
        plan({"run": ["nope"], "variants": {"a": {"recipe": [{"quantize": {}}]}}})


@pytest.mark.parametrize("variant, key", [
    ({"recipe": [{"distil": {}}]}, "compress.variants.v.recipe[0]"),
    ({"recipe": [{"prune": {"sparsity": 0.5, "rank": 3}}]}, "compress.variants.v.recipe[0].prune.rank"),
    ({"recipe": [{"quantize": {"epochs": 1}}]}, "compress.variants.v.recipe[0].quantize.epochs"),
    ({"recipe": [{"prune": {}, "quantize": {}}]}, "compress.variants.v.recipe[0]"),
    ({"recipe": []}, "compress.variants.v.recipe"),
    ({"from": "scratch", "recipe": [{"finetune": {}}]}, "compress.variants.v.from"),
    ({"recipe": [{"prune": {}}], "sweep": {"rank": [1]}}, "compress.variants.v.sweep.rank"),
    # a mapping setting's own fields are declared and checked too
    ({"recipe": [{"distill": {"intermediate": {"attention": "maps"}}}]},
     "compress.variants.v.recipe[0].distill.intermediate.attention"),
    ({"recipe": [{"distill": {"student": {"layer": 2}}}]}, "compress.variants.v.recipe[0].distill.student.layer"),
    ({"recipe": [{"distill": {"student": {"layers": 0}}}]}, "compress.variants.v.recipe[0].distill.student.layers"),
])
def test_bad_recipes_name_their_key(variant, key):
    with pytest.raises(ConfigError) as e:
        plan(cfg(v=variant))
    assert e.value.key == key


def test_prune_mask_selection_is_checked_against_its_choices():
    for ok in ("block", "row"):
        plan(cfg(v={"recipe": [{"prune": {"mask_selection": ok}}]}))
    with pytest.raises(ConfigError, match="block, row") as e:
        plan(cfg(v={"recipe": [{"prune": {"mask_selection": "diagonal"}}]}))
    assert e.value.key == "compress.variants.v.recipe[0].prune.mask_selection"


def test_step_settings_fill_nested_defaults():
    from shrink.ner.recipes import step_settings

    s = step_settings("distill", {"epochs": 2, "intermediate": {"hidden_weight": 0.5}})
    assert s["intermediate"] == {"hidden_weight": 0.5, "attention_weight": 1.0, "attention": "scores"}
    assert "epochs" not in s and s["alpha"] == 0.5


def test_training_steps_accept_train_overrides():
    _, steps = plan(cfg(v={"recipe": [{"distill": {"epochs": 2, "lr": 1e-4, "alpha": 0.5}}]}))
    (step,) = steps.values()
    assert step.trains and step.params == {"epochs": 2, "lr": 1e-4, "alpha": 0.5}


def test_a_shared_step_keeps_the_first_spelling_of_its_settings():
    """Key order does not change a step's id, and a later variant does not respell an earlier one's step."""
    variants, steps = plan(cfg(a={"recipe": [{"distill": {"epochs": 2, "alpha": 0.5}}]},
                               b={"recipe": [{"distill": {"alpha": 0.5, "epochs": 2}}, {"quantize": {}}]}))
    assert variants["a"].last == variants["b"].steps[0]
    assert list(steps[variants["a"].last].params) == ["epochs", "alpha"]


def test_format_step_shows_nested_settings():
    from shrink.ner.recipes import format_step

    assert (format_step("distill", {"student": {"layers": 2}, "intermediate": {"hidden_weight": 1.0}, "epochs": 3})
            == "distill(student={layers: 2}, intermediate={hidden_weight: 1.0}, epochs=3)")
