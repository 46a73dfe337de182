"""Pipeline steps as called by the workflow scripts: each adapts the `snakemake` object to the package.

Heavy libraries are imported inside each step, so the plot and table steps start in
about a second without torch.
"""

import contextlib
import functools
import os
import sys
import traceback

from . import guard
from .atomic import storage_fault
from .errors import ShrinkError, StorageError

SPLITS = ("train", "validation", "test")


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for st in self.streams:
            st.write(s)
            st.flush()

    def flush(self):
        for st in self.streams:
            st.flush()

    def isatty(self):
        return False


@contextlib.contextmanager
def _logged(smk):
    """Copy stdout and stderr to the rule's log file while still showing them on the terminal."""
    if not smk.log:
        yield
        return
    try:
        # emptied, then appended to: a training worker (train.processes > 1) appends to the same file,
        # and writes at this process's own offset would overwrite its lines
        log = open(smk.log[0], "a", encoding="utf-8")
        log.truncate(0)
    except OSError as e:  # e.g. a read-only or full results folder: say so, not a traceback
        raise storage_fault(e, smk.log[0]) or e
    with log:
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(out, log), _Tee(err, log)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = out, err


def run(step, smk):
    """Run a step; bad input, a full or read-only disk, or a job outgrowing its memory or time
    request (shrink.guard) ends the job with a one-line message instead of a traceback."""
    try:
        with _logged(smk):
            _run_guarded(step, smk)
    except StorageError as e:  # the log file itself could not be written
        _fail(smk, e)


def _run_guarded(step, smk):
    try:
        with guard.watch(smk.rule, getattr(smk, "resources", None)):
            step(smk)
    except guard.ResourceExceeded:
        sys.exit(1)  # the guard has printed which request to raise
    except ShrinkError as e:
        _fail(smk, e)
    except Exception:
        traceback.print_exc()
        raise


def _fail(smk, error):
    print(f"ERROR in rule {smk.rule}: {error}", file=sys.stderr)
    sys.exit(1)


def _threads(smk):
    import torch

    torch.set_num_threads(max(1, smk.threads))


def get_raw(smk):
    from .sources import fetch_hub
    from .synthetic import write_corpus

    source = smk.params.source
    out = {s: smk.output[s] for s in SPLITS}
    if source == "hub":
        fetch_hub(smk.params.hub_name, out, smk.params.hub_revision)
    elif source == "synthetic":
        import shutil
        import tempfile
        from pathlib import Path

        from .atomic import atomic_path

        with tempfile.TemporaryDirectory() as tmp:
            write_corpus(tmp, dict(smk.params.synthetic["sizes"]), smk.params.seed)
            for s in SPLITS:
                with atomic_path(out[s]) as dst:
                    shutil.copyfile(Path(tmp, f"{s}.txt"), dst)  # a rename fails when /tmp is another disk
    else:
        raise ShrinkError(f"get_raw_data has nothing to do for source {source!r}")


def clean(smk):
    from .atomic import atomic_path, write_json
    from .cleaning import Filters, clean_corpus, subsample
    from .conll import write_conll

    cfg = smk.params.data
    splits, labels, report = clean_corpus(
        {s: smk.input[s] for s in SPLITS}, encoding=cfg["encoding"], tag_scheme=cfg["tag_scheme"],
        on_malformed=cfg["on_malformed"], filters=Filters.from_config(cfg.get("filters")))
    for split, n in (cfg.get("max_sentences") or {}).items():
        if n and len(splits[split]) > n:
            splits[split] = subsample(splits[split], n, smk.params.seed)
            report["splits"][split]["subsampled_to"] = n
    for s in SPLITS:
        with atomic_path(smk.output[s]) as tmp:
            write_conll(splits[s], tmp)
    write_json(smk.output.labels, labels)
    write_json(smk.output.report, report)
    for s in SPLITS:
        r = report["splits"][s]
        print(f"{s}: {r['rows_in']} sentences in, {len(splits[s])} out; dropped {r['dropped'] or 'none'}")
    print(f"labels: {labels}; leakage: {report['leakage']}")


def tokenize(smk):
    from .models import resolve_source
    from .tokens import tokenize_corpus

    cfg = smk.params.tokenize
    _, tok_source = resolve_source(smk.params.teacher)
    sizes = tokenize_corpus({s: smk.input[s] for s in SPLITS}, smk.input.labels, tok_source, smk.output[0],
                            max_length=cfg["max_length"], label_all_tokens=cfg["label_all_tokens"],
                            num_shards=cfg["num_shards"])
    print(f"tokenized: {sizes}")


def _launch(smk, fn, trains=True, **kwargs):
    """Run `fn(**kwargs)` here, or for a training step with train.processes > 1 in that many worker
    processes (shrink.distributed), which get plain values: the snakemake object stays here."""
    from .distributed import launch
    from .train import resolve_device

    train = dict(smk.params.train)
    processes = train.get("processes", 1) if trains else 1
    if processes != 1 and smk.log:
        fn = functools.partial(_worker_output, fn, str(smk.log[0]))
    launch(fn, kwargs, processes, smk.threads, cuda=resolve_device(train.get("device", "cpu")) == "cuda")


