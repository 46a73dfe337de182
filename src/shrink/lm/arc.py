"""ARC-Easy multiple choice: score each option by its log-likelihood under the language model.

An option's score is the summed log-probability of its tokens after the prompt
"Question: ...\nAnswer:" (or that sum over the option's token count, so long options are not
penalised for their length). Fine-tuning trains the model to rank: a cross-entropy over the
choices' scores. Accuracy comes with a Wilson 95% interval and the chance level of the items
actually scored (a few ARC items have 3 or 5 choices, so chance is not exactly 1/4).
"""

import copy
import json
import math
import random
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..core.errors import (
    ConfigError,
    DataError,
    ShrinkError,
    TrainingError,
    reject_unknown_keys,
    require_at_least_one,
)

Z95 = 1.959963984540054


def load_arc(path):
    """[dict(id, question, choices: list[str], answer: index)] from a JSON array in the ai2_arc layout.

    Labels may be letters (A-E) or digits (1-5); the answer is the position of answerKey among them.
    """
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(path, e.lineno, f"not valid JSON: {e.msg}") from None
    if not isinstance(raw, list):
        raise DataError(path, None, "expected a JSON array of questions")
    items = []
    for i, rec in enumerate(raw):
        where = f"item {i}"
        try:
            question, texts, labels = rec["question"], rec["choices"]["text"], rec["choices"]["label"]
            key = str(rec["answerKey"]).strip().upper()
        except (KeyError, TypeError) as e:
            raise DataError(path, where, f"missing field {e}") from None
        labels = [str(label).strip().upper() for label in labels]
        if len(texts) != len(labels) or len(labels) < 2:
            raise DataError(path, where, f"{len(texts)} choice texts for {len(labels)} labels (need >= 2 of each)")
        if len(set(labels)) != len(labels) or not all(len(l) == 1 and l.isalnum() for l in labels):
            raise DataError(path, where, f"labels {labels} are not distinct single letters or digits")
        if key not in labels:
            raise DataError(path, where, f"answerKey {key!r} is not among the labels {labels}")
        if not str(question).strip() or any(not str(t).strip() for t in texts):
            raise DataError(path, where, "empty question or choice text")
        items.append(dict(id=rec.get("id", str(i)), question=str(question).strip(),
                          choices=[str(t).strip() for t in texts], answer=labels.index(key)))
    return items


def sample_items(items, k, seed):
    """A seeded random subset of at most k items, in their original order (all items when k >= len)."""
    if k >= len(items):
        return list(items)
    keep = sorted(random.Random(seed).sample(range(len(items)), k))
    return [items[i] for i in keep]


def format_prompt(item):
    return f"Question: {item['question']}\nAnswer:"


def format_option(text):
    return " " + text


def encode_items(encode, items, block_size):
    """Per item, per choice: (tokens, start) where tokens[start:] are the option's tokens.

    When prompt + option exceed the context, the prompt loses tokens from the left; the model reads
    len(tokens) - 1 <= block_size tokens, and at least one prompt token stays to predict the option's first.
    """
    out = []
    for item in items:
        prompt = list(encode(format_prompt(item)))
        if not prompt:
            raise ShrinkError(f"ARC item {item['id']}: the prompt encodes to no tokens")
        pairs = []
        for j, choice in enumerate(item["choices"]):
            option = list(encode(format_option(choice)))[:block_size]
            if not option:
                raise ShrinkError(f"ARC item {item['id']} choice {j}: the option encodes to no tokens")
            context = prompt[-(block_size + 1 - len(option)):]
            pairs.append((context + option, len(context)))
        out.append(pairs)
    return out


def _device(model):
    return next(model.parameters()).device


def _score_sequences(model, pairs, device):
    """(summed option log-prob, option token count) tensors for a list of (tokens, start)."""
    width = max(len(tokens) for tokens, _ in pairs) - 1
    inputs = torch.zeros(len(pairs), width, dtype=torch.long)  # right padding: causal, so never read
    targets = torch.full((len(pairs), width), -1, dtype=torch.long)
    for row, (tokens, start) in enumerate(pairs):
        seq = torch.tensor(tokens, dtype=torch.long)
        inputs[row, : len(seq) - 1] = seq[:-1]
        targets[row, start - 1: len(seq) - 1] = seq[start:]
    inputs, targets = inputs.to(device), targets.to(device)
    logp = F.log_softmax(model(inputs).float(), dim=-1)
    mask = targets >= 0
    picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(1), mask.sum(1)


