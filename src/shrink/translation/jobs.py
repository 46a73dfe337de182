"""Translation pipeline steps, as called by workflow/scripts/translation.py (one function per rule).

Heavy libraries are imported inside each step, so table and plot rules start without torch.
"""

import json
from pathlib import Path

from ..core.errors import ShrinkError
from ..core.harness import set_threads
from ..core.splits import SPLITS

ENV_VAR = "EN_RU_DIR"


def resolve_dir(configured):
    """The local parallel-corpus folder (config key translation.data.dir, else EN_RU_DIR), or None."""
    from ..core.data_dirs import resolve_data_dir

    return resolve_data_dir(configured, "translation.data.dir", ENV_VAR)[0]




def get_raw(smk):
    """Synthetic or Hub corpora, written as the same line-aligned files a local folder holds."""
    from ..core.atomic import atomic_dir
    from .corpus import synthetic_corpus, write_pairs

    d = smk.params.data
    src, tgt, out = d["src"], d["tgt"], Path(smk.output[0])
    if d["source"] == "synthetic":
        sizes = d["synthetic"]
        splits = synthetic_corpus(sizes["train"], sizes["validation"], sizes["test"], seed=smk.params.seed)
    else:
        try:
            splits = fetch_hub(d["hub"], src, tgt)
        except ConnectionError as e:  # offline: say how to use a local folder instead
            raise ShrinkError(f"{e}; to read a local folder of .{src}/.{tgt} files instead, set config key "
                              "'translation.data.dir' or the environment variable 'EN_RU_DIR'") from None
    with atomic_dir(out) as tmp:  # a killed job leaves no folder that looks finished
        for split, pairs in splits.items():
            write_pairs(tmp, split, pairs, src, tgt)


def fetch_hub(hub, src, tgt):
    """Hub translation datasets with a `translation` column of {src: ..., tgt: ...} (the WMT layout).

    `hub.splits[split]` is a split name of `hub.name`, or {name, config, split} for another dataset
    (WMT19 ru-en has no test split, so the test set comes from another year).
    """
    from datasets import load_dataset

    splits = {}
    for split in SPLITS:
        spec = hub["splits"][split]
        spec = spec if isinstance(spec, dict) else {"name": hub["name"], "config": hub.get("config"), "split": spec}
        ds = load_dataset(spec["name"], spec.get("config"), split=spec["split"], revision=spec.get("revision"))
        limit = (hub.get("max_rows") or {}).get(split)
        if limit:
            ds = ds.select(range(min(limit, len(ds))))
        splits[split] = [(r["translation"][src], r["translation"][tgt]) for r in ds]
    return splits


def read_raw_splits(prefixes, data, holdout=None, seed=0):
    """{split: pairs} from the raw files; with `holdout`, a test set `test_<name>` drawn from one
    training corpus (which then keeps the rest)."""
    from .corpus import hold_out, read_split

    lang = (data["src"], data["tgt"], data["encoding"])
    splits = {s: read_split(prefixes[s], *lang) for s in SPLITS if s != "train"}
    train = []
    for prefix in prefixes["train"]:
        pairs = read_split([prefix], *lang)
        if holdout and str(prefix) == str(holdout["prefix"]):
            splits[f"test_{holdout['name']}"], pairs = hold_out(pairs, holdout["size"], seed)
        train += pairs
    if holdout and f"test_{holdout['name']}" not in splits:
        raise ShrinkError(f"config key 'translation.data.holdout.prefix' ({holdout['prefix']}) is not one of "
                          "translation.data.splits.train")
    return {"train": train, **splits}


def clean(smk):
    from ..core.atomic import atomic_dir, write_json
    from .corpus import CleanConfig, clean_splits, write_pairs

    d = smk.params.data
    raw = {s: [str(p) for p in smk.params.prefixes[s]] for s in SPLITS}
    splits = read_raw_splits(raw, d, smk.params.holdout, smk.params.seed)
    cleaned, report = clean_splits(splits, CleanConfig.from_config(smk.params.clean))
    report["sources"] = {**raw, **({"holdout": smk.params.holdout} if smk.params.holdout else {})}
    with atomic_dir(smk.output.folder) as tmp:
        for s, pairs in cleaned.items():
            write_pairs(tmp, s, pairs, d["src"], d["tgt"])
    write_json(smk.output.report, report)
    for s in cleaned:
        r = report["splits"][s]
        dropped = {k: v for k, v in r["dropped"].items() if v}
        print(f"{s}: {r['read']} pairs in, {r['kept']} kept; dropped {dropped or 'none'}")


def _read_clean(folder, split, d):
    from .corpus import read_pairs

    return read_pairs(Path(folder) / split, d["src"], d["tgt"])


