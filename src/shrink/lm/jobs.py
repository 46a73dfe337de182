"""Language-model pipeline steps, as called by workflow/scripts/lm.py (one function per rule).

Heavy libraries are imported inside each step, so the table and plot rules start without torch.
"""

import json
from pathlib import Path

from ..core.atomic import atomic_dir, atomic_path, read_json, write_json
from ..core.harness import set_threads
from ..core.precision import machine


def _read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _write_jsonl(path, rows):
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def get_raw(smk):
    from .synthetic import write_corpus

    s = {"books": 6, "paragraphs": 150, "web_rows": 40, **smk.params.synthetic}
    with atomic_dir(smk.output[0]) as tmp:
        write_corpus(tmp, s["books"], s["paragraphs"], s["web_rows"], smk.params.seed)


def get_arc(smk):
    from .synthetic import write_arc

    with atomic_dir(smk.output[0]) as tmp:
        write_arc(tmp, smk.params.seed)


def clean(smk):
    from .clean import clean_documents, read_documents, split_by_document

    data = smk.params.data
    settings = {**smk.params.clean, "text_field": data.get("text_field", "text"),
                "quality_field": data.get("quality_field", "quality_ai")}
    docs = [d for f in smk.input for d in read_documents(f, settings)]  # a file, or the synthetic folder
    docs, report = clean_documents(docs, settings)
    train, val = split_by_document(docs, data["validation"], smk.params.seed)
    for name, part in (("train", train), ("validation", val)):
        report[f"{name}_files"] = sorted({d["source"] for d in part})
        report[f"{name}_rows"] = len(part)
        report[f"{name}_chars"] = sum(len(d["text"]) for d in part)
    for name, part in (("train", train), ("validation", val)):
        _write_jsonl(getattr(smk.output, name), [{"text": d["text"], "source": d["source"]} for d in part])
    write_json(smk.output.report, report)
    print(json.dumps(report, indent=1, ensure_ascii=False))


PRETRAINED_KEY = "shrink_pretrained_tokenizer"


def open_tokenizer(path):
    """The tokenizer a `lm_tokenizer` output describes: a trained BPE, or a pointer to a pretrained one."""
    from .tokenizer import load_tokenizer

    data = read_json(path)
    return load_tokenizer(data[PRETRAINED_KEY] if PRETRAINED_KEY in data else str(path))


def tokenizer(smk):
    from .tokenizer import load_tokenizer, save, train_bpe

    spec = dict(smk.params.spec)
    if spec["kind"] == "bpe":
        texts = [row["text"] for row in _read_jsonl(smk.input.train)]
        save(train_bpe(texts, spec["vocab_size"], min_frequency=spec.get("min_frequency", 2)), smk.output[0])
        return
    # pretrained: the output names it; loading it now fails here (offline, say) rather than after training
    name = f"tiktoken:{spec['name']}" if spec["kind"] == "tiktoken" else f"hf:{spec['name_or_path']}"
    load_tokenizer(name)
    write_json(smk.output[0], {PRETRAINED_KEY: name})


def tokenize(smk):
    import numpy as np

    from .data import save_tokens
    from .tokenizer import encode_documents

    tok = open_tokenizer(smk.input.tokenizer)
    stats = {"tokenizer": Path(smk.input.tokenizer).stem, "vocab_size": tok.vocab_size}
    for split in ("train", "validation"):
        texts = [row["text"] for row in _read_jsonl(smk.input[split])]
        ids = encode_documents(tok, texts)
        save_tokens(smk.output[split], ids)
        chars = sum(len(t) for t in texts)
        stats[split] = {"documents": len(texts), "chars": chars, "tokens": int(len(ids)),
                        "chars_per_token": chars / max(1, len(ids)), "max_id": int(np.max(ids))}
    write_json(smk.output.stats, stats)
    print(json.dumps(stats, indent=1))


def _split_settings(settings):
    """An architecture's settings without the training overrides it may carry (lr)."""
    settings = dict(settings)
    overrides = {k: settings.pop(k) for k in ("lr",) if k in settings}
    return settings, overrides


def save_lm(path, model, arch, width, settings):
    import torch

    with atomic_path(path) as tmp:
        torch.save({"arch": arch, "width": width, "settings": settings, "vocab_size": model.vocab_size,
                    "block_size": model.block_size, "state_dict": model.state_dict()}, tmp)


