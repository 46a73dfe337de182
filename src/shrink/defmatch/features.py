"""Frozen-encoder features for definition matching: one vector for the target word in its context,
one for the definition.

The encoder is never trained; its hidden states (embedding output plus one per layer, from
`output_hidden_states=True`) are combined per token by `layers`:
  sum_last4       sum of the last four layers (the seed report's choice; keeps the width d)
  last            the last layer
  concat_last4    the last four layers side by side (width 4d)
  mean_all        mean over all transformer layers (the embedding output is left out)
  second_to_last  the layer before the last (often less specialised to the pre-training task)
The word vector is the mean over the target word's word-pieces; the definition vector is the mean
over the definition's tokens, special tokens excluded.
"""

import hashlib
import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..core.atomic import atomic_path
from ..core.errors import ConfigError, ShrinkError
from ..core.precision import autocast

LAYERS = ("sum_last4", "last", "concat_last4", "mean_all", "second_to_last")
LAYERS_KEY = "definition_match.features.layers"


def check_layers(layers, num_layers=None):
    """ConfigError naming the config key for an unknown option, or one the encoder is too shallow for."""
    if layers not in LAYERS:
        raise ConfigError(LAYERS_KEY, f"unknown layer combination {layers!r} (known: {', '.join(LAYERS)})")
    need = {"sum_last4": 4, "concat_last4": 4, "second_to_last": 2}.get(layers, 1)
    if num_layers is not None and num_layers < need:
        raise ConfigError(LAYERS_KEY, f"{layers!r} needs an encoder with at least {need} layers, "
                                      f"this one has {num_layers}")


def feature_width(hidden_size, layers):
    check_layers(layers)
    return 4 * hidden_size if layers == "concat_last4" else hidden_size


def combine(hidden_states, layers):
    """(B, T, d') per-token vectors from the tuple (embeddings, layer 1, ..., layer L) of (B, T, d)."""
    check_layers(layers, len(hidden_states) - 1)
    if layers == "sum_last4":
        return torch.stack(hidden_states[-4:]).sum(0)
    if layers == "last":
        return hidden_states[-1]
    if layers == "concat_last4":
        return torch.cat(hidden_states[-4:], dim=-1)
    if layers == "mean_all":
        return torch.stack(hidden_states[1:]).mean(0)
    return hidden_states[-2]


def _masked_mean(states, mask):
    mask = mask.to(states.dtype).unsqueeze(-1)
    return (states * mask).sum(1) / mask.sum(1)


def _word_batch(batch, model, tokenizer, layers, device, first):
    words = [item["context"].split() for item in batch]
    enc = tokenizer(words, is_split_into_words=True, padding=True, truncation=True, return_tensors="pt")
    mask = torch.zeros_like(enc["input_ids"], dtype=torch.bool)
    for row, item in enumerate(batch):
        pieces = [t for t, w in enumerate(enc.word_ids(row)) if w == item["index"]]
        if not pieces:
            raise ShrinkError(f"item {first + row}: target word {item['target']!r} at index {item['index']} "
                              "has no word-pieces (cut off by truncation, or tokenised to nothing)")
        mask[row, pieces] = True
    out = model(**{k: v.to(device) for k, v in enc.items()}, output_hidden_states=True)
    return _masked_mean(combine(out.hidden_states, layers), mask.to(device))


def definition_text(item, prefix_target):
    # "target : definition" names the sense's word, as a dictionary entry would.
    return f"{item['target']} : {item['definition']}" if prefix_target else item["definition"]


def _definition_batch(batch, model, tokenizer, layers, device, prefix_target):
    texts = [definition_text(item, prefix_target) for item in batch]
    enc = tokenizer(texts, padding=True, truncation=True, return_tensors="pt", return_special_tokens_mask=True)
    keep = enc.pop("special_tokens_mask").eq(0) & enc["attention_mask"].bool()
    out = model(**{k: v.to(device) for k, v in enc.items()}, output_hidden_states=True)
    return _masked_mean(combine(out.hidden_states, layers), keep.to(device))


def encode(items, model, tokenizer, layers="sum_last4", batch_size=32, prefix_target=False, progress=True,
           precision="fp32"):
    """dict(word=(n, d'), definition=(n, d')) float32 CPU tensors for `items` (from data.read_split);
    `precision` is a resolved one (shrink.core.precision) for the encoder's forward passes."""
    check_layers(layers, model.config.num_hidden_layers)
    if not tokenizer.is_fast:
        raise ShrinkError("encode needs a fast tokenizer (word_ids maps word-pieces back to words)")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()  # no dropout: the same item always gets the same vector
    words, definitions = [], []
    try:
        with torch.no_grad(), autocast(device.type, precision):
            for start in tqdm(range(0, len(items), batch_size), desc=f"encode {layers}", disable=not progress,
                              mininterval=2):
                batch = items[start:start + batch_size]
                words.append(_word_batch(batch, model, tokenizer, layers, device, start).float().cpu())
                definitions.append(_definition_batch(batch, model, tokenizer, layers, device,
                                                     prefix_target).float().cpu())
    finally:
        model.train(was_training)
    width = feature_width(model.config.hidden_size, layers)
    empty = torch.zeros(0, width)
    return dict(word=torch.cat(words) if words else empty, definition=torch.cat(definitions) if definitions else empty)


def items_digest(items):
    """A hash of everything in the items that the features depend on."""
    text = json.dumps([[it["target"], it["index"], it["context"], it["definition"]] for it in items])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def save_features(path, feats, meta):
    """Write the tensors and a small `meta` dict (str/int/bool values) atomically with torch.save."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save({"word": feats["word"], "definition": feats["definition"], "meta": dict(meta)}, tmp)


def load_features(path, meta=None):
    """(features, stored meta); with `meta`, a ShrinkError if the stored one differs in any of its keys."""
    blob = torch.load(path, weights_only=True)
    stored = blob.get("meta", {})
    if meta is not None:
        diff = sorted(k for k in meta if stored.get(k) != meta[k])
        if diff:
            raise ShrinkError(f"{path}: cached features were made with different {', '.join(diff)}")
    return dict(word=blob["word"], definition=blob["definition"]), stored


def cached_encode(path, items, model, tokenizer, layers="sum_last4", batch_size=32, prefix_target=False,
                  encoder_name="", progress=True):
    """encode(), reusing the file at `path` when it was made from the same items and settings.

    The heads are cheap to train and the encoder is not, so the tensors are kept between runs."""
    meta = dict(layers=layers, prefix_target=bool(prefix_target), encoder=str(encoder_name),
                items=items_digest(items), n=len(items))
    path = Path(path)
    if path.is_file():
        try:
            return load_features(path, meta)[0]
        except ShrinkError:
            pass  # stale cache: re-encode and overwrite
    feats = encode(items, model, tokenizer, layers, batch_size, prefix_target, progress)
    save_features(path, feats, meta)
    return feats
