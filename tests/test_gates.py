"""Hard-concrete head gates and BERT head removal (shrink.methods.gates / .heads)."""

import copy
import json
import math

import pytest
import torch

from shrink.methods.attention_heads import (
    attach_head_gates,
    count_heads,
    head_scales,
    heads_kept,
    prune_heads,
    restructure_from_config,
)
from shrink.methods.gates import HardConcreteGates

torch.set_num_threads(1)
LAYERS, HEADS, HIDDEN = 2, 4, 32
HEAD_DIM = HIDDEN // HEADS


def tiny_bert(seed=0, dropout=0.0, attention="sdpa"):
    from transformers import AutoModelForTokenClassification, BertConfig

    config = BertConfig(vocab_size=100, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                        intermediate_size=64, num_labels=5, hidden_dropout_prob=dropout,
                        attention_probs_dropout_prob=dropout)
    torch.manual_seed(seed)
    return AutoModelForTokenClassification.from_config(config, attn_implementation=attention).eval()


def batch():
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 100, (3, 7), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0  # padded rows: the masked keys must stay masked after pruning
    mask[2, 2:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def logits(model, inputs):
    with torch.no_grad():
        return model(**inputs).logits


def fixed_gates(log_alpha):
    gates = HardConcreteGates(log_alpha.shape).eval()
    with torch.no_grad():
        gates.log_alpha.copy_(log_alpha)
    return gates


def gated_logits(model, gates, inputs):
    with attach_head_gates(model, gates):
        return logits(model, inputs)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_init_open_and_eval_limits():
    gates = HardConcreteGates((LAYERS, HEADS))
    assert torch.allclose(gates.open_probability(), torch.tensor(0.99))
    assert torch.equal(gates.eval()(), torch.ones(LAYERS, HEADS))  # a converged model starts unchanged
    extreme = fixed_gates(torch.tensor([-20.0, -math.log(11) - 0.01, -math.log(11) + 0.01, 20.0]))
    assert extreme().tolist()[0] == 0.0 and extreme().tolist()[3] == 1.0
    assert extreme.keep_mask().tolist() == [False, False, True, True]  # kept iff log_alpha > -log 11


def test_all_gates_open_equals_ungated_model():
    model, inputs = tiny_bert(), batch()
    gates = fixed_gates(torch.full((LAYERS, HEADS), 10.0))
    assert torch.equal(gates(), torch.ones(LAYERS, HEADS))
    assert torch.allclose(gated_logits(model, gates, inputs), logits(model, inputs), atol=1e-6)
    assert len(model.bert.encoder.layer[0].attention.output.dense._forward_pre_hooks) == 0  # detached


def test_closed_gate_changes_output():
    model, inputs = tiny_bert(), batch()
    alpha = torch.full((LAYERS, HEADS), 10.0)
    alpha[0, 1] = -10.0
    assert not torch.allclose(gated_logits(model, fixed_gates(alpha), inputs), logits(model, inputs), atol=1e-4)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("alpha", [
    [[10, -10, 10, -10], [-10, 10, 10, 10]],      # binary gates
    [[0.3, -5, 1.0, 10], [-1.5, -10, 2.0, -0.5]],  # fractional eval gates, folded via `scale`
    [[-10, -10, -10, -10], [0.5, 10, -10, 1.0]],   # layer 0 loses every head
])
def test_pruning_reproduces_gated_model(alpha, attention):
    model, inputs = tiny_bert(attention=attention), batch()
    gates = fixed_gates(torch.tensor(alpha, dtype=torch.float))
    expected = gated_logits(model, gates, inputs)
    keep, scale = heads_kept(gates), head_scales(gates)
    assert keep == {i: [h for h in range(HEADS) if alpha[i][h] > -math.log(11)] for i in range(LAYERS)}
    pruned = prune_heads(copy.deepcopy(model), keep, scale)
    assert torch.allclose(logits(pruned, inputs), expected, atol=1e-5)
    removed = LAYERS * HEADS - count_heads(keep)
    # per head: query/key/value rows (3 * d * hidden weights + 3 * d biases) + d output dense columns
    assert n_params(model) - n_params(pruned) == removed * (4 * HEAD_DIM * HIDDEN + 3 * HEAD_DIM)
    for i, layer in enumerate(pruned.bert.encoder.layer):
        assert layer.attention.self.num_attention_heads == len(keep[i])
        assert layer.attention.output.dense.weight.shape == (HIDDEN, len(keep[i]) * HEAD_DIM)
    assert pruned.config.pruned_heads_kept == {str(i): keep[i] for i in range(LAYERS)}


def test_layer_without_heads_is_bias_residual_layernorm():
    model, inputs = tiny_bert(attention="eager"), batch()  # eager returns attention weights
    pruned = prune_heads(copy.deepcopy(model), {0: []})
    attention = pruned.bert.encoder.layer[0].attention
    hidden = torch.randn(3, 7, HIDDEN)
    out = attention.output
    assert torch.allclose(attention(hidden)[0], out.LayerNorm(hidden + out.dense.bias), atol=1e-6)
    with torch.no_grad():
        result = pruned(**inputs, output_attentions=True)
    assert [a.shape for a in result.attentions] == [(3, 0, 7, 7), (3, HEADS, 7, 7)]


def test_pruning_twice_records_original_indices():
    model = tiny_bert()
    prune_heads(model, {0: [3, 1, 2]})
    prune_heads(model, {0: [0, 2]})  # positions among the current heads [1, 2, 3]
    assert model.config.pruned_heads_kept == {"0": [1, 3]}
    with pytest.raises(ValueError):
        prune_heads(model, {1: [0, 0]})


def test_sample_statistics_match_distribution():
    torch.manual_seed(0)
    alphas = torch.tensor([-3.0, -1.0, 0.0, 1.0, 3.0])
    n = 40000
    gates = fixed_gates(alphas.repeat(n, 1)).train()
    z = gates()
    beta, low, high = gates.temperature, gates.low, gates.high
    assert z.min() >= 0 and z.max() <= 1
    nonzero = (z > 0).float().mean(0)
    assert torch.allclose(nonzero, gates.open_probability()[0], atol=0.015)
    # P(z = 1) = P(s >= (1 - l) / (r - l)) = sigmoid(log_alpha - beta * log((1 - l) / (r - 1)))
    ones = (z == 1).float().mean(0)
    assert torch.allclose(ones, torch.sigmoid(alphas - beta * math.log((1 - low) / (high - 1))), atol=0.015)
    torch.manual_seed(5)
    first = gates()
    torch.manual_seed(5)
    assert torch.equal(first, gates())


def test_expected_l0_gradient_and_minimisation_closes_gates():
    gates = HardConcreteGates((LAYERS, HEADS))
    gates.expected_l0().backward()
    p = gates.open_probability().detach()
    assert torch.allclose(gates.log_alpha.grad, p * (1 - p))  # d sigmoid / d log_alpha
    optimizer = torch.optim.Adam(gates.parameters(), lr=0.5)
    for _ in range(30):
        optimizer.zero_grad()
        gates.expected_l0().backward()
        optimizer.step()
    assert gates.expected_l0() < 0.1
    assert not gates.keep_mask().any() and count_heads(heads_kept(gates)) == 0


def test_one_sample_per_forward_and_task_loss_gradient():
    model, inputs = tiny_bert(), batch()
    gates = HardConcreteGates((LAYERS, HEADS))
    with torch.no_grad():
        gates.log_alpha.zero_()  # mid-range gates, so samples are rarely clamped and gradients flow
    draws = []
    original = gates.sample
    gates.sample = lambda: draws.append(1) or original()
    with attach_head_gates(model, gates) as gated:
        model.train()  # dropout is 0, so only the gates are random
        torch.manual_seed(3)
        out = model(**inputs).logits
        assert len(draws) == 1  # one draw shared by both layers
        sample = gated.current.detach().clone()
        out.square().mean().backward()
        assert gates.log_alpha.grad.abs().sum() > 0
        model.eval()
        with torch.no_grad():
            model(**inputs)
        assert len(draws) == 1 and torch.equal(gated.current, gates.deterministic())
    torch.manual_seed(3)
    assert torch.equal(original(), sample)  # reproducible under torch.manual_seed
    # Eval gates whose deterministic values equal that draw give the training-mode output:
    # layer i really used row i of the single sample. Inverse of clamp(sigmoid(a) * 1.2 - 0.1, 0, 1):
    alpha = torch.logit((sample + 0.1) / 1.2).clamp(-10, 10)
    alpha[sample == 0], alpha[sample == 1] = -10.0, 10.0
    assert torch.allclose(fixed_gates(alpha)(), sample, atol=1e-6)
    assert torch.allclose(gated_logits(model, fixed_gates(alpha), inputs), out.detach(), atol=1e-5)


def test_restructure_from_saved_config(tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForTokenClassification

    model, inputs = tiny_bert(), batch()
    gates = fixed_gates(torch.tensor([[-10.0, -10, -10, -10], [0.5, -10, 10, 1.0]]))
    pruned = prune_heads(model, heads_kept(gates), head_scales(gates))
    expected = logits(pruned, inputs)
    pruned.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert json.loads(config.to_json_string())["pruned_heads_kept"] == {"0": [], "1": [0, 2, 3]}
    fresh = restructure_from_config(AutoModelForTokenClassification.from_config(config)).eval()
    fresh.load_state_dict(load_file(tmp_path / "model.safetensors"))
    assert torch.allclose(logits(fresh, inputs), expected, atol=1e-6)