def _worker_output(fn, log, **kwargs):
    """A training worker's output: rank 0 copies it to the rule's log as `_logged` does here (a spawned
    process starts without this process's tee); the others hold the same state and stay quiet."""
    from .distributed import is_main

    if not is_main():
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            return fn(**kwargs)
    with open(log, "a", encoding="utf-8") as f:
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(out, f), _Tee(err, f)
        try:
            return fn(**kwargs)
        finally:
            sys.stdout, sys.stderr = out, err


def train(smk):
    _launch(smk, _train_teacher, data=str(smk.input.data), train=dict(smk.params.train),
            teacher=dict(smk.params.teacher), seed=smk.params.seed, out=str(smk.output.model),
            steps_csv=str(smk.output.steps), epochs_csv=str(smk.output.epochs),
            checkpoints=str(smk.params.checkpoints))


def _train_teacher(data, train, teacher, seed, out, steps_csv, epochs_csv, checkpoints):
    from .evaluate import load_tokenized
    from .models import build_token_classifier
    from .train import TrainConfig, train_token_classifier

    cfg = TrainConfig.from_dict(train, seed=seed)
    dd, tok, labels = load_tokenized(data)
    model = build_token_classifier(teacher, labels, len(tok), cfg.seed)
    train_token_classifier(model, tok, dd["train"], dd["validation"], labels, cfg, out, steps_csv, epochs_csv,
                           checkpoints, model_cfg=teacher)


def evaluate(smk):
    _threads(smk)
    from .evaluate import evaluate_model

    r = evaluate_model(smk.input.model, smk.input.data, smk.output[0], smk.wildcards.model,
                       eval_cfg=dict(smk.params.evaluate), config=smk.params.config, seed=smk.params.seed,
                       variant=dict(smk.params.variant))
    print(f"{smk.wildcards.model}: validation F1 {r['validation']['f1']:.4f}, test F1 {r['test']['f1']:.4f}, "
          f"{r['parameters']['total']:,} parameters")


def summary(smk):
    from .tables import write_summary

    df = write_summary(list(smk.input.metrics), smk.output.csv, smk.output.md, teacher=smk.params.teacher)
    print(df.to_string(index=False))


def plot(smk):
    kind = smk.params.kind
    if kind not in PLOTS:
        raise ShrinkError(f"unknown plot kind {kind!r}")
    PLOTS[kind](smk)


def _training_curve(name):
    def draw(smk):
        from . import plots

        getattr(plots, f"plot_{name}")(smk.input.logs, smk.output[0])
    return draw


def _per_type_f1(smk):
    from .plots import plot_per_type_f1

    plot_per_type_f1(smk.input.metrics, smk.output[0])


def teacher_logits(smk):
    _threads(smk)
    from .compress import cache_teacher_logits

    cache_teacher_logits(smk.input.model, smk.input.data, smk.output[0])


def compress_step(smk):
    from .recipes import METHODS

    def path(p):
        return None if p is None else str(p)

    out = {k: str(smk.output[k]) for k in ("model", "report", "steps", "epochs", "extra")
           if k in smk.output.keys()}
    _launch(smk, _compress_step, trains=METHODS[smk.params.method][1],
            method=smk.params.method, params=dict(smk.params.step), data=str(smk.input.data), out=out,
            parent=path(smk.input.get("parent")), teacher=dict(smk.params.teacher), train_cfg=dict(smk.params.train),
            seed=smk.params.seed, checkpoints=str(smk.params.checkpoints), teacher_model=path(smk.input.get("teacher")),
            teacher_logits=path(smk.input.get("logits")), key=smk.params.key,
            # a validation gate, not a setting of the result: read from the config, so changing it reruns nothing
            student_budget=(smk.config.get("compress") or {}).get("student_budget"))


def _compress_step(**ctx):
    from .compress import StepContext, run_step

    run_step(StepContext(**ctx))


def _pareto(smk):
    from .compression_plots import plot_pareto

    plot_pareto(list(smk.input.metrics), smk.wildcards.axis, smk.output[0], teacher=smk.params.teacher)


def _pruning(smk):
    from .compression_plots import plot_pruning

    plot_pruning(list(smk.input.metrics), smk.output[0], teacher_metrics=smk.input.teacher)


def _heads_f1(smk):
    from .compression_plots import plot_heads_f1

    plot_heads_f1(list(smk.input.metrics), smk.output[0], teacher_metrics=smk.input.teacher)


def _losses(smk):
    from .compression_plots import plot_losses

    plot_losses(list(smk.input.logs), list(smk.params.labels), smk.output[0])


def _gate_curves(smk):
    from .compression_plots import plot_gate_curves

    plot_gate_curves(smk.input.gates, smk.output[0], title=smk.params.title)


def _gate_gif(smk):
    from .compression_plots import gate_gif

    gate_gif(smk.input.gates, smk.output[0], title=smk.params.title)


PLOTS = {"loss": _training_curve("loss"), "lr": _training_curve("lr"), "val_f1": _training_curve("val_f1"),
         "per_type_f1": _per_type_f1, "pareto": _pareto, "pruning": _pruning, "heads_f1": _heads_f1, "compress_losses": _losses,
         "gate_curves": _gate_curves, "gate_gif": _gate_gif}
