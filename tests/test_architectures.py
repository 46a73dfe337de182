"""Architecture adapters (shrink.methods.architectures): every method on every encoder family, on tiny
random token classifiers (hidden 32, 4 heads, vocab 100)."""

import copy

import pytest
import torch
import transformers as T
from transformers import AutoModelForTokenClassification

from shrink.core.errors import ConfigError
from shrink.methods.architectures import (
    FAMILIES,
    UNSUPPORTED,
    UnsupportedArchitecture,
    adapter_for,
    check_supported,
    head_rows,
)
from shrink.methods.attention_heads import attach_head_gates, prune_heads
from shrink.methods.distill import (
    IntermediateDistillation,
    QueryKeyRecorder,
    build_student,
    split_fused_qkv,
)
from shrink.methods.factorize import (
    choose_ranks,
    factorize_embeddings,
    factorize_linears,
)
from shrink.methods.gates import HardConcreteGates
from shrink.methods.ops import record_op
from shrink.methods.quantize import quantize_int8
from shrink.methods.sharing import share_layers, shared_groups
from shrink.methods.sparsegpt import prune_encoder
from shrink.ner.evaluate import structure
from shrink.ner.variants import load_variant, save_variant

LAYERS, HEADS, HIDDEN = 3, 4, 32
SHAPE = {"vocab_size": 100, "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
         "intermediate_size": 64, "num_labels": 3, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def _config(kind):
    if kind == "distilbert":
        return T.DistilBertConfig(vocab_size=100, dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=64,
                                  num_labels=3, dropout=0.0, attention_dropout=0.0)
    if kind == "modernbert":
        return T.ModernBertConfig(vocab_size=100, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                  intermediate_size=64, num_labels=3, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                  cls_token_id=1, sep_token_id=2, global_attn_every_n_layers=2, local_attention=4)
    classes = {"bert": T.BertConfig, "roberta": T.RobertaConfig, "xlm-roberta": T.XLMRobertaConfig,
               "electra": T.ElectraConfig, "deberta-v2": T.DebertaV2Config}
    extra = {"electra": {"embedding_size": 16},  # ELECTRA's narrower embeddings with a projection
             # DeBERTa-v3's attention: relative positions, content->position and position->content
             "deberta-v2": {"relative_attention": True, "pos_att_type": ["p2c", "c2p"], "position_buckets": 8,
                            "max_relative_positions": -1, "share_att_key": False}}.get(kind, {})
    return classes[kind](**SHAPE, **extra)


def tiny(kind, seed=0):
    torch.manual_seed(seed)
    return AutoModelForTokenClassification.from_config(_config(kind)).eval()


def batch(n=2, length=9):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 100, (n, length), generator=g)
    mask = torch.ones_like(ids)
    mask[1, -3:] = 0  # one padded sentence
    return {"input_ids": ids, "attention_mask": mask}


def logits(model, b=None):
    with torch.no_grad():
        return model(**(b or batch())).logits


def close(a, b, tol=1e-5):
    return torch.allclose(a, b, atol=tol, rtol=tol)


@pytest.fixture(params=FAMILIES)
def kind(request):
    return request.param


# -- (a) the adapter finds the parts


