"""Training head gates on a token classifier: the exported pruned model equals the gated one."""

import torch

from shrink.methods.gate_training import HeadGateObjective
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


def test_objective_adds_the_expected_l0_penalty(tiny_bert, batch):
    model = tiny_bert()
    objective = HeadGateObjective(model, lam=0.5).train()
    torch.manual_seed(0)
    loss, parts = objective(batch(), [0, 1, 2])
    assert float(loss.detach()) == float(parts["task"] + 0.5 * parts["expected_heads"])
    assert 15.0 < float(parts["expected_heads"]) <= 16.0  # 16 heads start 99% open


def test_gates_get_their_own_learning_rate(tiny_bert):
    objective = HeadGateObjective(tiny_bert(), lam=0.1, gate_lr=0.05)
    groups = objective.optimizer_groups(param_groups(objective, 0.01))
    assert groups[-1]["params"] == [objective.gates.log_alpha] and groups[-1]["lr"] == 0.05
    others = {id(p) for g in groups[:-1] for p in g["params"]}
    assert id(objective.gates.log_alpha) not in others
    assert len(others) == sum(1 for p in objective.model.parameters())
