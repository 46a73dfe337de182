"""Training loop for the translation model and for its encoder-head gates.

Step-based: batches of about `batch_tokens` padded tokens, validation every `eval_every` steps
(teacher-forced loss on the whole validation split, greedy BLEU/chrF on its first
`val_bleu_sentences`), a resumable checkpoint at each validation, and the best validation BLEU
kept (the test split never takes part). The batch order depends only on seed and epoch, so a
resumed run replays exactly the batches an uninterrupted one would have seen.
"""

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..core.atomic import atomic_dir, write_csv
from ..core.batching import sequential_batches, token_budget_batches
from ..core.errors import ConfigError, TrainingError, reject_unknown_keys
from ..core.precision import autocast, grad_scaler, resolve
from ..core.seeding import rng_state, seed_everything, set_rng_state
from .model import make_batch
from .scoring import score
from .vocab import PAD_ID


@dataclass
class Seq2SeqTrainConfig:
    epochs: int = 10
    max_steps: int | None = None  # stop after this many steps (the schedule is planned for them)
    lr: float = 1e-3
    batch_tokens: int = 6000  # padded source + target tokens per batch
    scheduler: str = "inverse_sqrt"  # inverse_sqrt (Vaswani et al.) | cosine
    warmup_steps: int = 400
    label_smoothing: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    precision: str = "auto"  # resolved by from_dict (shrink.core.precision)
    device: str = "cpu"
    eval_every: int = 500
    val_bleu_sentences: int = 300
    eval_batch_size: int = 64
    select: str = "bleu"  # bleu: best validation BLEU; loss: lowest validation loss; last
    log_every: int = 20
    seed: int = 42

    @classmethod
    def from_dict(cls, d, seed=None, prefix="translation.train"):
        reject_unknown_keys(d, cls, prefix)
        cfg = cls(**d)
        if seed is not None:
            cfg.seed = seed
        checks = [("lr", 1e-6 <= cfg.lr <= 1e-1, "must be in [1e-6, 0.1]"),
                  ("scheduler", cfg.scheduler in ("inverse_sqrt", "cosine"), "must be inverse_sqrt or cosine"),
                  ("select", cfg.select in ("bleu", "loss", "last"), "must be bleu, loss or last"),
                  ("epochs", cfg.epochs >= 1, "must be at least 1"),
                  ("eval_every", cfg.eval_every >= 1, "must be at least 1")]
        for key, ok, why in checks:
            if not ok:
                raise ConfigError(f"{prefix}.{key}", f"{why}, got {getattr(cfg, key)!r}")
        cfg.precision = resolve(cfg.precision, cfg.device, f"{prefix}.precision")
        return cfg


def lr_lambda(cfg, total):
    warm = max(1, cfg.warmup_steps)

    def inverse_sqrt(step):
        step = max(step, 1)
        return min(step / warm, math.sqrt(warm / step))

    def cosine(step):
        if step < warm:
            return step / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    return inverse_sqrt if cfg.scheduler == "inverse_sqrt" else cosine


def plan_batches(cfg, lengths):
    """[(epoch, indices), ...] for the whole run, cut at max_steps."""
    if cfg.batch_tokens < max(lengths):
        raise ConfigError("translation.train.batch_tokens",
                          f"{cfg.batch_tokens} is less than the longest pair ({max(lengths)} tokens)")
    plan = []
    for epoch in range(1, cfg.epochs + 1):
        g = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        plan += [(epoch, b) for b in token_budget_batches(lengths, cfg.batch_tokens, g)]
    return plan[: cfg.max_steps] if cfg.max_steps else plan


class TranslationLoss(torch.nn.Module):
    """The plain objective: label-smoothed cross-entropy of the target tokens."""

    def __init__(self, model, label_smoothing):
        super().__init__()
        self.model, self.label_smoothing = model, label_smoothing

    def forward(self, batch):
        return self.model.loss(batch, self.label_smoothing), {}


@torch.no_grad()
def validation_loss(model, data, cfg, device):
    """Mean token cross-entropy (no smoothing) over the whole split."""
    model.eval()
    total, count = 0.0, 0
    for idx in sequential_batches(data.lengths, cfg.eval_batch_size):
        batch = make_batch(data.src_of(idx), data.tgt_of(idx), device)
        n = int((batch["tgt_out"] != PAD_ID).sum())
        with autocast(device, cfg.precision):
            total += float(model.loss(batch)) * n
        count += n
    return total / count


def validate(model, data, tok, cfg, device):
    from .decode import translate
    from .vocab import decode

    loss = validation_loss(model, data, cfg, device)
    n = min(cfg.val_bleu_sentences, len(data))
    hyps = decode(tok, translate(model, data.src[:n], batch_size=cfg.eval_batch_size, device=device))
    metrics = score(hyps, data.tgt_text[:n])
    return {"val_loss": round(loss, 6), "val_bleu": metrics["bleu"], "val_chrf": metrics["chrf"]}