def load_lm(path):
    import torch

    from .models import build

    state = torch.load(path, weights_only=False)
    model = build(state["arch"], state["vocab_size"], state["block_size"], state["width"], state["settings"])
    model.load_state_dict(state["state_dict"])
    return model.eval(), state


def train(smk):
    import torch

    from ..core.atomic import write_csv
    from .data import load_tokens
    from .models import build, count_params, fit_width
    from .train import LMTrainConfig, train_lm

    set_threads(smk)
    arch, tok = smk.wildcards.arch, smk.wildcards.tok
    settings, overrides = _split_settings(smk.params.arch_settings)
    cfg = LMTrainConfig.from_dict({**smk.params.train, **overrides})
    vocab = read_json(smk.input.stats)["vocab_size"]
    width = fit_width(arch, vocab, cfg.block_size, smk.params.budget, settings)
    torch.manual_seed(smk.params.seed)  # same initialisation seed for every architecture
    model = build(arch, vocab, cfg.block_size, width, settings)
    params = count_params(model)
    print(f"{arch} on {tok}: width {width}, {params:,} parameters (budget {smk.params.budget:,})")
    summary, step_rows, eval_rows = train_lm(model, load_tokens(smk.input.train), load_tokens(smk.input.validation),
                                             cfg, smk.params.seed, smk.params.checkpoint, desc=f"{arch}/{tok}")
    write_csv(smk.output.steps, step_rows)
    write_csv(smk.output.evals, eval_rows)
    save_lm(smk.output.model, model.cpu(), arch, width, settings)
    write_json(smk.output.summary, {"arch": arch, "tokenizer": tok, "width": width, "params": params,
                                    "budget": smk.params.budget, "threads": smk.threads, **summary,
                                    "precision": cfg.precision, "machine": machine(cfg.device)})
    Path(smk.params.checkpoint).unlink(missing_ok=True)  # the finished model supersedes it


def evaluate(smk):
    from .data import load_tokens
    from .metrics import bits_per_char, generation_speed, perplexity, split_nll

    set_threads(smk)
    model, state = load_lm(smk.input.model)
    tok = open_tokenizer(smk.input.tokenizer)
    stats = read_json(smk.input.stats)
    nll, count = split_nll(model, load_tokens(smk.input.validation), state["block_size"])
    g = smk.params.generate
    prompts = [tok.encode(p) for p in g["prompts"]]
    speed, outputs = generation_speed(model, prompts, g["new_tokens"], smk.params.seed, top_k=g.get("top_k"),
                                      temperature=g.get("temperature", 1.0))
    summary = read_json(smk.input.summary)
    metrics = {
        **{k: summary[k] for k in ("arch", "tokenizer", "width", "params", "budget", "steps", "tokens",
                                   "train_seconds", "train_tokens_per_s", "final_train_loss", "peak_rss_mb")},
        "vocab_size": stats["vocab_size"],
        "val_tokens": count,
        "val_loss": nll / count,
        "val_ppl": perplexity(nll, count),
        "val_bits_per_char": bits_per_char(nll, stats["validation"]["chars"]),
        "chars_per_token": stats["validation"]["chars_per_token"],
        **speed,
        # evaluation runs in fp32; training in what the training job resolved (absent before it was recorded)
        "precision": {"evaluate": "fp32", "train": summary.get("precision")},
        "machine": machine(),
    }
    write_json(smk.output.metrics, metrics)
    samples = [{"prompt": p, "continuation": tok.decode(o)} for p, o in zip(g["prompts"], outputs)]
    write_json(smk.output.samples, samples)
    print(json.dumps(metrics, indent=1))