def vocab(smk):
    from .vocab import save_vocab, train_vocab

    d, v = smk.params.data, smk.params.vocab
    pairs = _read_clean(smk.input.folder, "train", d)  # the train split only
    tok = train_vocab((s for pair in pairs for s in pair), v["size"], v["kind"], v["min_frequency"])
    save_vocab(tok, smk.output[0])
    print(f"{v['kind']} vocabulary of {tok.get_vocab_size()} entries from {len(pairs)} train pairs")


def tokenize(smk):
    from .shards import TokenizedPairs
    from .vocab import encode, load_vocab

    d, max_tokens = smk.params.data, smk.params.vocab["max_tokens"]
    tok = load_vocab(smk.input.vocab)
    for split in smk.params.splits:
        pairs = _read_clean(smk.input.folder, split, d)
        src, tgt = [p[0] for p in pairs], [p[1] for p in pairs]
        # Training pairs are truncated to the model's budget; evaluation keeps whole references as text.
        shard = TokenizedPairs(encode(tok, src, max_tokens), encode(tok, tgt, max_tokens), src, tgt)
        shard.save(smk.output[split])
        n = sum(map(len, shard.src)) + sum(map(len, shard.tgt))
        print(f"{split}: {len(shard)} pairs, {n} tokens ({n / max(1, len(shard)):.1f} per pair)")


def _load_data(smk, splits=("train", "validation")):
    from .shards import TokenizedPairs
    from .vocab import load_vocab

    return load_vocab(smk.input.vocab), [TokenizedPairs.load(smk.input[s]) for s in splits]


def train_teacher(smk):
    set_threads(smk)
    from .model import Seq2Seq, Seq2SeqConfig, save_seq2seq
    from .train import (
        Seq2SeqTrainConfig,
        TranslationLoss,
        seed_everything,
        train_seq2seq,
        write_logs,
    )

    tok, (train, val) = _load_data(smk)
    cfg = Seq2SeqTrainConfig.from_dict(dict(smk.params.train), seed=smk.params.seed)
    seed_everything(cfg.seed)
    model = Seq2Seq(Seq2SeqConfig.from_dict(dict(smk.params.model), vocab_size=tok.get_vocab_size()))
    print(f"teacher: {model.num_parameters():,} parameters, {len(train)} train pairs", flush=True)
    objective = TranslationLoss(model, cfg.label_smoothing)
    rows, evals, _ = train_seq2seq(model, objective, train, val, tok, cfg, smk.params.checkpoints)
    save_seq2seq(model, smk.output.model, extra={"trained_precision": cfg.precision})
    write_logs(rows, evals, None, smk.output.steps, smk.output.evals)


def frozen_checksums(model):
    """{group: sha256 hex} of the model's state-dict tensors, a digest per group: `decoder` (every
    decoder.* tensor, the tied embedding included), `encoder_self_attn` (the q/k/v/out weights export
    reshapes) and `encoder_other` (the rest). A group's digest hashes, for each tensor in name order,
    the line "<name> <dtype> <shape> <sha256 of its raw bytes>\n"; tests recompute it from the saved files."""
    import hashlib
    import re

    import torch

    lines = {"decoder": [], "encoder_self_attn": [], "encoder_other": []}
    for name, t in sorted(model.state_dict().items()):
        group = ("decoder" if name.startswith("decoder.") else
                 "encoder_self_attn" if re.match(r"encoder\.layers\.\d+\.self_attn\.", name) else "encoder_other")
        raw = t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        lines[group].append(f"{name} {t.dtype} {list(t.shape)} {hashlib.sha256(raw).hexdigest()}\n")
    return {g: hashlib.sha256("".join(rows).encode()).hexdigest() for g, rows in lines.items()}


