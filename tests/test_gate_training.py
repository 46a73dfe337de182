"""Training head gates on a token classifier: the exported pruned model equals the gated one."""

import pytest
import torch

from shrink.methods.gate_training import HeadGateObjective
from shrink.methods.gates import HardConcreteGates
from shrink.ner.train import param_groups

torch.set_num_threads(1)


def test_export_removes_closed_heads_and_keeps_the_outputs(tiny_bert, batch):
    model = tiny_bert()
    objective = HeadGateObjective(model, lam=0.1)
    with torch.no_grad():  # close three heads, leave one half open
        objective.gates.log_alpha[0, 1] = -10.0
        objective.gates.log_alpha[2, :2] = -10.0
        objective.gates.log_alpha[3, 0] = 0.0
    b = {k: v for k, v in batch().items() if k != "labels"}
    model.eval()
    with torch.no_grad():
        gated = model(**b).logits
        pruned = objective.export(model)
        assert torch.allclose(pruned(**b).logits, gated, atol=1e-5)
        # the export is a copy: the gated model still runs with its hooks
        assert torch.equal(model(**b).logits, gated)
    heads = [layer.attention.self.num_attention_heads for layer in pruned.bert.encoder.layer]
    assert heads == [3, 4, 2, 4]
    assert pruned.config.shrink_ops[-1] == {"op": "prune_heads", "keep": {"0": [0, 2, 3], "1": [0, 1, 2, 3],
                                                                          "2": [2, 3], "3": [0, 1, 2, 3]}}


# Hard-concrete gates (Louizos et al. 2018) with the default temperature beta = 2/3 and stretch
# (gamma, zeta) = (-0.1, 1.1): P(gate != 0) = sigmoid(log_alpha - beta * log(-gamma / zeta))
# = sigmoid(log_alpha + (2/3) ln 11) = sigmoid(log_alpha + 1.598597). The probabilities below were worked
# out from that closed form, not by the code under test; -1.598597 is the log_alpha of a gate open half the time.
LOG_ALPHA = [[-1.598597, 0.0, 3.0, -6.0], [-4.0, -2.0, 1.0, 2.0], [-0.5, 0.5, 1.5, 4.0], [-3.0, -1.0, 0.25, 2.5]]
P_OPEN = [[0.5, 0.831822, 0.990034, 0.012112], [0.083066, 0.400975, 0.930771, 0.973367],
          [0.749997, 0.890767, 0.956835, 0.996311], [0.197594, 0.645335, 0.863962, 0.983675]]
EXPECTED_L0 = 11.006623  # the sum of P_OPEN


def test_objective_adds_the_expected_l0_penalty(tiny_bert, batch):
    model = tiny_bert()
    objective = HeadGateObjective(model, lam=0.5).train()
    b = batch()
    torch.manual_seed(0)
    _, parts = objective(b, [0, 1, 2])
    assert float(parts["expected_heads"]) == pytest.approx(16 * 0.99, abs=1e-4)  # 16 heads start 99% open
    with torch.no_grad():
        objective.gates.log_alpha.copy_(torch.tensor(LOG_ALPHA))
    torch.manual_seed(0)
    loss, parts = objective(b, [0, 1, 2])
    assert float(parts["expected_heads"]) == pytest.approx(EXPECTED_L0, abs=1e-5)
    # the same gate sample (same seed) without the penalty: the difference is lambda * E[L0] exactly
    objective.lam = 0.0
    torch.manual_seed(0)
    unpenalised, parts0 = objective(b, [0, 1, 2])
    assert torch.equal(parts0["task"], parts["task"])
    assert float(loss.detach() - unpenalised.detach()) == pytest.approx(0.5 * EXPECTED_L0, abs=1e-5)


def test_gate_samples_are_nonzero_at_the_closed_form_rate():
    """Monte Carlo with a fixed seed: the share of nonzero training samples of each gate matches P_OPEN."""
    gates = HardConcreteGates((4, 4)).train()
    with torch.no_grad():
        gates.log_alpha.copy_(torch.tensor(LOG_ALPHA))
        torch.manual_seed(0)
        open_share = (torch.stack([gates.sample() for _ in range(40000)]) > 0).double().mean(0)
    # binomial standard error <= 0.5 / sqrt(40000) = 0.0025; 0.01 is four of them
    assert torch.allclose(open_share, torch.tensor(P_OPEN, dtype=torch.float64), atol=0.01)
    assert torch.allclose(gates.open_probability(), torch.tensor(P_OPEN), atol=1e-6)


def test_gates_get_their_own_learning_rate(tiny_bert):
    objective = HeadGateObjective(tiny_bert(), lam=0.1, gate_lr=0.05)
    groups = objective.optimizer_groups(param_groups(objective, 0.01))
    assert groups[-1]["params"] == [objective.gates.log_alpha] and groups[-1]["lr"] == 0.05
    others = {id(p) for g in groups[:-1] for p in g["params"]}
    assert id(objective.gates.log_alpha) not in others
    assert len(others) == sum(1 for p in objective.model.parameters())
