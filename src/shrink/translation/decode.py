"""Batched greedy and beam-search decoding with cached keys and values.

Each step feeds only the newest token: self-attention keys/values of earlier positions are kept
per layer, and the cross-attention keys/values of the source are computed once.
"""

import torch

from ..core.batching import sequential_batches
from .model import make_batch
from .vocab import BOS_ID, EOS_ID, PAD_ID

NEVER = [PAD_ID, BOS_ID]  # never a continuation: padding ends a row, <s> only starts one


def _max_steps(src, max_len_a, max_len_b, limit):
    """Output length bound a * source length + b (fairseq's convention), within the position table."""
    return min(int(max_len_a * src.shape[1] + max_len_b), limit - 1)


@torch.no_grad()
def greedy(model, src, max_len_a=1.5, max_len_b=10):
    """Token ids (without <s>/</s>) of the argmax continuation of each source row."""
    memory, src_mask = model.encoder(src)
    kv = model.decoder.memory_kv(memory)
    caches = [{} for _ in model.decoder.layers]
    b = src.shape[0]
    tokens = torch.full((b, 1), BOS_ID, dtype=torch.long, device=src.device)
    done = torch.zeros(b, dtype=torch.bool, device=src.device)
    for t in range(_max_steps(src, max_len_a, max_len_b, model.config.max_positions)):
        h = model.decoder(tokens[:, -1:], kv, src_mask, caches, start=t)
        logits = model.logits(h[:, -1])
        logits[:, NEVER] = float("-inf")
        nxt = logits.argmax(-1)
        nxt = nxt.masked_fill(done, PAD_ID)
        tokens = torch.cat([tokens, nxt[:, None]], 1)
        done |= nxt == EOS_ID
        if done.all():
            break
    return [_strip(row) for row in tokens[:, 1:].tolist()]


def _strip(ids):
    out = []
    for i in ids:
        if i in (EOS_ID, PAD_ID):
            break
        out.append(i)
    return out


@torch.no_grad()
def beam_search(model, src, beam=4, length_penalty=0.6, max_len_a=1.5, max_len_b=10):
    """Beam search over all rows at once (B * beam hypotheses). Finished hypotheses keep their score
    and only extend with padding; the final choice divides log-probability by the GNMT length
    penalty ((5 + length) / 6) ** alpha. With beam=1 this is exactly greedy decoding."""
    b, k = src.shape[0], beam
    memory, src_mask = model.encoder(src)
    memory, src_mask = memory.repeat_interleave(k, 0), src_mask.repeat_interleave(k, 0)
    kv = model.decoder.memory_kv(memory)
    caches = [{} for _ in model.decoder.layers]
    tokens = torch.full((b * k, 1), BOS_ID, dtype=torch.long, device=src.device)
    scores = torch.zeros(b, k, device=src.device)
    scores[:, 1:] = float("-inf")  # all beams start identical: expand only the first
    done = torch.zeros(b * k, dtype=torch.bool, device=src.device)
    lengths = torch.zeros(b * k, device=src.device)
    for t in range(_max_steps(src, max_len_a, max_len_b, model.config.max_positions)):
        h = model.decoder(tokens[:, -1:], kv, src_mask, caches, start=t)
        logp = model.logits(h[:, -1]).float().log_softmax(-1)
        # A finished hypothesis continues only with padding, at no cost.
        logp[:, NEVER] = float("-inf")
        logp[done] = float("-inf")
        logp[done, PAD_ID] = 0.0
        v = logp.shape[-1]
        cand = (scores.reshape(-1, 1) + logp).view(b, k * v)
        scores, flat = cand.topk(k, dim=-1)
        origin = (flat // v + torch.arange(b, device=src.device)[:, None] * k).reshape(-1)
        nxt = (flat % v).reshape(-1)
        tokens = torch.cat([tokens[origin], nxt[:, None]], 1)
        for c in caches:
            c["k"], c["v"] = c["k"][origin], c["v"][origin]
        was_done = done[origin]
        lengths = lengths[origin] + (~was_done).float()
        done = was_done | (nxt == EOS_ID)
        if done.all():
            break
    penalty = ((5.0 + lengths) / 6.0) ** length_penalty
    best = (scores.reshape(-1) / penalty).view(b, k).argmax(-1)
    rows = tokens[best + torch.arange(b, device=src.device) * k, 1:]
    return [_strip(row) for row in rows.tolist()]


def translate(model, src_ids, beam=1, batch_size=64, device="cpu", **kw):
    """Decode a list of token-id lists in length-sorted batches; results come back in input order."""
    model.eval()
    out = [None] * len(src_ids)
    for idx in sequential_batches([len(s) for s in src_ids], batch_size):
        src = make_batch([src_ids[i] for i in idx], device=device)["src"]
        hyps = greedy(model, src, **kw) if beam == 1 else beam_search(model, src, beam=beam, **kw)
        for i, h in zip(idx, hyps):
            out[i] = h
    return out