def prune(smk):
    set_threads(smk)
    import hashlib

    import torch

    from ..core.atomic import write_json
    from .model import MODEL_FILE, load_seq2seq, save_seq2seq
    from .prune import EncoderHeadGates, assert_unchanged, snapshot
    from .train import Seq2SeqTrainConfig, train_seq2seq, write_logs

    p = smk.params.prune
    tok, (train, val) = _load_data(smk)
    cfg = Seq2SeqTrainConfig.from_dict(dict(smk.params.train), seed=smk.params.seed,
                                       prefix="translation.prune.train")
    lam = float(smk.wildcards.lam)
    model = load_seq2seq(smk.input.model)
    frozen = snapshot(model)
    checksum_before = frozen_checksums(model)
    objective = EncoderHeadGates(model, lam, p["init_open"], cfg.label_smoothing)
    torch.manual_seed(cfg.seed)
    groups = [{"params": list(objective.gates.parameters()), "lr": p["gate_lr"], "weight_decay": 0.0}]
    # The teacher's weights join the checkpoint fingerprint: gates trained on an older teacher never resume.
    start = hashlib.sha256((Path(smk.input.model) / MODEL_FILE).read_bytes()).hexdigest()
    rows, evals, gates = train_seq2seq(model, objective, train, val, tok, cfg, smk.params.checkpoints,
                                       optimizer_groups=groups,
                                       fingerprint_extra={"lambda": lam, "teacher": start, **p})
    checked = assert_unchanged(model, frozen)  # the runtime proof: no frozen weight moved
    checksum_after = frozen_checksums(model)  # before export reshapes the encoder's self-attention
    keep = objective.export()
    save_seq2seq(model, smk.output.model, extra={"pruned_from": str(smk.input.model), "lambda": lam,
                                               "trained_precision": cfg.precision})
    write_logs(rows, evals, gates, smk.output.steps, smk.output.evals, smk.output.gates)
    kept = sum(map(len, keep.values()))
    write_json(smk.output.report, {"lambda": lam, "heads_kept": kept, "heads_total": objective.gates.log_alpha.numel(),
                                   "keep": {str(k): v for k, v in keep.items()},
                                   "frozen_parameters_checked": checked,
                                   "frozen_groups_changed": sorted(g for g in checksum_before
                                                                   if checksum_before[g] != checksum_after[g]),
                                   "frozen_checksum_before": checksum_before, "frozen_checksum_after": checksum_after})
    print(f"lambda {lam}: kept {kept} of {objective.gates.log_alpha.numel()} encoder heads {keep}; "
          f"{checked} frozen tensors verified unchanged", flush=True)


def _extra_tests(smk):
    """{name: TokenizedPairs} of the extra test sets (inputs named test_<name>)."""
    from .shards import TokenizedPairs

    return {k.removeprefix("test_"): TokenizedPairs.load(v) for k, v in smk.input.items() if k.startswith("test_")}


def _print_scores(name, m):
    sets = {"test": m["test"], **m.get("other_tests", {})}
    if "validation" in m:
        sets["validation"] = m["validation"]
    print(f"{name}: " + "; ".join(f"{s}: " + ", ".join(f"{k} BLEU {v['bleu']:.2f} chrF {v['chrf']:.2f}"
                                                      for k, v in scores.items())
                                  for s, scores in sets.items()), flush=True)


def evaluate(smk):
    set_threads(smk)
    from ..core.atomic import write_json
    from ..core.precision import machine
    from .evaluate import evaluate_translation, test_scores
    from .model import CONFIG_FILE, load_seq2seq

    e = smk.params.evaluate
    # validation: greedy scores only, the split the report chooses on (the test split is only shown)
    tok, (test, val) = _load_data(smk, ("test", "validation"))
    model = load_seq2seq(smk.input.model)
    m = evaluate_translation(model, tok, test, smk.input.model, beams=e["beams"], batch_size=e["batch_size"],
                             latency_sentences=e["latency_sentences"], samples=e["samples"], threads=smk.threads,
                             validation=val)
    other = {name: test_scores(model, tok, data, e["beams"], e["batch_size"]) for name, data in _extra_tests(smk).items()}
    m = {"model": smk.wildcards.model, **m, **({"other_tests": other} if other else {})}
    # decoding runs in fp32; the weights' training precision is what the training step recorded
    trained = json.loads((Path(smk.input.model) / CONFIG_FILE).read_text()).get("trained_precision")
    m.update(precision={"evaluate": "fp32", "train": trained}, machine=machine())
    write_json(smk.output[0], m)
    _print_scores(smk.wildcards.model, m)


def baseline(smk):
    from ..core.atomic import write_json
    from .evaluate import copy_baseline
    from .shards import TokenizedPairs

    other = {name: copy_baseline(data)["test"] for name, data in _extra_tests(smk).items()}
    m = {"model": "copy_source", **copy_baseline(TokenizedPairs.load(smk.input.test)),
         **({"other_tests": other} if other else {})}
    write_json(smk.output[0], m)
    _print_scores("copy-the-source", m)


def summary(smk):
    from .report import write_samples, write_summary

    df = write_summary(list(smk.input.metrics), list(smk.input.prune_reports), smk.output.csv, smk.output.md)
    write_samples(list(smk.input.metrics), smk.output.samples)
    print(df.to_string(index=False))


def plot(smk):
    from . import report

    kind = smk.params.kind
    if kind not in report.PLOTS:
        raise ShrinkError(f"unknown translation plot kind {kind!r}")
    report.PLOTS[kind](smk)


# rule name -> job (shrink.core.harness.run_job; tests/test_jobs.py checks both sides)
JOBS = {"tr_get_raw": get_raw, "tr_clean": clean, "tr_vocab": vocab, "tr_tokenize": tokenize,
         "tr_train_teacher": train_teacher, "tr_prune": prune, "tr_evaluate": evaluate,
         "tr_copy_baseline": baseline, "tr_summary": summary, "tr_plot": plot}
