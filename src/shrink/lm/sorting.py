"""Synthetic long-sequence sorting: read N numbers, a separator, then write them in sorted order.

A sample of length N is [x1..xN, SEP, sorted(x)], 2N+1 tokens. Values are drawn uniformly *with*
repetition, because copying every repeat of a value is exactly where a small model goes wrong.
The model only ever reads the first 2N tokens (the last sorted token is predicted, never read),
so a length fits a model when 2N <= block_size.

Tokens 0..max_value-1 are the values themselves, then SEP and PAD.
"""

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..core.errors import (
    ConfigError,
    ShrinkError,
    TrainingError,
    reject_unknown_keys,
    require_at_least_one,
)

IGNORE = -100


def sep_id(max_value):
    return max_value


def pad_id(max_value):
    return max_value + 1


def vocab_size(max_value):
    return max_value + 2


@dataclass
class SortSettings:
    max_value: int = 64
    train_lengths: list = field(default_factory=lambda: [8, 16, 32, 64])
    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    log_every: int = 50
    seed: int = 0

    @classmethod
    def from_dict(cls, d, prefix="lm.sorting"):
        reject_unknown_keys(d, cls, prefix)
        cfg = cls(**d)
        require_at_least_one(cfg, ("max_value", "steps", "batch_size", "log_every"), prefix)
        if not cfg.train_lengths or any(int(n) < 1 for n in cfg.train_lengths):
            raise ConfigError(f"{prefix}.train_lengths", f"must be a non-empty list of positive lengths, "
                              f"got {cfg.train_lengths!r}")
        if not 0 < cfg.lr < 1:
            raise ConfigError(f"{prefix}.lr", f"{cfg.lr} is not a usable learning rate")
        return cfg


def check_fits(length, block_size, what="length"):
    """The model reads 2N tokens of a length-N sample; longer would silently crop the unsorted input."""
    if 2 * length > block_size:
        raise ShrinkError(f"sorting {what} {length} needs a context of {2 * length} tokens "
                          f"(N inputs + SEP + N-1 outputs) but the model's block_size is {block_size}")


def sample_inputs(length, n, max_value, generator):
    """(n, length) values drawn uniformly from 0..max_value-1, repetitions allowed."""
    return torch.randint(0, max_value, (n, length), generator=generator)


def make_batch(lengths, batch_size, max_value, generator):
    """(idx, targets), both (batch_size, 2 * longest N). Each row's N is drawn uniformly from `lengths`.

    targets[t] is the next token only where that token is part of the sorted output; the input
    copy and the separator are IGNORE, as is the right padding (PAD in idx) of shorter rows.
    """
    lengths = [int(lengths)] if isinstance(lengths, int) else [int(n) for n in lengths]
    picks = torch.randint(0, len(lengths), (batch_size,), generator=generator).tolist()
    row_lengths = [lengths[i] for i in picks]
    width = 2 * max(row_lengths)
    idx = torch.full((batch_size, width), pad_id(max_value), dtype=torch.long)
    targets = torch.full((batch_size, width), IGNORE, dtype=torch.long)
    for row, n in enumerate(row_lengths):
        x = sample_inputs(n, 1, max_value, generator)[0]
        seq = torch.cat([x, torch.tensor([sep_id(max_value)]), x.sort().values])
        idx[row, : 2 * n] = seq[:-1]
        # position N holds SEP and predicts the first sorted value; the last position predicts the last
        targets[row, n: 2 * n] = seq[n + 1:]
    return idx, targets


def _device(model):
    return next(model.parameters()).device


