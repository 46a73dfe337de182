"""Entity-level NER metrics (seqeval) from model predictions."""

import torch
from seqeval.metrics import (
    classification_report,
    f1_score,
    precision_score,
    recall_score,
)

from ..core.batching import Padder, sequential_batches
from ..core.precision import autocast


@torch.no_grad()
def predict_tags(model, dataset, tokenizer, labels, batch_size=64, device="cpu", precision="fp32"):
    """Predicted tag per word for every sentence: the prediction at the word's first sub-token.

    Words cut off by truncation get 'O', so truncation costs recall instead of hiding errors.
    """
    model.eval()
    pad = Padder(tokenizer)
    # Materialise the columns once: element access on a lazy Arrow column costs a lookup per item.
    starts = list(dataset["word_starts"])
    preds = [None] * len(dataset)
    for idx in sequential_batches(list(dataset["length"]), batch_size):
        batch = pad(dataset, idx, device)
        batch.pop("labels", None)
        with autocast(device, precision):
            logits = model(**batch).logits
        best = logits.argmax(-1).cpu().tolist()
        for row, i in zip(best, idx):
            preds[i] = [labels[row[p]] if p >= 0 else "O" for p in starts[i]]
    return preds


def gold_tags(dataset, labels):
    return [[labels[t] for t in sent] for sent in dataset["word_labels"]]


def entity_scores(y_true, y_pred):
    """Micro precision/recall/F1 over entities plus per-type F1 with support (seqeval, conlleval rules)."""
    report = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    per_type = {k: {"precision": v["precision"], "recall": v["recall"], "f1": v["f1-score"], "support": int(v["support"])}
                for k, v in report.items() if not k.endswith(" avg")}
    return {
        "f1": f1_score(y_true, y_pred, zero_division=0),
        "precision": precision_score(y_true, y_pred, zero_division=0),
        "recall": recall_score(y_true, y_pred, zero_division=0),
        "per_type": per_type,
    }


def evaluate_split(model, dataset, tokenizer, labels, **kw):
    return entity_scores(gold_tags(dataset, labels), predict_tags(model, dataset, tokenizer, labels, **kw))
