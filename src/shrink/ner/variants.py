"""Saving and loading compressed models whose structure plain `from_pretrained` cannot rebuild.

A variant's `config.json` is the Hugging Face config plus `shrink_ops`: the structural changes
applied to the architecture the config describes, in order (e.g. factorized embeddings, low-rank
linears, shared layers, removed heads, int8). `load_variant` builds the plain model from the config,
replays each op without initialising weights, then loads the saved tensors. A model with no ops
is saved with `save_pretrained` and loads with `AutoModelForTokenClassification.from_pretrained`.
"""

from pathlib import Path

import torch

from ..methods.ops import ops_of, replay

WEIGHTS = "model.safetensors"


def save_variant(model, tokenizer, folder):
    folder = Path(folder)
    ops = ops_of(model)
    if not ops:
        model.save_pretrained(folder)
    else:
        model.config.save_pretrained(folder)
        if any(op["op"] == "quantize_int8" for op in ops):
            from ..methods.quantize import (
                STATE_FILE,  # packed int8 weights are not plain tensors: torch.save
            )

            torch.save(model.state_dict(), folder / STATE_FILE)
        else:
            from safetensors.torch import save_model as save_tensors

            save_tensors(model, str(folder / WEIGHTS))  # drops duplicates of shared tensors
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)


def load_variant(folder):
    """Any model folder the pipeline writes: plain Hugging Face or with structural ops."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    folder = Path(folder)
    config = AutoConfig.from_pretrained(folder)
    ops = list(getattr(config, "shrink_ops", None) or [])
    if not ops:
        return AutoModelForTokenClassification.from_pretrained(folder)
    # the plain architecture first: ops that change depth or width are replayed on top of it
    config.shrink_ops = []
    model = AutoModelForTokenClassification.from_config(config)
    for op in ops:
        model = replay(model, op)
    model.config.shrink_ops = ops
    from ..methods.quantize import STATE_FILE, _quiet_torch_ao

    if (folder / STATE_FILE).is_file():
        with _quiet_torch_ao():
            model.load_state_dict(torch.load(folder / STATE_FILE, weights_only=True))
    else:
        from safetensors.torch import load_model as load_tensors

        load_tensors(model, str(folder / WEIGHTS))
    return model.eval()