def train_sorter(model, settings, log_fn=None, progress=True):
    """Train `model` on random sorting batches; returns rows (step, loss, token_accuracy, lr, seconds)."""
    cfg = settings if isinstance(settings, SortSettings) else SortSettings.from_dict(settings)
    check_fits(max(cfg.train_lengths), model.block_size, "training length")
    device = _device(model)
    torch.manual_seed(cfg.seed)  # dropout
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def lr_factor(step):  # linear warmup, then cosine decay to a tenth
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress_ = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, progress_)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    model.train()
    rows, start = [], time.perf_counter()
    bar = tqdm(range(1, cfg.steps + 1), desc="sorting", disable=not progress, mininterval=2)
    for step in bar:
        idx, targets = make_batch(cfg.train_lengths, cfg.batch_size, cfg.max_value, generator)
        idx, targets = idx.to(device), targets.to(device)
        logits = model(idx)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE)
        if not torch.isfinite(loss):
            raise TrainingError(f"sorting loss became {loss.item()} at step {step}; lower lm.sorting.lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        if step % cfg.log_every == 0 or step == cfg.steps:
            mask = targets != IGNORE
            acc = (logits.argmax(-1)[mask] == targets[mask]).float().mean().item()
            row = dict(step=step, loss=loss.item(), token_accuracy=acc, lr=lr,
                       seconds=time.perf_counter() - start)
            rows.append(row)
            bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{acc:.3f}")
            if log_fn:
                log_fn(row)
    model.eval()
    return rows


def score(predicted, expected):
    """Compare (B, N) predicted outputs with the (B, N) sorted inputs.

    exact_match: share of rows entirely right; per_position_accuracy: share of right tokens;
    per_position_curve: accuracy at each output position (averaged over rows).
    """
    predicted, expected = torch.as_tensor(predicted), torch.as_tensor(expected)
    if predicted.shape != expected.shape or predicted.dim() != 2:
        raise ShrinkError(f"score needs two (rows, N) tensors of one shape, got {tuple(predicted.shape)} "
                          f"and {tuple(expected.shape)}")
    right = (predicted == expected).float()
    return dict(exact_match=right.min(dim=1).values.mean().item(),
                per_position_accuracy=right.mean().item(),
                per_position_curve=right.mean(dim=0).tolist(),
                n=predicted.size(0))


@torch.no_grad()
def greedy_sort(model, x, max_value):
    """The model's greedy output (B, N) after reading x (B, N) and SEP, through the model's own
    `generate` (temperature 0: argmax), so a recurrent model carries its state instead of recomputing."""
    n = x.size(1)
    seq = torch.cat([x, torch.full((x.size(0), 1), sep_id(max_value), dtype=torch.long, device=x.device)], 1)
    return model.generate(seq, n, temperature=0)[:, n + 1:]


def eval_inputs(length, n, max_value, seed):
    """The evaluation inputs of one length: depends on (seed, length) only, not on the other lengths."""
    return sample_inputs(length, n, max_value, torch.Generator().manual_seed(seed * 1_000_003 + length))


def evaluate_sorter(model, lengths, n_per_length, max_value, seed, batch_size=64, record=None):
    """Greedy sorting accuracy per length: [dict(length, exact_match, per_position_accuracy, n,
    per_position_curve)]. Every length must fit the model's context (else ShrinkError).
    `record`, a list, receives dict(length, inputs, predicted) per length: the raw outputs, for a recount."""
    for length in lengths:
        check_fits(length, model.block_size, "evaluation length")
    device, was_training = _device(model), model.training
    model.eval()
    results = []
    for length in lengths:
        x = eval_inputs(length, n_per_length, max_value, seed)
        outputs = torch.cat([greedy_sort(model, chunk.to(device), max_value).cpu() for chunk in x.split(batch_size)])
        results.append(dict(length=length, **score(outputs, x.sort(dim=1).values)))
        if record is not None:
            record.append(dict(length=length, inputs=x.tolist(), predicted=outputs.tolist()))
    model.train(was_training)
    return results


def curve_rows(results):
    """Flat (length, position, accuracy) rows of the per-position curves, for a CSV and a figure."""
    return [dict(length=r["length"], position=i + 1, accuracy=a)
            for r in results for i, a in enumerate(r["per_position_curve"])]


def summary_rows(results):
    """The results without their curves (one flat row per length)."""
    return [{k: v for k, v in r.items() if k != "per_position_curve"} for r in results]