@torch.no_grad()
def _score_encoded(model, encoded, batch_size):
    """Per item, per choice: (log-prob sums, token counts) as nested lists."""
    device, was_training = _device(model), model.training
    model.eval()
    flat = [pair for pairs in encoded for pair in pairs]
    # longest first, so each batch holds similar lengths and little padding
    order = sorted(range(len(flat)), key=lambda k: -len(flat[k][0]))
    sums, counts = [0.0] * len(flat), [0] * len(flat)
    for lo in range(0, len(order), batch_size):
        chunk = order[lo: lo + batch_size]
        s, c = _score_sequences(model, [flat[k] for k in chunk], device)
        for k, sk, ck in zip(chunk, s.tolist(), c.tolist()):
            sums[k], counts[k] = sk, ck
    model.train(was_training)
    nested_sums, nested_counts, k = [], [], 0
    for pairs in encoded:
        nested_sums.append(sums[k: k + len(pairs)])
        nested_counts.append(counts[k: k + len(pairs)])
        k += len(pairs)
    return nested_sums, nested_counts


def option_logprobs(model, encode, items, batch_size=32):
    """(sums, counts): sums[i][j] is the summed log-probability of item i's option j given its prompt,
    counts[i][j] its number of option tokens. `batch_size` is prompt+option sequences per forward pass."""
    return _score_encoded(model, encode_items(encode, items, model.block_size), batch_size)


def choose(sums, counts, normalise=True):
    """The predicted choice per item: highest summed (or per-token) log-probability, first on ties."""
    preds = []
    for s, c in zip(sums, counts):
        scores = [a / b for a, b in zip(s, c)] if normalise else s
        preds.append(max(range(len(scores)), key=scores.__getitem__))
    return preds


def accuracy_with_ci(correct, n_choices):
    """Accuracy, its Wilson 95% interval, and the chance level mean(1/k) of these items.

    above_chance holds only when the whole interval lies above chance.
    """
    n = len(correct)
    if n == 0 or len(n_choices) != n:
        raise ShrinkError(f"accuracy needs one choice count per answer and at least one answer "
                          f"(got {n} answers, {len(n_choices)} choice counts)")
    p = sum(bool(c) for c in correct) / n
    denom = 1 + Z95 ** 2 / n
    centre = (p + Z95 ** 2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n * n)) / denom
    chance = sum(1 / k for k in n_choices) / n
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    return dict(accuracy=p, n=n, ci_low=low, ci_high=high, chance=chance, above_chance=low > chance)


def length_baselines(items):
    """accuracy_with_ci of always picking the shortest and the longest option (in characters, first on
    ties): what option length alone scores, against which a summed log-likelihood (which favours short
    options) has to be read."""
    n_choices = [len(it["choices"]) for it in items]
    out = {}
    for name, pick in (("shortest", min), ("longest", max)):
        picked = [pick(range(len(it["choices"])), key=lambda j, it=it: len(it["choices"][j])) for it in items]
        out[name] = accuracy_with_ci([p == it["answer"] for p, it in zip(picked, items)], n_choices)
    return out


def evaluate_mc(model, encode, items, batch_size=32, normalise=True):
    """accuracy_with_ci of the model's choices on `items`, for one scoring rule."""
    sums, counts = option_logprobs(model, encode, items, batch_size)
    preds = choose(sums, counts, normalise)
    return accuracy_with_ci([p == it["answer"] for p, it in zip(preds, items)],
                            [len(it["choices"]) for it in items])


