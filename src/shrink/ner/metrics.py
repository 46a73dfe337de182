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


def _windows(dataset):
    """Each row's (sentence index, first word's offset) and each sentence's word count.

    Data tokenized before sentences were split into windows has neither column: one row per sentence.
    """
    if "sentence" in dataset.column_names:
        sentence, offset = list(dataset["sentence"]), list(dataset["word_offset"])
    else:
        sentence, offset = list(range(len(dataset))), [0] * len(dataset)
    n_words = [0] * (max(sentence) + 1 if sentence else 0)
    for s, o, words in zip(sentence, offset, dataset["word_labels"]):
        n_words[s] = max(n_words[s], o + len(words))
    return sentence, offset, n_words


@torch.no_grad()
def predict_tags(model, dataset, tokenizer, labels, batch_size=64, device="cpu", precision="fp32"):
    """Predicted tag per word for every sentence: the prediction at the word's first sub-token.

    A sentence split into windows (shrink.ner.tokens) is merged back: each word is read from the one
    window whose `word_starts` points at it, so every word of every sentence gets exactly one tag.
    A word without any piece there (the tokenizer dropped it, or data truncated before windows) gets 'O',
    which costs recall instead of hiding errors.
    """
    model.eval()
    pad = Padder(tokenizer)
    # Materialise the columns once: element access on a lazy Arrow column costs a lookup per item.
    starts = list(dataset["word_starts"])
    sentence, offset, n_words = _windows(dataset)
    preds = [["O"] * n for n in n_words]
    for idx in sequential_batches(list(dataset["length"]), batch_size):
        batch = pad(dataset, idx, device)
        batch.pop("labels", None)
        with autocast(device, precision):
            logits = model(**batch).logits
        best = logits.argmax(-1).cpu().tolist()
        for row, i in zip(best, idx):
            tags, o = preds[sentence[i]], offset[i]
            for j, p in enumerate(starts[i]):
                if p >= 0:
                    tags[o + j] = labels[row[p]]
    return preds


def gold_tags(dataset, labels):
    """Gold tag per word for every sentence, windows merged back as in predict_tags (overlaps agree)."""
    sentence, offset, n_words = _windows(dataset)
    gold = [[None] * n for n in n_words]
    for s, o, words in zip(sentence, offset, dataset["word_labels"]):
        gold[s][o: o + len(words)] = [labels[t] for t in words]
    return gold


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
