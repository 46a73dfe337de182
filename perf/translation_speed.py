"""Encoder and greedy-decoding speed of the translation teacher and its head-pruned models, in ONE run.

Rounds interleave the models, so load from other processes on a shared machine hits them alike.
Every model decodes the same test sentences; since the models stop at different lengths, decoding
is reported per generated token. Reported per model: encoder time per sentence over the whole test
set (batches of 64), greedy decoding time per generated token for the first --sentences sentences,
and both as a ratio to the teacher.

    python perf/translation_speed.py                      # results/translation/models/*, test split
    python perf/translation_speed.py --rounds 5 --threads 2
"""

import argparse
import statistics
import time
from pathlib import Path

import torch

from shrink.core.batching import sequential_batches
from shrink.core.precision import describe
from shrink.translation.decode import greedy
from shrink.translation.model import load_seq2seq, make_batch
from shrink.translation.shards import TokenizedPairs


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results/translation")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sentences", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(describe())
    root = Path(args.results)
    names = ["teacher"] + sorted((p.name for p in (root / "models").glob("heads_l*")),
                                 key=lambda n: -float(n.removeprefix("heads_l")))
    models = {n: load_seq2seq(root / "models" / n) for n in names}
    src = TokenizedPairs.load(root / "data" / "tokenized" / "test.npz").src
    enc_batches = [make_batch([src[i] for i in idx])["src"] for idx in sequential_batches([len(s) for s in src], 64)]
    dec_batches = [make_batch([src[i] for i in idx])["src"]
                   for idx in sequential_batches([len(s) for s in src[: args.sentences]], 64)]

    def encode(m):
        for b in enc_batches:
            m.encoder(b)

    def decode(m):
        return sum(len(h) + 1 for b in dec_batches for h in greedy(m, b))  # tokens, </s> included

    enc, dec = {n: [] for n in names}, {n: [] for n in names}
    for _ in range(args.rounds):
        for n, m in models.items():
            enc[n].append(timed(lambda m=m: encode(m)) * 1000 / len(src))
            t0 = time.perf_counter()
            tokens = decode(m)
            dec[n].append((time.perf_counter() - t0) * 1000 / tokens)
    t_enc, t_dec = statistics.median(enc["teacher"]), statistics.median(dec["teacher"])
    print(f"{'model':<14}{'heads':>6}{'encoder ms/sent':>17}{'x teacher':>11}{'greedy ms/token':>16}{'x teacher':>11}")
    for n, m in models.items():
        heads = sum(layer.self_attn.n_heads for layer in m.encoder.layers)
        e, d = statistics.median(enc[n]), statistics.median(dec[n])
        print(f"{n:<14}{heads:>6}{e:>17.3f}{t_enc / e:>11.2f}{d:>16.3f}{t_dec / d:>11.2f}")


if __name__ == "__main__":
    main()