class Checkpoints:
    """`last/` (resumable state, replaced at each validation) and `best/` (model weights only)."""

    def __init__(self, root, fingerprint):
        self.root, self.fp = Path(root), fingerprint

    def load_last(self):
        path = self.root / "last" / "state.json"
        meta = json.loads(path.read_text()) if path.is_file() else {}
        if meta.get("fingerprint") == self.fp:
            return torch.load(self.root / "last" / "state.pt", weights_only=False), meta
        shutil.rmtree(self.root, ignore_errors=True)  # another run's checkpoints cannot be resumed
        return None, None

    def save_last(self, state, meta):
        with atomic_dir(self.root / "last") as tmp:
            torch.save(state, tmp / "state.pt")
            (tmp / "state.json").write_text(json.dumps({"fingerprint": self.fp, **meta}))

    def save_best(self, objective):
        with atomic_dir(self.root / "best") as tmp:
            torch.save(objective.state_dict(), tmp / "objective.pt")

    def load_best(self, objective):
        objective.load_state_dict(torch.load(self.root / "best" / "objective.pt", weights_only=True))


def run_fingerprint(cfg, model, data, extra=None):
    import hashlib

    key = json.dumps({"train": asdict(cfg), "model": asdict(model.config), "rows": len(data),
                      "data": data.fingerprint, "extra": extra}, sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def train_seq2seq(model, objective, train_data, val_data, tok, cfg, ckpt_dir, optimizer_groups=None, progress=True,
                  fingerprint_extra=None):
    """Train `objective` (a module holding `model`) and leave the selected weights in it.

    Returns (step_rows, eval_rows, extra_rows); `extra_rows` gathers `objective.log_rows(step)` (gate
    probabilities) at each logging step. `optimizer_groups` overrides the parameter groups.
    """
    if len(train_data) == 0 or len(val_data) == 0:
        raise TrainingError("the train or validation split is empty")
    device = cfg.device
    seed_everything(cfg.seed)
    objective.to(device)
    plan = plan_batches(cfg, train_data.lengths)
    groups = optimizer_groups or [{"params": [p for p in objective.parameters() if p.requires_grad]}]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
    cfg.precision = resolve(cfg.precision, device, "translation.train.precision")  # built without from_dict
    scaler = grad_scaler(device, cfg.precision)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, len(plan)))
    ckpts = Checkpoints(ckpt_dir, run_fingerprint(cfg, model, train_data, fingerprint_extra))
    trainable = [p for g in groups for p in g["params"]]

    step, best, rows, evals, extra, seconds = 0, None, [], [], [], 0.0
    state, meta = ckpts.load_last()
    if state is not None:
        objective.load_state_dict(state["objective"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        step, best, rows, evals, extra, seconds = (meta[k] for k in ("step", "best", "rows", "evals", "extra",
                                                                     "seconds"))
        print(f"resuming from {ckpts.root / 'last'} at step {step} of {len(plan)}", flush=True)

    def evaluate_and_checkpoint():
        nonlocal best
        row = {"step": step, "epoch": plan[step - 1][0] if step else 0, "train_seconds": round(seconds, 2),
               **validate(model, val_data, tok, cfg, device)}
        if hasattr(objective, "eval_row"):
            row.update(objective.eval_row())
        evals.append(row)
        print(f"step {step}: val loss {row['val_loss']:.4f}, val BLEU {row['val_bleu']:.2f}, "
              f"chrF {row['val_chrf']:.2f}", flush=True)
        value = {"bleu": row["val_bleu"], "loss": -row["val_loss"], "last": step}[cfg.select]
        if best is None or value > best:
            best = value
            ckpts.save_best(objective)
        ckpts.save_last({"objective": objective.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict(), "rng": rng_state(),
                         **({"scaler": scaler.state_dict()} if scaler.is_enabled() else {})},
                        {"step": step, "best": best, "rows": rows, "evals": evals, "extra": extra,
                         "seconds": seconds})

    if step == 0:
        evaluate_and_checkpoint()  # the starting point: a from-scratch model, or the model before gating
    bar = tqdm(total=len(plan), initial=step, desc="train", disable=not progress, mininterval=2)
    while step < len(plan):
        objective.train()
        epoch, idx = plan[step]
        t0 = time.perf_counter()
        batch = make_batch(train_data.src_of(idx), train_data.tgt_of(idx), device)
        with autocast(device, cfg.precision):
            loss, parts = objective(batch)
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingError(f"loss is {value} at step {step + 1} (lr {scheduler.get_last_lr()[0]:.3g}); "
                                "lower translation.train.lr or use precision: fp32")
        scaler.scale(loss).backward()  # a no-op scaler except in fp16
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        elapsed = time.perf_counter() - t0
        seconds += elapsed
        bar.update()
        if step % cfg.log_every == 0 or step == len(plan):
            tokens = int((batch["src"] != PAD_ID).sum() + (batch["tgt_out"] != PAD_ID).sum())
            rows.append({"step": step, "epoch": epoch, "loss": round(value, 6),
                         **{k: round(float(v), 6) for k, v in parts.items()},
                         "lr": scheduler.get_last_lr()[0], "grad_norm": round(float(grad_norm), 6),
                         "tokens_per_s": round(tokens / elapsed, 1)})
            if hasattr(objective, "log_rows"):
                extra.extend(objective.log_rows(step))
            bar.set_postfix(loss=f"{value:.3f}")
        if step % cfg.eval_every == 0 or step == len(plan):
            evaluate_and_checkpoint()
    bar.close()
    ckpts.load_best(objective)
    return rows, evals, extra


def write_logs(rows, evals, extra, steps_csv, evals_csv, extra_csv=None):
    write_csv(steps_csv, rows)
    write_csv(evals_csv, evals)
    if extra_csv:
        write_csv(extra_csv, extra)
