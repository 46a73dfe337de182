"""CPU inference of one token classifier in fp32, bf16 autocast and dynamic int8, in ONE run.

All variants see the same sentences (15-40 word pieces each): synthetic ones from a fixed seed, or
CoNLL ones with --conll. Rounds interleave the variants, so load from other processes on a shared
machine hits them alike. Reported: median batch-1 latency, batch-32 throughput (median batch time,
each batch padded to its longest sentence), both also as a ratio to fp32; the largest per-sentence
relative logit error and the argmax agreement against fp32; on-disk bytes of the int8 state dict
against the fp32 model.safetensors. --torchao adds torchao's Int8DynamicActivationInt8WeightConfig
(eager, no torch.compile) for the backend comparison in shrink/methods/quantize.py.
Without a model folder the 9-label head is random and untrained: its near-tied logits make the error
columns look far worse than on a trained model; give a fine-tuned folder to judge accuracy.

    python perf/precision_bench.py                                   # MiniLM-L6, random 9-label head
    python perf/precision_bench.py results/models/teacher --conll results/data/clean/test.txt
"""

import argparse
import contextlib
import copy
import itertools
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from shrink.core.precision import describe


def sentences(tokenizer, args):
    """Word lists whose encodings have 15-40 word pieces, from CoNLL or the synthetic templates."""
    rng = random.Random(args.seed)
    if args.conll:
        from shrink.ner.conll import read_conll

        pool = [s.tokens for s in read_conll(args.conll).sentences]
        rng.shuffle(pool)
    else:
        from shrink.ner.synthetic import TEMPLATES, _fill

        pool = ([w for _ in range(rng.randint(1, 3)) for w in _fill(rng.choice(TEMPLATES), rng)[0]]
                for _ in range(100_000))
    need = max(args.sentences, 2 * args.batch)
    fits = (w for w in pool if 15 <= len(tokenizer(w, is_split_into_words=True)["input_ids"]) <= 40)
    out = list(itertools.islice(fits, need))
    if len(out) < need:
        raise SystemExit(f"only {len(out)} sentences of 15-40 word pieces, {need} needed")
    return out


def variants(model, with_torchao):
    from shrink.methods.quantize import quantize_int8

    out = {"fp32": (model, contextlib.nullcontext),
           "bf16 autocast": (model, lambda: torch.autocast("cpu", dtype=torch.bfloat16)),
           "int8 torch.ao": (quantize_int8(model), contextlib.nullcontext)}
    if with_torchao:
        try:
            from torchao.quantization import (
                Int8DynamicActivationInt8WeightConfig,
                quantize_,
            )
        except ImportError as e:
            print(f"torchao skipped: {e}")
        else:
            ao = copy.deepcopy(model)
            quantize_(ao, Int8DynamicActivationInt8WeightConfig())
            out["int8 torchao eager"] = (ao, contextlib.nullcontext)
    return out


def _run(model, ctx, batch):
    with ctx():
        return model(**batch).logits.float()


def timed(model, ctx, batch):
    start = time.perf_counter()
    with ctx():
        model(**batch)
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", help="model folder (default: the MiniLM-L6 of the minilm preset)")
    p.add_argument("--conll", help="CoNLL file to take sentences from (default: synthetic, fixed seed)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sentences", type=int, default=50, help="sentences timed one at a time")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--torchao", action="store_true", help="also time torchao's int8 (if installed)")
    args = p.parse_args()

    import transformers
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from shrink.core.encoders import minilm_path
    from shrink.methods.quantize import save_quantized

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    print(describe())
    path = Path(args.model or minilm_path())
    has_head = "id2label" in json.loads((path / "config.json").read_text())
    torch.manual_seed(args.seed)  # the random head, if the folder has none
    model = AutoModelForTokenClassification.from_pretrained(path, **({} if has_head else {"num_labels": 9})).eval()
    tok = AutoTokenizer.from_pretrained(path if (path / "tokenizer_config.json").is_file() else minilm_path())
    words = sentences(tok, args)
    singles = [tok(w, is_split_into_words=True, return_tensors="pt") for w in words[: args.sentences]]
    batches = [tok(words[i: i + args.batch], is_split_into_words=True, padding=True, return_tensors="pt")
               for i in (0, args.batch)]
    lengths = [s["input_ids"].shape[1] for s in singles]
    print(f"{path.name}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters; "
          f"{len(singles)} sentences of {min(lengths)}-{max(lengths)} word pieces "
          f"({'CoNLL' if args.conll else 'synthetic'}), batches of {args.batch}; torch {torch.__version__}, "
          f"{args.threads} threads, quantized engine {torch.backends.quantized.engine}")

    runs = variants(model, args.torchao)
    lat, batch_t, logits = {k: [] for k in runs}, {k: [] for k in runs}, {}
    with torch.inference_mode():
        for name, (m, ctx) in runs.items():  # warm-up, and the logits for the error columns
            logits[name] = [_run(m, ctx, s) for s in singles]
            timed(m, ctx, batches[0])
        for _ in range(args.rounds):
            for name, (m, ctx) in runs.items():
                lat[name] += [timed(m, ctx, s) for s in singles]
                batch_t[name] += [timed(m, ctx, b) for b in batches]

    ref = logits["fp32"]
    base_lat, base_tp = statistics.median(lat["fp32"]), args.batch / statistics.median(batch_t["fp32"])
    head = f"{'variant':<20}{'batch-1 ms':>11}{'vs fp32':>9}{'batch-32 sent/s':>17}{'vs fp32':>9}" \
           f"{'max rel err':>13}{'argmax agree':>14}"
    print(head + "\n" + "-" * len(head))
    for name in runs:
        ms, tp = statistics.median(lat[name]), args.batch / statistics.median(batch_t[name])
        err = max(((o - r).norm() / r.norm()).item() for o, r in zip(logits[name], ref))
        agree = sum((o.argmax(-1) == r.argmax(-1)).sum().item() for o, r in zip(logits[name], ref)) / sum(lengths)
        print(f"{name:<20}{ms * 1e3:>11.2f}{base_lat / ms:>8.2f}x{tp:>17.1f}{tp / base_tp:>8.2f}x"
              f"{err:>12.2%}{agree:>13.2%}")
    with tempfile.TemporaryDirectory() as tmp:
        size = save_quantized(runs["int8 torch.ao"][0], Path(tmp) / "int8")
    print(f"on disk: int8 state dict {size['int8_bytes'] / 1e6:.1f} MB, fp32 model.safetensors "
          f"{size['fp32_bytes'] / 1e6:.1f} MB, {size['ratio']:.2f}x smaller (embeddings stay fp32)")


if __name__ == "__main__":
    main()