def sorting(smk):
    import torch

    from ..core.atomic import write_csv
    from .models import build, count_params, fit_width
    from .sorting import evaluate_sorter, train_sorter

    set_threads(smk)
    s, arch = smk.params.sorting, smk.wildcards.arch
    settings, _ = _split_settings(smk.params.arch_settings)
    longest = max(s["train_lengths"][1], max(s["eval_lengths"]))
    vocab, block = s["max_value"] + 2, 2 * longest + 1  # numbers, SEP and PAD; input, SEP, sorted output
    width = fit_width(arch, vocab, block, s["budget"], settings)
    torch.manual_seed(smk.params.seed)
    model = build(arch, vocab, block, width, settings)
    lo, hi = s["train_lengths"]
    train_settings = {k: s[k] for k in ("max_value", "steps", "batch_size", "lr") if k in s}
    rows = train_sorter(model, {**train_settings, "train_lengths": list(range(lo, hi + 1)), "seed": smk.params.seed})
    outputs = []  # the greedy outputs themselves, so the scores can be recounted from the result file
    results = evaluate_sorter(model, s["eval_lengths"], s["eval_per_length"], s["max_value"], smk.params.seed + 1,
                              record=outputs)
    write_csv(smk.output.steps, rows)
    write_json(smk.output.result, {"arch": arch, "width": width, "params": count_params(model), "by_length": results,
                                   "outputs": outputs})
    print(json.dumps(results, indent=1))


def _arc_splits(paths):
    from .arc import load_arc

    paths = [Path(p) for p in paths]
    if len(paths) == 1 and paths[0].is_dir():
        paths = [paths[0] / f"ARC-Easy-{s}.json" for s in ("train", "validation", "test")]
    return {s: load_arc(p) for s, p in zip(("train", "validation", "test"), paths)}


def arc(smk):
    import torch

    from ..core.atomic import write_csv
    from .arc import (
        accuracy_with_ci,
        choose,
        finetune_mc,
        length_baselines,
        option_logprobs,
        sample_items,
    )

    set_threads(smk)
    a = smk.params.arc
    splits = _arc_splits(smk.input.arc)
    if a.get("max_items"):  # the same seeded sample for every architecture
        splits = {k: sample_items(v, a["max_items"], smk.params.seed) for k, v in splits.items()}
    tok = open_tokenizer(smk.input.tokenizer)
    model, _ = load_lm(smk.input.model)

    predictions = {}  # mode -> score -> the chosen option per test item, so accuracies can be recounted

    def score(items, mode):
        sums, counts = option_logprobs(model, tok.encode, items, batch_size=32)
        out = {}
        for name, normalise in (("sum", False), ("mean", True)):
            picked = choose(sums, counts, normalise=normalise)
            predictions.setdefault(mode, {})[name] = picked
            correct = [p == it["answer"] for p, it in zip(picked, items)]
            out[name] = accuracy_with_ci(correct, [len(it["choices"]) for it in items])
        return out

    result = {"arch": smk.wildcards.arch, "items": {k: len(v) for k, v in splits.items()},
              "baselines": {"test": length_baselines(splits["test"])},
              "zero_shot": {"test": score(splits["test"], "zero_shot")}}
    torch.manual_seed(smk.params.seed)
    rows, best_val = finetune_mc(model, tok.encode, splits["train"], splits["validation"],
                                 {**a["finetune"], "seed": smk.params.seed})  # keeps the best-validation weights
    # finetune_mc keeps the untuned weights unless a step beat them on validation; then the test
    # score is the zero-shot one and scoring the test split again would only repeat it
    changed = best_val > rows[0]["val_accuracy"]
    result["finetuned"] = {"best_validation_accuracy": best_val, "weights_changed": changed,
                           "test": score(splits["test"], "finetuned") if changed else result["zero_shot"]["test"]}
    predictions.setdefault("finetuned", predictions["zero_shot"])
    result["test_predictions"] = {"ids": [it["id"] for it in splits["test"]], **predictions}
    write_csv(smk.output.steps, rows)
    write_json(smk.output.result, result)
    print(json.dumps(result, indent=1))


def tables(smk):
    from . import report

    report.write_tables(smk)


def plots(smk):
    from . import report

    report.write_plots(smk)


def report_section(smk):
    from . import report

    report.write_report(smk)


# rule name -> job (shrink.core.harness.run_job; tests/test_jobs.py checks both sides)
JOBS = {"lm_get_raw": get_raw, "lm_get_arc": get_arc, "lm_clean": clean, "lm_tokenizer": tokenizer,
         "lm_tokenize": tokenize, "lm_train": train, "lm_evaluate": evaluate, "lm_sorting": sorting, "lm_arc": arc,
         "lm_tables": tables, "lm_plots": plots, "lm_report": report_section}
