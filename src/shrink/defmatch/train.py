"""Training a definition-matching head on cached features, and the metrics it is judged by.

Labels are 1 (T: the usage has the defined sense) and 0 (F); precision, recall and F1 are for the
positive class, as in WiC-TSV. The epoch kept is the one with the best validation accuracy (ties:
lower validation loss, then the earlier epoch); the test split never takes part in choosing.
"""

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core.errors import ConfigError, TrainingError, reject_unknown_keys


@dataclass
class HeadTrainConfig:
    lr: float = 1e-3
    epochs: int = 20
    batch_size: int = 32
    weight_decay: float = 0.0
    standardize: bool = True  # fit the head's input standardisation on the training features
    seed: int = 0  # batch order

    @classmethod
    def from_dict(cls, d, prefix="definition_match.train"):
        reject_unknown_keys(d, cls, prefix)
        cfg = cls(**d)
        checks = [("lr", 0 < cfg.lr <= 1, "must be in (0, 1]"),
                  ("epochs", cfg.epochs >= 1, "must be at least 1"),
                  ("batch_size", cfg.batch_size >= 1, "must be at least 1"),
                  ("weight_decay", cfg.weight_decay >= 0, "must be >= 0")]
        for key, ok, why in checks:
            if not ok:
                raise ConfigError(f"{prefix}.{key}", f"{why}, got {getattr(cfg, key)!r}")
        return cfg


def _labels(labels):
    y = torch.as_tensor(labels, dtype=torch.float32).reshape(-1)
    if not bool(((y == 0) | (y == 1)).all()):
        raise TrainingError("labels must be 0 or 1")
    return y


def binary_metrics(pred, gold):
    """accuracy, precision, recall, F1 (positive class 1) and n for 0/1 predictions."""
    pred, gold = torch.as_tensor(pred).reshape(-1).long(), torch.as_tensor(gold).reshape(-1).long()
    n = gold.numel()
    tp = int(((pred == 1) & (gold == 1)).sum())
    fp = int(((pred == 1) & (gold == 0)).sum())
    fn = int(((pred == 0) & (gold == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = int((pred == gold).sum()) / n if n else 0.0
    return dict(accuracy=accuracy, f1=f1, precision=precision, recall=recall, n=n)


@torch.no_grad()
def logits(head, feats, batch_size=1024):
    was_training = head.training
    head.eval()
    try:
        u, v = feats["word"], feats["definition"]
        return torch.cat([head(u[i:i + batch_size], v[i:i + batch_size]) for i in range(0, len(u), batch_size)]
                         or [torch.zeros(0)])
    finally:
        head.train(was_training)


def evaluate(head, feats, labels):
    """binary_metrics of the head's predictions (logit > 0) against `labels`."""
    return binary_metrics((logits(head, feats) > 0).long(), _labels(labels))


def majority_baseline(train_labels, test_labels):
    """Predict the most frequent training label everywhere; a tie goes to the positive label 1."""
    train = _labels(train_labels)
    label = int(2 * train.sum() >= len(train))
    test = _labels(test_labels)
    m = binary_metrics(torch.full((len(test),), label), test)
    return dict(accuracy=m["accuracy"], f1=m["f1"], label=label)


def train_head(head, train_feats, train_labels, val_feats, val_labels, settings=None):
    """Train `head` on train features; (rows, best_state). The head ends holding best_state.

    rows: one per epoch with train_loss/train_acc (running, over that epoch's batches),
    val_loss/val_acc/val_f1, and selected (1 for the kept epoch)."""
    cfg = settings if isinstance(settings, HeadTrainConfig) else HeadTrainConfig.from_dict(dict(settings or {}))
    y_train, y_val = _labels(train_labels), _labels(val_labels)
    u, v = train_feats["word"], train_feats["definition"]
    if len(u) == 0 or len(y_val) == 0:
        raise TrainingError("definition matching needs non-empty training and validation sets")
    if not len(u) == len(v) == len(y_train):
        raise TrainingError(f"{len(u)} word vectors, {len(v)} definition vectors and {len(y_train)} labels")
    if cfg.standardize:
        head.fit_standardization(u, v)
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    order_rng = torch.Generator().manual_seed(cfg.seed)
    rows, best, best_key = [], None, None
    for epoch in range(1, cfg.epochs + 1):
        head.train()
        loss_sum, correct = 0.0, 0
        for idx in torch.randperm(len(u), generator=order_rng).split(cfg.batch_size):
            out = head(u[idx], v[idx])
            loss = F.binary_cross_entropy_with_logits(out, y_train[idx])
            if not math.isfinite(loss.item()):
                raise TrainingError(f"non-finite training loss at epoch {epoch}; lower definition_match.train.lr")
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += int(((out.detach() > 0).float() == y_train[idx]).sum())
        val_out = logits(head, val_feats)
        val = binary_metrics((val_out > 0).long(), y_val)
        val_loss = F.binary_cross_entropy_with_logits(val_out, y_val).item()
        rows.append(dict(epoch=epoch, train_loss=loss_sum / len(u), train_acc=correct / len(u), val_loss=val_loss,
                         val_acc=val["accuracy"], val_f1=val["f1"], selected=0))
        key = (val["accuracy"], -val_loss)
        if best_key is None or key > best_key:
            best_key, best = key, (epoch, copy.deepcopy(head.state_dict()))
    epoch, best_state = best
    rows[epoch - 1]["selected"] = 1
    head.load_state_dict(best_state)
    return rows, best_state
