"""ALBERT-style cross-layer sharing."""

import torch

from shrink.methods.sharing import group_of, share_layers, shared_groups

torch.set_num_threads(1)


def test_group_assignment_is_contiguous_and_balanced():
    assert group_of(6, 2) == [0, 0, 0, 1, 1, 1]
    assert group_of(6, 1) == [0] * 6
    assert group_of(4, 4) == [0, 1, 2, 3]


def test_one_group_per_layer_changes_nothing(tiny_bert, batch):
    model = tiny_bert()
    b = batch()
    ref = model(**b).logits
    share_layers(model, groups=4)
    assert torch.allclose(model(**b).logits, ref)


def test_shared_layers_count_once_and_sum_their_gradients(tiny_bert, batch):
    model = tiny_bert()
    per_layer = sum(p.numel() for p in model.bert.encoder.layer[0].parameters())
    before = sum(p.numel() for p in model.parameters())
    share_layers(model, groups=2)
    assert shared_groups(model) == 2
    assert sum(p.numel() for p in model.parameters()) == before - 2 * per_layer
    layers = model.bert.encoder.layer
    assert layers[0] is layers[1] and layers[2] is layers[3] and layers[1] is not layers[2]
    # the shared weight's gradient is the sum over both uses: compare with an unshared copy of the same weights
    import copy

    b = batch()
    model.train(False)
    model(**b).loss.backward()
    shared_grad = layers[0].intermediate.dense.weight.grad.clone()
    twin = copy.deepcopy(model)
    twin.bert.encoder.layer = torch.nn.ModuleList(copy.deepcopy(m) for m in twin.bert.encoder.layer)
    twin.zero_grad()
    twin(**b).loss.backward()
    split = twin.bert.encoder.layer[0].intermediate.dense.weight.grad + twin.bert.encoder.layer[1].intermediate.dense.weight.grad
    assert torch.allclose(shared_grad, split, atol=1e-6)