@dataclass
class MCSettings:
    steps: int = 500
    batch_size: int = 16  # questions per step (all their choices go through the model together)
    lr: float = 1e-4
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    normalise: bool = True  # score = per-token log-likelihood; False: summed
    eval_every: int = 100
    eval_batch_size: int = 64
    log_every: int = 10
    seed: int = 0

    @classmethod
    def from_dict(cls, d, prefix="lm.arc"):
        reject_unknown_keys(d, cls, prefix)
        cfg = cls(**d)
        require_at_least_one(cfg, ("steps", "batch_size", "eval_every", "eval_batch_size", "log_every"), prefix)
        if not 0 < cfg.lr < 1:
            raise ConfigError(f"{prefix}.lr", f"{cfg.lr} is not a usable learning rate")
        return cfg


def _val_accuracy(model, encoded, items, cfg):
    sums, counts = _score_encoded(model, encoded, cfg.eval_batch_size)
    preds = choose(sums, counts, cfg.normalise)
    return sum(p == it["answer"] for p, it in zip(preds, items)) / len(items)


def finetune_mc(model, encode, train_items, val_items, settings, log_fn=None, progress=True):
    """Fine-tune on train_items with a ranking loss; the model ends holding its best-validation state.

    Returns (rows, best_val_accuracy); rows have step, loss, train_accuracy (of the step's batch),
    val_accuracy (None between evaluations), lr, seconds. Step 0 is the untuned model, so tuning
    that never beats it leaves the model unchanged. The test split takes no part.
    """
    cfg = settings if isinstance(settings, MCSettings) else MCSettings.from_dict(settings)
    if not train_items or not val_items:
        raise TrainingError("multiple-choice fine-tuning needs training and validation questions")
    device = _device(model)
    train_enc = encode_items(encode, train_items, model.block_size)
    val_enc = encode_items(encode, val_items, model.block_size)
    torch.manual_seed(cfg.seed)  # dropout
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    start = time.perf_counter()
    best = _val_accuracy(model, val_enc, val_items, cfg)
    best_state = copy.deepcopy(model.state_dict())
    rows = [dict(step=0, loss=None, train_accuracy=None, val_accuracy=best, lr=cfg.lr, seconds=0.0)]
    if log_fn:
        log_fn(rows[0])
    queue = []
    bar = tqdm(range(1, cfg.steps + 1), desc="arc fine-tune", disable=not progress, mininterval=2)
    for step in bar:
        if len(queue) < cfg.batch_size:  # a fresh shuffle of the training questions once they run out
            queue += torch.randperm(len(train_items), generator=generator).tolist()
        batch, queue = queue[: cfg.batch_size], queue[cfg.batch_size:]
        model.train()
        pairs = [pair for i in batch for pair in train_enc[i]]
        sums, counts = _score_sequences(model, pairs, device)
        flat = sums / counts if cfg.normalise else sums
        # (questions, most choices) score matrix; missing choices get -inf so they take no probability
        n_choices = [len(train_enc[i]) for i in batch]
        scores = torch.full((len(batch), max(n_choices)), float("-inf"), device=device)
        k = 0
        for row, n in enumerate(n_choices):
            scores[row, :n] = flat[k: k + n]
            k += n
        answers = torch.tensor([train_items[i]["answer"] for i in batch], device=device)
        loss = F.cross_entropy(scores, answers)
        if not torch.isfinite(loss):
            raise TrainingError(f"multiple-choice loss became {loss.item()} at step {step}; lower lm.arc.lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()

        evaluate = step % cfg.eval_every == 0 or step == cfg.steps
        if evaluate or step % cfg.log_every == 0:
            row = dict(step=step, loss=loss.item(),
                       train_accuracy=(scores.argmax(1) == answers).float().mean().item(),
                       val_accuracy=None, lr=cfg.lr, seconds=time.perf_counter() - start)
            if evaluate:
                row["val_accuracy"] = _val_accuracy(model, val_enc, val_items, cfg)
                if row["val_accuracy"] > best:
                    best, best_state = row["val_accuracy"], copy.deepcopy(model.state_dict())
                bar.set_postfix(val=f"{row['val_accuracy']:.3f}", best=f"{best:.3f}")
            rows.append(row)
            if log_fn:
                log_fn(row)
    model.load_state_dict(best_state)
    model.eval()
    return rows, best
