"""Throughput and F1 of the teacher rule's trainer against a plain Hugging Face `Trainer` recipe.

Both runs use one process, the same tokenized data, model, epochs, seed, learning rate, batch
size, warmup and weight decay. They differ only in what this project changes on purpose:
  ours:  length-grouped batches of --batch-tokens padded word pieces (the config default; 0 for
         --batch-size sentences), dynamic padding, --precision (auto: bf16 autocast where the CPU runs it
         natively, else fp32)
  plain: random batches of --batch-size sentences, dynamic padding (DataCollatorForTokenClassification),
         fp32, Trainer defaults otherwise
  tuned: the plain recipe with the two options a careful user sets (issue 17): bf16=True where the
         resolved --precision is bf16, and train_sampling_strategy="group_by_length" (transformers 5's
         name; it reads the tokenized data's `length` column)
Levers, each a row of its own (--rows): `ours-alloc` is ours without train.keep_freed_memory (glibc
returns large freed blocks to the system, as by default), `tuned+alloc` the tuned Trainer with it;
`ours-bf16` is ours in fp32, `ours-budget` ours with length-grouped batches of --batch-size sentences
instead of the word-piece budget; `ours+compile` is ours with train.compile (torch.compile, inductor,
dynamic shapes), `tuned+compile` the tuned Trainer with torch_compile=True. A compiled row's time
includes compiling; with --epochs 2 or more the last epoch alone is printed too (ours only: the
Trainer reports one time). Every row runs in a fresh process, so no row inherits another's allocator
setting, compiled code or warm caches.
Word pieces/s counts the real (non-padding) sub-tokens of the train split per second of training;
both models are scored by the same seqeval code on the test split, in fp32.

    python perf/trainer_vs_hf.py --tokenized results/data/tokenized --epochs 1
"""

import argparse
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from shrink.core.allocator import keep_freed_memory
from shrink.core.precision import describe, resolve
from shrink.core.seeding import seed_everything
from shrink.ner.evaluate import load_tokenized
from shrink.ner.metrics import evaluate_split
from shrink.ner.models import build_token_classifier
from shrink.ner.train import TrainConfig, train_token_classifier

ROWS = {"ours": "shrink trainer", "ours-alloc": "ours, glibc frees", "ours-bf16": "ours in fp32",
        "ours-budget": "ours, 32 sentences", "ours+compile": "shrink + compile", "plain": "plain HF Trainer",
        "tuned": "tuned HF Trainer", "tuned+alloc": "tuned + keep freed", "tuned+compile": "tuned + compile"}


