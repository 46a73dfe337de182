"""The NER task's jobs: one function per rule (JOBS), each adapting the `snakemake` object to the package.

Heavy libraries are imported inside each job, so the plot and table jobs start in about a second
without torch.
"""

from ..core.errors import ShrinkError
from ..core.harness import launch_job, set_threads
from ..core.splits import SPLITS
from .train_settings import SPEED_ONLY


def _train_settings(smk):
    """The rule's train params plus the speed-only train settings, which the rules leave out of their params
    (shrink.ner.train_settings.SPEED_ONLY) and the job reads from the config."""
    config = (getattr(smk, "config", None) or {}).get("train") or {}
    return {**smk.params.train, **{k: config[k] for k in SPEED_ONLY if k in config}}


def _launch(smk, fn, trains=True, **kwargs):
    """A training job runs in train.processes worker processes; the others in this one."""
    from .train import resolve_device

    train = dict(smk.params.train)
    processes = train.get("processes", 1) if trains else 1
    launch_job(smk, fn, processes, resolve_device(train.get("device", "cpu")) == "cuda", **kwargs)


def get_raw(smk):
    from .sources import fetch_hub
    from .synthetic import write_corpus

    source = smk.params.source
    out = {s: smk.output[s] for s in SPLITS}
    if source == "hub":
        fetch_hub(smk.params.hub_name, out, smk.params.hub_revision, dict(smk.params.hub_columns))
    elif source == "synthetic":
        import shutil
        import tempfile
        from pathlib import Path

        from ..core.atomic import atomic_path

        with tempfile.TemporaryDirectory() as tmp:
            write_corpus(tmp, dict(smk.params.synthetic["sizes"]), smk.params.seed)
            for s in SPLITS:
                with atomic_path(out[s]) as dst:
                    shutil.copyfile(Path(tmp, f"{s}.txt"), dst)  # a rename fails when /tmp is another disk
    else:
        raise ShrinkError(f"get_raw_data has nothing to do for source {source!r}")


def clean(smk):
    from ..core.atomic import atomic_path, write_json
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
        print(f"{s}: {r['file']} ({r['encoding']}, {r['encoding_from']}): {r['rows_in']} sentences in, "
              f"{len(splits[s])} out, longest {r['longest_sentence']['tokens']} tokens; dropped {r['dropped'] or 'none'}")
    print(f"labels: {labels}; leakage: {report['leakage']}")


def tokenize(smk):
    from ..core.encoders import resolve_source
    from .tokens import tokenize_corpus

    cfg = smk.params.tokenize
    _, tok_source = resolve_source(smk.params.teacher)
    report = tokenize_corpus({s: smk.input[s] for s in SPLITS}, smk.input.labels, tok_source, smk.output[0],
                             max_length=cfg["max_length"], label_all_tokens=cfg["label_all_tokens"],
                             num_shards=cfg["num_shards"], stride=cfg["stride"])
    for s, r in report["splits"].items():
        print(f"tokenized {s}: {r['sentences']} sentences in {r['windows']} windows, "
              f"{r['long_sentences']} longer than {cfg['max_length']} word pieces (longest {r['longest_word_pieces']})")


def train(smk):
    _launch(smk, _train_teacher, data=str(smk.input.data), train=_train_settings(smk),
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
    set_threads(smk)
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


def plot_training_curve(smk):
    from . import plots

    kind = smk.params.kind
    if kind not in ("loss", "lr", "val_f1"):
        raise ShrinkError(f"unknown training-curve figure {kind!r} (loss, lr, val_f1)")
    getattr(plots, f"plot_{kind}")(smk.input.logs, smk.output[0])


def plot_per_type_f1(smk):
    from .plots import plot_per_type_f1

    plot_per_type_f1(smk.input.metrics, smk.output[0])


def teacher_logits(smk):
    set_threads(smk)
    from .compress import cache_teacher_logits

    cache_teacher_logits(smk.input.model, smk.input.data, smk.output[0])


def compress_step(smk):
    from .recipes import METHODS

    def path(p):
        return None if p is None else str(p)

    out = {k: str(smk.output[k]) for k in ("model", "report", "steps", "epochs", "extra")
           if k in smk.output.keys()}
    _launch(smk, _compress_step, trains=METHODS[smk.params.method].trains,
            method=smk.params.method, params=dict(smk.params.step), data=str(smk.input.data), out=out,
            parent=path(smk.input.get("parent")), teacher=dict(smk.params.teacher), train_cfg=_train_settings(smk),
            seed=smk.params.seed, checkpoints=str(smk.params.checkpoints), teacher_model=path(smk.input.get("teacher")),
            teacher_logits=path(smk.input.get("logits")), key=smk.params.key,
            # a validation gate, not a setting of the result: read from the config, so changing it reruns nothing
            student_budget=(smk.config.get("compress") or {}).get("student_budget"))


def _compress_step(**ctx):
    from .compress import StepContext, run_step

    run_step(StepContext(**ctx))


def plot_pareto(smk):
    from .compression_plots import plot_pareto

    plot_pareto(list(smk.input.metrics), smk.wildcards.axis, smk.output[0], teacher=smk.params.teacher)


def plot_pruning(smk):
    from .compression_plots import plot_pruning

    plot_pruning(list(smk.input.metrics), smk.output[0], teacher_metrics=smk.input.teacher)


def plot_heads_f1(smk):
    from .compression_plots import plot_heads_f1

    plot_heads_f1(list(smk.input.metrics), smk.output[0], teacher_metrics=smk.input.teacher)


def plot_compress_losses(smk):
    from .compression_plots import plot_losses

    plot_losses(list(smk.input.logs), list(smk.params.labels), smk.output[0])


def plot_gates(smk):
    """Gate probabilities of one gate-training step: curves (.png) or an animation (.gif)."""
    from ..methods.gate_plots import gate_gif, plot_gate_curves

    draw = gate_gif if str(smk.output[0]).endswith(".gif") else plot_gate_curves
    draw(smk.input.gates, smk.output[0], title=smk.params.title)


def deploy_model(smk):
    set_threads(smk)
    from .deploy import deploy_model as deploy

    deploy(smk.input.model, smk.input.data, smk.output[0], smk.wildcards.model, dict(smk.params.deploy),
           eval_cfg=dict(smk.params.evaluate), threads=smk.threads)


def deployment_table(smk):
    from pathlib import Path

    from .deploy import RECORD
    from .deployment_table import plot_deployment, write_deployment

    records = [Path(d) / RECORD for d in smk.input.records]
    df, _ = write_deployment(records, smk.output.csv, smk.output.md, teacher=smk.params.teacher,
                             keep=smk.params.keep)
    plot_deployment(records, smk.output.figure, teacher=smk.params.teacher)
    print(df.to_string(index=False))


def _jobs():
    from .recipes import METHODS

    jobs = {"get_raw_data": get_raw, "clean_data": clean, "tokenize": tokenize, "train_teacher": train,
            "teacher_logits": teacher_logits, "evaluate": evaluate, "summary_table": summary,
            "plot_training_curve": plot_training_curve, "plot_per_type_f1": plot_per_type_f1,
            "plot_pareto": plot_pareto, "plot_pruning": plot_pruning, "plot_heads_f1": plot_heads_f1,
            "plot_compress_losses": plot_compress_losses, "plot_gates": plot_gates,
            "deploy_model": deploy_model, "deployment_table": deployment_table}
    # one rule per compression method, named after it (rules/compress.smk)
    return {**jobs, **{method: compress_step for method in METHODS}}


# rule name -> job (shrink.core.harness.run_job; tests/test_jobs.py checks both sides)
JOBS = _jobs()
