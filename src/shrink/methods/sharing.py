"""ALBERT-style cross-layer parameter sharing: N layer applications, k distinct layers.

Layer i runs the weights of group floor(i * k / N), so consecutive layers share (ALBERT shares
all, k = 1). Each group starts from the first of its layers; distillation then recovers accuracy.
The encoder's ModuleList holds the same module object several times, so `parameters()` yields
each shared tensor once and the optimizer updates it from the sum of its uses' gradients.
"""

from .architectures import adapter_for


def group_of(num_layers, num_groups):
    if not 1 <= num_groups <= num_layers:
        raise ValueError(f"groups must be in [1, {num_layers}], got {num_groups}")
    return [i * num_groups // num_layers for i in range(num_layers)]


def share_layers(model, groups, num_layers=None):
    """Make `model`'s encoder apply `groups` distinct layers over `num_layers` (default: its current depth)."""
    a = adapter_for(model)
    layers = list(a.layers(model))
    num_layers = num_layers or len(layers)
    assignment = group_of(num_layers, groups)
    # the first layer of each group (from the current model, mapped proportionally when the depth changes)
    first = {}
    for i, g in enumerate(assignment):
        first.setdefault(g, layers[i * len(layers) // num_layers])
    return a.set_layers(model, [first[g] for g in assignment])


def shared_groups(model):
    """Number of distinct layer modules in the encoder."""
    return len({id(m) for m in adapter_for(model).layers(model)})
