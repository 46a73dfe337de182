"""SparseGPT's mask selection, block (the paper) vs row, and magnitude pruning layer-wide (the paper's
baseline) vs per row, on MiniLM-L6 with CoNLL-2003 train sentences as calibration.

Two measurements, both reporting relative_error = ||W X - W' X||^2 / ||W X||^2 on the calibration inputs:
1. same inputs: every encoder linear's H is taken from the dense model in one pass, and each option
   prunes that linear from the same H, so the options differ only in their masks;
2. sequential (as the `prune` step runs): prune_encoder with mask_selection block, then row.
Magnitude per row is wanda_prune with unit input norms (|w| x 1, lowest per row), so it needs no option.

    python perf/sparsegpt_mask_selection.py                      # 64 sentences, 50%
    python perf/sparsegpt_mask_selection.py --sentences 32 --sparsity 0.7
"""

import argparse
import copy
import random
import statistics
import time

import torch
from torch import nn

from shrink.core.precision import describe
from shrink.methods.sparsegpt import (
    LayerStats,
    magnitude_prune,
    prune_encoder,
    relative_error,
    sparsegpt_prune,
    wanda_prune,
)

OPTIONS = ("sparsegpt block", "sparsegpt row", "magnitude layer", "magnitude row", "wanda row")


def conll_sentences(path):
    sentences, words = [], []
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for line in lines:
        parts = line.split()
        if not parts or parts[0] == "-DOCSTART-":
            if words:
                sentences.append(words)
            words = []
        else:
            words.append(parts[0])
    if words:
        sentences.append(words)
    return sentences


def calibration(tok, sentences, n, seed, batch_size=16):
    chosen = random.Random(seed).sample(sentences, n)
    return [dict(tok(chosen[i:i + batch_size], is_split_into_words=True, padding=True, truncation=True,
                     max_length=128, return_tensors="pt")) for i in range(0, n, batch_size)]


@torch.no_grad()
def dense_stats(model, batches):
    """LayerStats of every encoder linear, from forward passes of the unpruned model (padding left out)."""
    linears = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and ".encoder.layer." in n}
    stats, current = {n: LayerStats(m.in_features) for n, m in linears.items()}, {}
    hooks = [m.register_forward_hook(lambda mod, a, o, n=n: stats[n].add(a[0], current["mask"]))
             for n, m in linears.items()]
    for b in batches:
        current["mask"] = b["attention_mask"].bool()
        model(**b)
    for h in hooks:
        h.remove()
    return linears, stats


def prune_one(option, w, s, sparsity, blocksize):
    if option.startswith("sparsegpt"):
        return sparsegpt_prune(w, s.hessian, sparsity, blocksize=blocksize, mask_selection=option.split()[1])[0]
    if option == "magnitude layer":
        return magnitude_prune(w, sparsity)
    if option == "magnitude row":
        return wanda_prune(w, torch.ones(w.shape[1]), sparsity)
    return wanda_prune(w, s.input_norm, sparsity)


def layer_of(name):
    return int(name.split(".encoder.layer.")[1].split(".")[0])


def table(title, columns, per_layer):
    print(f"\n{title}")
    print("layer  " + "  ".join(f"{c:>15}" for c in columns))
    for layer in sorted(per_layer):
        print(f"{layer:>5}  " + "  ".join(f"{statistics.mean(per_layer[layer][c]):15.4f}" for c in columns))
    print("  all  " + "  ".join(f"{statistics.mean(v for r in per_layer.values() for v in r[c]):15.4f}"
                                 for c in columns))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="/work/shared/data/conll2003/train.txt")
    ap.add_argument("--sentences", type=int, default=64)
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--blocksize", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(describe())

    from transformers import AutoTokenizer, BertForTokenClassification
    from transformers.utils import logging

    from shrink.core.encoders import minilm_path

    logging.set_verbosity_error()  # the load report (pooler unused, classifier new) is expected here
    logging.disable_progress_bar()

    path = minilm_path()
    tok = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(args.seed)  # the classifier is random; only the encoder linears are pruned
    model = BertForTokenClassification.from_pretrained(path, num_labels=9).eval()
    batches = calibration(tok, conll_sentences(args.data), args.sentences, args.seed)
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    print(f"MiniLM-L6, {args.sentences} CoNLL-2003 train sentences ({tokens} word pieces, seed {args.seed}), "
          f"sparsity {args.sparsity}, blocksize {args.blocksize}; mean relative_error over each layer's 6 linears")

    t0 = time.perf_counter()
    linears, stats = dense_stats(model, batches)
    per_layer, spread = {}, []
    for name, lin in linears.items():
        w = lin.weight.detach()
        row = per_layer.setdefault(layer_of(name), {o: [] for o in OPTIONS})
        for option in OPTIONS:
            new = prune_one(option, w, stats[name], args.sparsity, args.blocksize)
            row[option].append(relative_error(w, new, stats[name].hessian))
            if option == "sparsegpt block":
                spread.append((new == 0).float().mean(1))
    table("1. same inputs (H of the dense model)", OPTIONS, per_layer)
    rows = torch.cat(spread)
    print(f"sparsegpt block: per-row sparsity ranges {rows.min():.3f} .. {rows.max():.3f} "
          f"(std {rows.std():.3f}) over {len(rows)} rows")

    seq = {}
    for selection in ("block", "row"):
        report = prune_encoder(copy.deepcopy(model), batches, "sparsegpt", args.sparsity, blocksize=args.blocksize,
                            mask_selection=selection)
        for name, r in report.items():
            seq.setdefault(layer_of(name), {"block": [], "row": []})[selection].append(r["rel_error"])
    table("2. sequential prune_encoder (sparsegpt)", ("block", "row"), seq)
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
