"""Structural ops: each method that changes a model's architecture records what it did in
`model.config.shrink_ops`, so that a saved model can be rebuilt from its config before its weights load.
"""


def ops_of(model):
    return list(getattr(model.config, "shrink_ops", None) or [])


def record_op(model, op, **args):
    """Append a structural op to the model's config (it travels with save and deepcopy)."""
    model.config.shrink_ops = ops_of(model) + [{"op": op, **args}]
    return model


def replay(model, op):
    """Apply a recorded op's structural change to `model` without initialising weights (they are loaded next)."""
    from .factorize import factorize_embeddings, factorize_linears
    from .sharing import share_layers

    name, args = op["op"], {k: v for k, v in op.items() if k != "op"}
    if name == "factorize_embeddings":
        return factorize_embeddings(model, args["rank"], init=False)
    if name == "low_rank":
        return factorize_linears(model, args["ranks"], init=False)
    if name == "share_layers":
        return share_layers(model, args["groups"])
    if name == "prune_heads":
        from .attention_heads import prune_heads

        return prune_heads(model, {int(k): v for k, v in args["keep"].items()})
    if name == "feature_based":
        from .feature_based import FeatureTagger

        return FeatureTagger.wrap(model, **args)
    if name == "quantize_int8":
        from .quantize import quantize_int8

        return quantize_int8(model)
    raise ValueError(f"unknown structural op {name!r} in shrink_ops")