def test_adapter_finds_layers_heads_projections_and_classifier(kind):
    model = tiny(kind)
    a = adapter_for(model)
    layers = a.layers(model)
    assert len(layers) == LAYERS
    assert [a.num_heads(layer) for layer in layers] == [HEADS] * LAYERS
    assert all(a.head_size(layer) == HIDDEN // HEADS for layer in layers)
    proj = a.qkv(layers[0])
    if kind == "modernbert":
        assert set(proj) == {"qkv"} and proj["qkv"].out_features == 3 * HIDDEN
    else:
        assert set(proj) == {"query", "key", "value"} and all(p.out_features == HIDDEN for p in proj.values())
    assert a.attention_output(layers[0]).in_features == HIDDEN
    ffn_in, ffn_out = a.ffn(layers[0])
    assert ffn_in.in_features == HIDDEN and ffn_out.out_features == HIDDEN
    assert a.embeddings(model) is model.get_input_embeddings()
    assert a.classifier(model) is model.classifier and model.classifier.out_features == 3
    names = dict(a.encoder_linears(model))
    assert all(model.get_submodule(n) is m for n, m in names.items())
    per_layer = 4 if kind == "modernbert" else 6  # fused qkv: Wqkv, Wo, Wi, Wo
    assert len(names) == LAYERS * per_layer + (2 if kind == "deberta-v2" else 0) * LAYERS  # + pos_{key,query}_proj


def test_unknown_family_and_unsupported_pairs_are_named():
    with pytest.raises(UnsupportedArchitecture, match="'gpt2' is not supported"):
        check_supported("prune", "gpt2")
    for (method, kind), reason in UNSUPPORTED.items():
        with pytest.raises(UnsupportedArchitecture, match=method) as err:
            check_supported(method, kind)
        assert repr(kind) in str(err.value) and reason in str(err.value)
    check_supported("prune", "distilbert")


def test_head_rows_of_separate_and_fused_projections():
    assert head_rows([0, 2], 2, 3) == [0, 1, 4, 5]
    assert head_rows([1], 2, 3, fused=True) == [2, 3, 8, 9, 14, 15]


# -- (b) every method on every family


@pytest.mark.parametrize("method", ["sparsegpt", "magnitude", "wanda"])
def test_pruning_reaches_the_sparsity_on_every_encoder_linear(kind, method):
    model = tiny(kind)
    report = prune_encoder(model, [batch()], method, 0.5, blocksize=16)
    linears = adapter_for(model).encoder_linears(model)
    assert set(report) == {n for n, _ in linears}
    for _, lin in linears:
        assert (lin.weight == 0).float().mean().item() == pytest.approx(0.5, abs=0.02)
    assert torch.isfinite(logits(model)).all()
    assert structure(model)["sparsity"] == pytest.approx(0.5, abs=0.02)


def _sliced_and_masked(kind):
    model = tiny(kind)
    b = batch()
    gates = HardConcreteGates((LAYERS, HEADS))
    closed = {0: [1, 3], 1: [], 2: [0, 1, 2]}  # heads kept per layer; layer 1 loses every head
    with torch.no_grad():
        for i, keep in closed.items():
            gates.log_alpha[i] = -10.0  # eval gate exactly 0
            gates.log_alpha[i, keep] = 10.0  # eval gate exactly 1
    gates.eval()
    with attach_head_gates(model, gates):
        gated = logits(model, b)
    assert not close(gated, logits(model, b))  # the gates do change the model
    pruned = prune_heads(copy.deepcopy(model), closed)
    return record_op(pruned, "prune_heads", keep={str(k): v for k, v in closed.items()}), gated


def test_slicing_heads_equals_masking_them(kind):
    pruned, gated = _sliced_and_masked(kind)
    assert close(logits(pruned), gated)
    assert structure(pruned)["heads_per_layer"] == [2, 0, 3]


def test_pruned_heads_round_trip(kind, tmp_path):
    pruned, _ = _sliced_and_masked(kind)
    save_variant(pruned, None, tmp_path)
    assert close(logits(load_variant(tmp_path)), logits(pruned))


def _factorized(model):
    factorize_embeddings(model, 8)
    record_op(model, "factorize_embeddings", rank=8)
    ranks = choose_ranks(model, ratio=0.25)
    assert ranks  # every family has linears worth factorizing at a quarter rank
    factorize_linears(model, ranks)
    return record_op(model, "low_rank", ranks=ranks)


@pytest.mark.parametrize("steps", ["factorize", "share"])
def test_structural_methods_run_and_round_trip(kind, steps, tmp_path):
    model = tiny(kind)
    before = logits(model)
    if steps == "factorize":
        _factorized(model)
    else:
        share_layers(model, 2)
        record_op(model, "share_layers", groups=2)
        assert shared_groups(model) == 2
    after = logits(model)
    assert torch.isfinite(after).all() and not close(after, before)
    save_variant(model, None, tmp_path)
    loaded = load_variant(tmp_path)
    assert close(logits(loaded), after)
    if steps == "share":
        assert shared_groups(loaded) == 2


def test_recorded_attention_scores_are_the_eager_probabilities(kind):
    model = tiny(kind)
    model.set_attn_implementation("eager")
    a = adapter_for(model)
    b = {"input_ids": batch()["input_ids"], "attention_mask": torch.ones(2, 9, dtype=torch.long)}
    recorder = QueryKeyRecorder(a.layers(model), a)
    try:
        with torch.no_grad():
            out = model(**b, output_attentions=True)
    finally:
        recorder.remove()
    if ("distill:attention_scores", kind) in UNSUPPORTED:
        if kind == "modernbert":  # the recorder still slices q and k out of the fused projection
            x = recorder.query_key(0)[0]
            assert x.shape == (2, 9, HIDDEN)
        # why it is refused: Q K^T / sqrt(d) from the projections is not what this family softmaxes
        assert not close(recorder.scores(0).softmax(-1), out.attentions[0]), UNSUPPORTED[("distill:attention_scores", kind)]
        return
    for i in range(LAYERS):
        assert close(recorder.scores(i).softmax(-1), out.attentions[i])


def test_split_fused_qkv():
    q, k, v = split_fused_qkv(torch.arange(12.0).view(1, 1, 12))
    assert q.flatten().tolist() == [0, 1, 2, 3] and k.flatten().tolist() == [4, 5, 6, 7]
    assert v.flatten().tolist() == [8, 9, 10, 11]


def test_tinybert_scores_refused_where_unsupported(kind):
    model = tiny(kind)
    if ("distill:attention_scores", kind) not in UNSUPPORTED:
        IntermediateDistillation(model, tiny(kind, 1), [0, 1, 2, 3])
        return
    with pytest.raises(ConfigError, match=f"intermediate.attention.*{kind}"):
        IntermediateDistillation(model, tiny(kind, 1), [0, 1, 2, 3])
    IntermediateDistillation(model, tiny(kind, 1), [0, 1, 2, 3], attention="probabilities")


def test_student_from_parent_layers(kind, tmp_path):
    parent = tiny(kind)
    keep = [0, 1] if kind == "modernbert" else [0, 2]  # ModernBERT: layer 0 first, kinds at their positions
    student = build_student(parent, {"layers_from": keep}, ["O", "B", "I"], 0)
    a = adapter_for(student)
    assert len(a.layers(student)) == 2 and student.config.num_hidden_layers == 2
    for j, k in enumerate(keep):
        assert a.layers(student)[j].state_dict().keys() == a.layers(parent)[k].state_dict().keys()
        assert all(torch.equal(v, a.layers(parent)[k].state_dict()[n]) for n, v in a.layers(student)[j].state_dict().items())
    out = logits(student)
    save_variant(student, None, tmp_path)
    assert close(logits(load_variant(tmp_path)), out)


def test_modernbert_student_refuses_layers_that_cannot_reload():
    with pytest.raises(ConfigError, match="student.layers_from"):
        build_student(tiny("modernbert"), {"layers_from": [1, 2]}, ["O", "B", "I"], 0)


def test_modernbert_default_student_layers_reload(tmp_path):
    """Without layers_from, TinyBERT's map would keep layer 2 of [global, local, global] for a 1-layer student
    (and layers 0 and 2 for 2 layers, a global layer where a local one belongs): the ModernBERT default keeps
    layer 0 first and each later layer of its position's kind."""
    from shrink.methods.distill import default_layers

    parent = tiny("modernbert")
    assert parent.config.layer_types == ["full_attention", "sliding_attention", "full_attention"]
    assert default_layers(tiny("bert").config, 1) == [2] and default_layers(tiny("bert").config, 2) == [0, 2]
    assert default_layers(parent.config, 1) == [0] and default_layers(parent.config, 2) == [0, 1]
    assert default_layers(parent.config, 3) == [0, 1, 2]
    for layers in (1, 2):
        student = build_student(parent, {"layers": layers}, ["O", "B", "I"], 0)
        out = logits(student)
        save_variant(student, None, tmp_path / str(layers))
        assert close(logits(load_variant(tmp_path / str(layers))), out)


def test_int8_runs_and_round_trips(kind, tmp_path):
    model = tiny(kind)
    q = record_op(quantize_int8(model), "quantize_int8")
    out = logits(q)
    assert torch.isfinite(out).all() and (out - logits(model)).abs().max() < 0.5
    assert structure(q)["bits"] == 8
    save_variant(q, None, tmp_path)
    assert close(logits(load_variant(tmp_path)), out)


def test_structure_reports_heads(kind):
    s = structure(tiny(kind))
    assert s["heads_per_layer"] == [HEADS] * LAYERS and s["heads_kept"] == s["heads_total"] == HEADS * LAYERS


def test_random_student_from_any_parent(kind):
    student = build_student(tiny(kind), {"init": "random", "layers": 1}, ["O", "B", "I"], 0)
    assert student.config.model_type == "bert" and torch.isfinite(logits(student)).all()


def test_step_start_names_key_method_and_model_type(tmp_path):
    from types import SimpleNamespace

    from shrink.ner.compress import check_architecture

    tiny("deberta-v2").save_pretrained(tmp_path)
    inter = {"attention_weight": 1.0, "attention": "scores", "hidden_weight": 1.0}
    ctx = SimpleNamespace(method="distill", settings={"intermediate": inter}, parent=str(tmp_path), teacher={},
                          key="compress.variants.small.recipe[1]")
    with pytest.raises(ConfigError, match=r"compress\.variants\.small\.recipe\[1\].*distill:attention_scores.*"
                                          r"'deberta-v2'"):
        check_architecture(ctx)
    ctx.settings = {"intermediate": {**inter, "attention": "probabilities"}}
    check_architecture(ctx)
    ctx.method, ctx.settings = "prune", {}
    check_architecture(ctx)


def test_feature_based_tagger_runs_on_every_family(kind):
    from shrink.methods.feature_based import FeatureTagger

    tagger = FeatureTagger.wrap(tiny(kind), layers=2, head="linear").eval()
    assert logits(tagger).shape == (2, 9, 3)
