"""Batches for token classification: length-grouped order and dynamic padding.

Grouping sentences of similar length into a batch wastes far less compute on padding than
random batches, which is the main speed lever on CoNLL (sentence lengths run from 1 to 100+).
"""

import torch

MODEL_INPUTS = ("input_ids", "attention_mask", "labels")


def length_grouped_batches(lengths, batch_size, generator, megabatch_mult=50):
    """Shuffle, sort by length inside mega-batches of `megabatch_mult` batches, then shuffle the batches.

    The final shuffle keeps long and short batches mixed through the epoch, so the
    learning-rate schedule does not meet a length curriculum.
    """
    n = len(lengths)
    perm = torch.randperm(n, generator=generator).tolist()
    mega = batch_size * megabatch_mult
    batches = []
    for lo in range(0, n, mega):
        group = sorted(perm[lo: lo + mega], key=lambda i: -lengths[i])
        batches += [group[j: j + batch_size] for j in range(0, len(group), batch_size)]
    order = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in order]


def token_budget_batches(lengths, max_tokens, generator, megabatch_size=1600):
    """Length-grouped batches holding at most `max_tokens` padded tokens each.

    Sentence-count batches of short sentences carry few tokens, and with a per-token mean
    loss each of them still takes a full step: on CoNLL that made length grouping cost F1.
    A token budget gives every step about the same number of real tokens instead.
    """
    n = len(lengths)
    perm = torch.randperm(n, generator=generator).tolist()
    batches = []
    for lo in range(0, n, megabatch_size):
        batch, longest = [], 0
        for i in sorted(perm[lo: lo + megabatch_size], key=lambda i: -lengths[i]):
            longest_if_added = max(longest, lengths[i])
            if batch and longest_if_added * (len(batch) + 1) > max_tokens:
                batches.append(batch)
                batch, longest_if_added = [], lengths[i]
            batch.append(i)
            longest = longest_if_added
        if batch:
            batches.append(batch)
    order = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in order]


def random_batches(n, batch_size, generator):
    perm = torch.randperm(n, generator=generator).tolist()
    return [perm[j: j + batch_size] for j in range(0, n, batch_size)]


def sequential_batches(lengths, batch_size, sort=True):
    """Evaluation batches: sorted by length (less padding) when `sort`; predictions map back by index."""
    idx = sorted(range(len(lengths)), key=lambda i: -lengths[i]) if sort else list(range(len(lengths)))
    return [idx[j: j + batch_size] for j in range(0, len(idx), batch_size)]


class Padder:
    """Dynamic padding to the longest sequence of each batch (Hugging Face's token-classification collator)."""

    def __init__(self, tokenizer):
        from transformers import DataCollatorForTokenClassification

        self.collate = DataCollatorForTokenClassification(tokenizer, return_tensors="pt")

    def __call__(self, dataset, indices, device="cpu"):
        rows = dataset[indices]
        feats = [{k: rows[k][i] for k in MODEL_INPUTS if k in rows} for i in range(len(indices))]
        return {k: v.to(device) for k, v in self.collate(feats).items()}

    def model_inputs(self, dataset, indices, device="cpu"):
        """The padded batch without its labels: what a model (or an exported graph) is fed at inference."""
        batch = self(dataset, indices, device)
        batch.pop("labels", None)
        return batch
