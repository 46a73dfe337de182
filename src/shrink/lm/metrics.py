"""Perplexity, bits per character and generation speed of a causal language model.

Perplexity is exp(mean token NLL) over *every* token of a split, each predicted once: the sum of
token NLLs divided by the token count. (The report this grew from averaged something else and printed
perplexity 129 beside a validation loss of 4.27; exp(4.27) is 72.) `split_nll` computes the sum with
cross-entropy; `split_nll_by_probs` gathers each token's probability and sums its log, a second path
the tests check against the first.
"""

import math
import time

import torch
import torch.nn.functional as F

from .data import sequential_windows


@torch.no_grad()
def split_nll(model, tokens, block_size, batch_size=16):
    """(sum of token NLLs in nats, tokens predicted) over the whole stream."""
    model.eval()
    total, count = 0.0, 0
    for x, y in sequential_windows(tokens, block_size, batch_size):
        logits = model(x)
        total += F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum").item()
        count += y.numel()
    return total, count


@torch.no_grad()
def split_nll_by_probs(model, tokens, block_size, batch_size=16):
    """The same sum, from each target token's softmax probability (float64)."""
    model.eval()
    logps = []
    for x, y in sequential_windows(tokens, block_size, batch_size):
        probs = torch.softmax(model(x).double(), dim=-1)
        logps.append(torch.log(probs.gather(-1, y[..., None]).squeeze(-1)).flatten())
    logp = torch.cat(logps)
    return -logp.sum().item(), logp.numel()


def perplexity(nll_sum, count):
    return math.exp(nll_sum / count)


def bits_per_char(nll_sum, n_chars):
    """Bits per character of text: comparable across tokenizers, unlike per-token loss."""
    return nll_sum / math.log(2) / n_chars


@torch.no_grad()
def generation_speed(model, prompt_ids, new_tokens, seed, top_k=50, temperature=0.8):
    """Sample `new_tokens` after each prompt (batch 1): tokens/s, mean ms per token, and the texts' ids.

    The first token's latency (the prompt's forward pass) is reported apart from the per-token rate.
    """
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    outputs, first_ms, total_s = [], [], 0.0
    for ids in prompt_ids:
        idx = torch.tensor([ids])
        t0 = time.perf_counter()
        model.generate(idx, 1, temperature=temperature, top_k=top_k, generator=generator)
        first_ms.append(1000 * (time.perf_counter() - t0))
        generator.manual_seed(seed)  # the timed run below samples the same first token
        t0 = time.perf_counter()
        out = model.generate(idx, new_tokens, temperature=temperature, top_k=top_k, generator=generator)
        total_s += time.perf_counter() - t0
        outputs.append(out[0, len(ids):].tolist())
    n = new_tokens * len(prompt_ids)
    return {"gen_tokens_per_s": n / total_s, "gen_ms_per_token": 1000 * total_s / n,
            "first_token_ms": sum(first_ms) / len(first_ms)}, outputs
