"""Every structural op survives save and load: the reloaded model gives the same logits."""

import pytest
import torch

from shrink.methods.attention_heads import prune_heads
from shrink.methods.factorize import (
    choose_ranks,
    factorize_embeddings,
    factorize_linears,
)
from shrink.methods.feature_based import FeatureTagger
from shrink.methods.ops import record_op
from shrink.methods.quantize import quantize_int8
from shrink.methods.sharing import share_layers
from shrink.ner.variants import load_variant, save_variant

torch.set_num_threads(1)


def factorized(m):
    factorize_embeddings(m, 8)
    return record_op(m, "factorize_embeddings", rank=8)


def low_rank(m):
    ranks = choose_ranks(m, ratio=0.25)
    factorize_linears(m, ranks)
    return record_op(m, "low_rank", ranks=ranks)


def shared(m):
    share_layers(factorized(m), 2)
    return record_op(m, "share_layers", groups=2)


def pruned(m):
    keep = {0: [1, 3], 2: [], 3: [0]}
    prune_heads(m, keep, scale={0: [0.5, 1.0], 3: [0.7]})
    return record_op(m, "prune_heads", keep={str(k): v for k, v in keep.items()})


def quantized(m):
    return record_op(quantize_int8(factorized(m)), "quantize_int8")


def features(m):
    return FeatureTagger.wrap(m, layers=2, head="bilstm", head_hidden=8).eval()


@pytest.mark.parametrize("make", [lambda m: m, factorized, low_rank, shared, pruned, quantized, features],
                         ids=["plain", "factorized", "low_rank", "shared", "pruned_heads", "int8", "feature_based"])
def test_save_load_round_trip(tmp_path, tiny_bert, batch, make):
    model = make(tiny_bert())
    b = {k: v for k, v in batch().items() if k != "labels"}
    with torch.no_grad():
        ref = model(**b).logits
    save_variant(model, None, tmp_path)
    again = load_variant(tmp_path)
    with torch.no_grad():
        assert torch.equal(again(**b).logits, ref)
    assert sum(p.numel() for p in again.parameters()) == sum(p.numel() for p in model.parameters())


def test_plain_models_stay_loadable_by_transformers(tmp_path, tiny_bert, batch):
    from transformers import AutoModelForTokenClassification

    model = tiny_bert()
    save_variant(model, None, tmp_path)
    # plain transformers, no shrink code: every weight found (none freshly initialised), same outputs
    again, info = AutoModelForTokenClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert type(again) is type(model) and not getattr(again.config, "shrink_ops", None)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    b = {k: v for k, v in batch().items() if k != "labels"}
    with torch.no_grad():
        assert torch.equal(again.eval()(**b).logits, model(**b).logits)


def test_unknown_op_is_an_error(tmp_path, tiny_bert):
    model = record_op(tiny_bert(), "fold_in_half")
    model.config.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="fold_in_half"):
        load_variant(tmp_path)