def hf_trainer(model, tok, train_set, args, workdir, tuned=False, compile=False):
    from transformers import (
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )

    steps = -(-len(train_set) // args.batch_size) * args.epochs
    targs = TrainingArguments(
        output_dir=str(workdir), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr, warmup_steps=int(0.1 * steps), weight_decay=0.01, seed=args.seed,
        save_strategy="no", eval_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True,
        **({"bf16": args.precision == "bf16", "train_sampling_strategy": "group_by_length"} if tuned else {}),
        **({"torch_compile": True} if compile else {}),
    )
    keep = ("input_ids", "attention_mask", "labels", *(("length",) if tuned else ()))
    cols = [c for c in train_set.column_names if c not in keep]
    trainer = Trainer(model=model, args=targs, train_dataset=train_set.remove_columns(cols),
                      data_collator=DataCollatorForTokenClassification(tok))
    out = trainer.train()
    return out.metrics["train_runtime"]


def run_row(row, args):
    """One row's training and test F1 (in its own process): (seconds, test F1, last epoch's word pieces/s
    or None, train sentences, word pieces)."""
    torch.set_num_threads(args.threads)
    dd, tok, labels = load_tokenized(args.tokenized)
    train_set = dd["train"]
    if args.train_sentences:
        train_set = train_set.select(range(min(args.train_sentences, len(train_set))))
    word_pieces = sum(train_set["length"]) * args.epochs
    seed_everything(args.seed)
    model = build_token_classifier({"preset": args.preset}, labels, len(tok), args.seed)
    last = None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if row.startswith("ours"):
            budget = None if row == "ours-budget" else args.batch_tokens or None
            cfg = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                              precision="fp32" if row == "ours-bf16" else args.precision, seed=args.seed,
                              group_by_length=True, batch_tokens=budget, compile=row == "ours+compile",
                              keep_freed_memory=row != "ours-alloc")
            epochs = train_token_classifier(model, tok, train_set, dd["validation"], labels, cfg, tmp / row,
                                            tmp / "steps.csv", tmp / "epochs.csv", tmp / "ckpt", progress=False)
            from transformers import AutoModelForTokenClassification

            best = AutoModelForTokenClassification.from_pretrained(tmp / row)
            seconds = sum(r["train_seconds"] for r in epochs)
            if args.epochs > 1:
                last = epochs[-1]["train_tokens_per_s"]
        else:
            if row == "tuned+alloc":
                keep_freed_memory()
            t0 = time.perf_counter()
            seconds = hf_trainer(model, tok, train_set, args, tmp / row, tuned=row.startswith("tuned"),
                                 compile=row.endswith("+compile")) or time.perf_counter() - t0
            best = model
        f1 = evaluate_split(best, dd["test"], tok, labels)["f1"]
    return seconds, f1, last, len(train_set), word_pieces


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokenized", default="results/data/tokenized", help="tokenized folder of a pipeline run")
    p.add_argument("--preset", default="minilm")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train-sentences", type=int, default=None, help="first N train sentences (default all)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batch-tokens", type=int, default=640, help="ours: padded word pieces per batch (0: use --batch-size)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--rows", default="ours,ours-alloc,ours-bf16,ours-budget,plain,tuned,tuned+alloc",
                   help=f"comma-separated, of {', '.join(ROWS)}")
    args = p.parse_args()
    rows = args.rows.split(",")
    if unknown := [r for r in rows if r not in ROWS]:
        p.error(f"--rows: unknown {', '.join(unknown)}; choose from {', '.join(ROWS)}")
    args.precision = resolve(args.precision, "cpu", "--precision")
    print(describe(args.precision))
    results, last_epoch = {}, {}
    for row in rows:
        # a fresh process per row: the allocator setting cannot be undone, and compiled code and warm
        # caches would otherwise favour the rows that run later
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            seconds, f1, last, n_sentences, word_pieces = pool.submit(run_row, row, args).result()
        results[row] = (seconds, f1)
        if last is not None:
            last_epoch[row] = last
        print(f"{ROWS[row]}: {seconds:.1f} s, test F1 {f1:.4f}", flush=True)

    print(f"\n{n_sentences} train sentences x {args.epochs} epoch(s), {word_pieces:,} word pieces, "
          f"{args.threads} threads; ours: {args.precision}, "
          + (f"{args.batch_tokens} word pieces a batch" if args.batch_tokens else f"{args.batch_size} sentences a batch")
          + f"; the Trainer: {args.batch_size} sentences a batch")
    print(f"{'recipe':<18} {'train s':>9} {'word pieces/s':>14} {'test F1':>8}")
    for row, (sec, f1) in results.items():
        extra = f"   (last epoch alone: {last_epoch[row]:.0f} word pieces/s)" if row in last_epoch else ""
        print(f"{ROWS[row]:<18} {sec:9.1f} {word_pieces / sec:14.0f} {f1:8.4f}{extra}")
    for ours in [r for r in results if r.startswith("ours")]:
        for peer in [r for r in results if not r.startswith("ours")]:
            (s_ours, f_ours), (s_hf, f_hf) = results[ours], results[peer]
            print(f"throughput ratio ({ours} / {peer}): {s_hf / s_ours:.2f}x; test F1 difference: {f_ours - f_hf:+.4f}")


if __name__ == "__main__":
    main()
