"""Definition-matching pipeline steps, as called by workflow/scripts/definition_match.py.

The encoder runs once per layer combination (dm_features); every head then trains on the cached
tensors in seconds (dm_train). Validation comes from train (split by target word); the labelled dev
set is the test set and is never used to choose an epoch or a setting.
"""

import json

from ..core.atomic import atomic_dir, write_json
from ..core.harness import set_threads


def get_raw(smk):
    from .synthetic import write_corpus

    with atomic_dir(smk.output[0]) as tmp:
        write_corpus(tmp, smk.params.sizes, smk.params.seed)


def load_encoder(cfg, seed):
    """(model, tokenizer, name): the frozen encoder of config definition_match.encoder."""
    import torch
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

    from ..core.encoders import resolve_source

    weights, tok_source = resolve_source(cfg)
    tokenizer = AutoTokenizer.from_pretrained(tok_source)
    if weights is None:  # preset tiny: a random encoder of the configured shape (tests, smoke runs)
        torch.manual_seed(seed)
        shape = {"hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 64,
                 **cfg.get("architecture", {})}
        return BertModel(BertConfig(vocab_size=tokenizer.vocab_size, **shape)), tokenizer, "tiny"
    return AutoModel.from_pretrained(weights), tokenizer, str(weights)


def _splits(folder, fraction, seed):
    from .data import read_split, validation_split

    train, val = validation_split(read_split(folder, "train"), fraction, seed)
    return {"train": train, "validation": val, "test": read_split(folder, "dev")}


def features(smk):
    import torch

    from ..core.atomic import atomic_path
    from ..core.precision import machine, resolve
    from .features import encode

    set_threads(smk)
    splits = _splits(smk.params.folder, smk.params.val_fraction, smk.params.seed)
    model, tokenizer, name = load_encoder(smk.params.encoder, smk.params.seed)
    f = smk.params.features
    precision = resolve(f.get("precision", "auto"), "cpu", "definition_match.features.precision")
    out = {"layers": smk.wildcards.layers, "encoder": name, "precision": precision, "machine": machine(),
           "splits": {}}
    for split, items in splits.items():
        feats = encode(items, model, tokenizer, smk.wildcards.layers, f.get("batch_size", 32),
                       f.get("prefix_target", False), precision=precision)
        out["splits"][split] = {**feats, "labels": torch.tensor([it["label"] for it in items]),
                                "targets": [it["target"].lower() for it in items]}
        print(f"{split}: {len(items)} items, features {tuple(feats['word'].shape)}")
    with atomic_path(smk.output[0]) as tmp:
        torch.save(out, tmp)


def train(smk):
    import torch

    from ..core.atomic import write_csv
    from ..core.precision import machine
    from .classifier_heads import build_head
    from .train import evaluate, logits, majority_baseline, train_head

    set_threads(smk)
    data = torch.load(smk.input[0], weights_only=False)
    tr, va, te = (data["splits"][s] for s in ("train", "validation", "test"))
    dim = tr["word"].shape[1]
    settings = {**smk.params.train, "seed": smk.params.seed}
    head_settings = {**smk.params.head, "seed": smk.params.seed}

    def fit(n):
        sub = {k: tr[k][:n] for k in ("word", "definition", "labels")}  # train order is already shuffled by group
        head = build_head(smk.wildcards.head, dim, head_settings)
        rows, _ = train_head(head, sub, sub["labels"], va, va["labels"], settings)
        return head, rows

    head, rows = fit(len(tr["labels"]))
    chosen = next(r for r in rows if r["selected"])
    result = {
        "layers": smk.wildcards.layers, "head": smk.wildcards.head, "encoder": data["encoder"],
        "params": sum(p.numel() for p in head.parameters()), "feature_dim": dim,
        "sizes": {s: len(data["splits"][s]["labels"]) for s in ("train", "validation", "test")},
        "selected_epoch": chosen["epoch"], "validation": evaluate(head, va, va["labels"]),
        "test": evaluate(head, te, te["labels"]),
        "test_predictions": (logits(head, te) > 0).long().tolist(),  # per test item in file order, for a recount
        "majority": {"validation": majority_baseline(tr["labels"], va["labels"]),
                     "test": majority_baseline(tr["labels"], te["labels"])},
    }
    # a learning curve over training-set size: a fresh head on the first fraction of train each time;
    # at the full size that head is the one above (training is seeded), so it is not trained twice
    curve = []
    for fraction in smk.params.fractions:
        n = max(2, int(round(fraction * len(tr["labels"]))))
        h = head if n == len(tr["labels"]) else fit(n)[0]
        curve.append({"fraction": fraction, "train_items": n,
                      "validation_accuracy": evaluate(h, va, va["labels"])["accuracy"],
                      "test_accuracy": evaluate(h, te, te["labels"])["accuracy"]})
    result["size_curve"] = curve
    # heads train in fp32; the encoder features carry the precision and machine they were computed with
    result["precision"] = {"features": data.get("precision"), "heads": "fp32"}
    result["machine"] = {"features": data.get("machine"), "heads": machine()}
    write_csv(smk.output.curve, rows)
    write_json(smk.output.result, result)
    print(json.dumps(result, indent=1))


def tables(smk):
    from .report import write_tables

    write_tables(smk.input.results, smk.output.csv, smk.output.md)


def plots(smk):
    from .report import plot_accuracy, plot_curves, plot_size_curves

    plot_curves(smk.input.curves, smk.output.curves)
    plot_size_curves(smk.input.results, smk.output.sizes)
    plot_accuracy(smk.input.results, smk.output.accuracy)


def report_section(smk):
    from .report import write_report

    write_report(smk.input.table, smk.input.figures, smk.output[0])


# rule name -> job (shrink.core.harness.run_job; tests/test_jobs.py checks both sides)
JOBS = {"dm_get_raw": get_raw, "dm_features": features, "dm_train": train, "dm_tables": tables, "dm_plots": plots,
         "dm_report": report_section}
