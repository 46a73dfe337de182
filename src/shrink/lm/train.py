"""One training loop for every language-model architecture.

Same seed, same `batch_size` x `block_size` windows in the same order for every model, so an
architecture comparison differs only in the model. Evaluation time is kept out of the wall-clock
columns, and a checkpoint every `checkpoint_every` steps lets a killed job resume where it stopped.
"""

import math
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..core.atomic import atomic_path
from ..core.errors import (
    ConfigError,
    TrainingError,
    reject_unknown_keys,
    require_at_least_one,
)
from ..core.precision import autocast, grad_scaler, resolve
from .data import BlockSampler, fixed_batches


@dataclass
class LMTrainConfig:
    steps: int = 1000
    batch_size: int = 16
    block_size: int = 128
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_batches: int = 8
    checkpoint_every: int = 200
    log_every: int = 10
    device: str = "cpu"     # cuda: the model and batches move to the GPU
    precision: str = "auto"  # of training and its loss estimates; resolved by from_dict (shrink.core.precision)

    @classmethod
    def from_dict(cls, d, prefix="lm.train"):
        reject_unknown_keys(d, cls, prefix)
        cfg = cls(**d)
        positive = ("steps", "batch_size", "block_size", "eval_every", "eval_batches", "checkpoint_every")
        require_at_least_one(cfg, positive, prefix)
        if cfg.device not in ("cpu", "cuda"):
            raise ConfigError(f"{prefix}.device", f"{cfg.device!r} is not cpu or cuda")
        if not 0 < cfg.lr < 1:
            raise ConfigError(f"{prefix}.lr", f"{cfg.lr} is not a usable learning rate (expected 1e-5..1e-1)")
        cfg.precision = resolve(cfg.precision, cfg.device, f"{prefix}.precision")
        return cfg


def lr_at(step, cfg):
    """Linear warmup, then cosine decay to min_lr at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model, cfg):
    # nanoGPT's split: weight decay on matrices only, not on norms, biases or gains
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    rest = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95))


def lm_loss(model, x, y):
    return F.cross_entropy(model(x).flatten(0, 1).float(), y.flatten())


@torch.no_grad()
def estimate_loss(model, batches, precision="fp32"):
    model.eval()
    device = next(model.parameters()).device
    with autocast(device.type, precision):
        losses = [lm_loss(model, x.to(device), y.to(device)).item() for x, y in batches]
    model.train()
    return sum(losses) / len(losses)


def train_lm(model, train_tokens, val_tokens, cfg, seed, checkpoint, desc="train"):
    """Train `model` in place, saving a resumable state to `checkpoint` as it goes.

    Returns (summary, step rows, eval rows); the summary has tokens seen, training seconds, tokens/s,
    final train/val loss estimates and the process's peak resident memory.
    """
    ckpt_path = Path(checkpoint)
    ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model.to(cfg.device)
    sampler = BlockSampler(train_tokens, cfg.block_size, cfg.batch_size, seed)
    # fixed estimate sets, drawn from their own seeds so they do not shift the training batches
    train_eval = fixed_batches(train_tokens, cfg.block_size, cfg.batch_size, cfg.eval_batches, seed + 1)
    val_eval = fixed_batches(val_tokens, cfg.block_size, cfg.batch_size, cfg.eval_batches, seed + 2)
    optimizer = make_optimizer(model, cfg)
    precision = resolve(cfg.precision, cfg.device, "lm.train.precision")
    scaler = grad_scaler(cfg.device, precision)
    step, elapsed, step_rows, eval_rows = 0, 0.0, [], []
    if ckpt_path.exists():  # resume a killed run
        state = torch.load(ckpt_path, weights_only=False, map_location=cfg.device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        step, elapsed, step_rows, eval_rows = state["step"], state["elapsed"], state["steps"], state["evals"]
        print(f"resumed from step {step} ({ckpt_path})")

    def evaluate():
        eval_rows.append({"step": step, "elapsed_s": round(elapsed, 3), "tokens": step * tokens_per_step,
                          "train_loss": estimate_loss(model, train_eval, precision),
                          "val_loss": estimate_loss(model, val_eval, precision)})

    tokens_per_step = cfg.batch_size * cfg.block_size
    model.train()
    if step == 0:
        evaluate()
    bar = tqdm(total=cfg.steps, initial=step, desc=desc, unit="step", mininterval=2)
    while step < cfg.steps:
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = sampler.batch()
        x, y = x.to(cfg.device), y.to(cfg.device)
        t0 = time.perf_counter()
        with autocast(cfg.device, precision):
            loss = lm_loss(model, x, y)
        if not torch.isfinite(loss):
            raise TrainingError(f"{desc}: loss is {loss.item()} at step {step}; lower lm.train.lr")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()  # a no-op scaler except in fp16
        if cfg.grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        elapsed += time.perf_counter() - t0
        step += 1
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            step_rows.append({"step": step, "elapsed_s": round(elapsed, 3), "tokens": step * tokens_per_step,
                              "lr": lr, "train_loss": loss.item()})
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if step % cfg.eval_every == 0 or step == cfg.steps:
            evaluate()
            bar.write(f"{desc} step {step}: train {eval_rows[-1]['train_loss']:.4f} "
                      f"val {eval_rows[-1]['val_loss']:.4f} ({elapsed:.0f} s)")
        if step % cfg.checkpoint_every == 0 and step < cfg.steps:
            with atomic_path(ckpt_path) as tmp:
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "sampler": sampler.state_dict(), "torch_rng": torch.get_rng_state(), "step": step,
                            "elapsed": elapsed, "steps": step_rows, "evals": eval_rows}, tmp)
    bar.close()
    tokens = cfg.steps * tokens_per_step
    return {
        "steps": cfg.steps, "tokens": tokens, "train_seconds": elapsed,
        "train_tokens_per_s": tokens / elapsed if elapsed else float("nan"),
        "final_train_loss": eval_rows[-1]["train_loss"], "final_val_loss_estimate": eval_rows[-1]["val_loss"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "train_config": asdict(cfg),
    }, step_rows, eval_rows

