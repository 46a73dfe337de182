# Translation task (config `task: translation`): parallel corpus -> cleaned pairs -> joint subword
# vocabulary -> token shards -> teacher trained from scratch -> encoder-head pruning per lambda ->
# test metrics -> tables, curves, gate plots and GIFs. Every output lives under results/translation/.

TR = config.get("translation") or {}
TR_OUT = "results/translation"
TR_DATA = TR.get("data", {})
TR_LAMBDAS = [f"{lam:g}" for lam in TR.get("prune", {}).get("lambdas", [])]
TR_PRUNED = [f"heads_l{lam}" for lam in TR_LAMBDAS]
TR_MODELS = ["teacher"] + TR_PRUNED
TR_SCRIPT = "../workflow/scripts/translation.py"
TR_PACKAGE = PACKAGE_DIR / "translation"


def translation_source():
    """(source, folder): a local folder of .en/.ru files, or the Hub or a synthetic corpus."""
    from shrink.translation.steps import resolve_dir

    source = TR_DATA["source"]
    if source in ("hub", "synthetic"):
        return source, None
    try:
        folder = resolve_dir(TR_DATA.get("dir"))
    except ShrinkError as e:
        raise WorkflowError(str(e))
    if folder is None:
        if source == "local":
            raise WorkflowError(
                "config key 'translation.data.source' is local but neither translation.data.dir "
                "nor EN_RU_DIR is set"
            )
        return "hub", None
    return "local", folder


TR_SOURCE, TR_DIR = translation_source()


def tr_prefixes():
    """{split: [file prefix, ...]}: `<prefix>.<src>` and `<prefix>.<tgt>` hold a split's pairs."""
    if TR_SOURCE == "local":
        return {s: [str(TR_DIR / p) for p in TR_DATA["splits"][s]] for s in SPLITS}
    return {s: [f"{TR_OUT}/data/raw/{s}"] for s in SPLITS}


def tr_raw_files(wildcards):
    if TR_SOURCE != "local":
        return [f"{TR_OUT}/data/raw"]
    langs = (TR_DATA["src"], TR_DATA["tgt"])
    missing = [f"{p}.{lang}" for ps in tr_prefixes().values() for p in ps for lang in langs
               if not Path(f"{p}.{lang}").is_file()]
    if missing:
        raise WorkflowError(f"config key 'translation.data.splits' names files that do not exist: {missing[:3]}")
    return [f"{p}.{lang}" for ps in tr_prefixes().values() for p in ps for lang in langs]


def tr_train_settings(section):
    """translation.train, with a section's own overrides (e.g. prune.train) on top."""
    return {**TR["train"], **(TR.get(section, {}).get("train") or {})} if section else dict(TR["train"])


def tr_figures():
    figs = expand(f"{TR_OUT}/figures/teacher_{{kind}}.png", kind=["loss", "lr", "bleu"])
    figs += expand(f"{TR_OUT}/figures/{{model}}_{{kind}}.png", model=TR_PRUNED, kind=["loss", "bleu", "popen"])
    figs += expand(f"{TR_OUT}/figures/{{model}}_gates.gif", model=TR_PRUNED)
    if TR_PRUNED:
        figs.append(f"{TR_OUT}/figures/heads_bleu.png")
    return figs


def translation_targets():
    return [f"{TR_OUT}/tables/summary.csv", f"{TR_OUT}/tables/summary.md", f"{TR_OUT}/tables/samples.md"] + tr_figures()


if TR_SOURCE != "local":

    rule tr_get_raw:
        output:
            directory(f"{TR_OUT}/data/raw"),
        params:
            data=TR_DATA,
            seed=config["seed"],
        log:
            f"{TR_OUT}/logs/get_raw.log",
        threads: res("data", "threads")
        resources:
            mem_mb=res("data", "mem_mb"),
            runtime=res("data", "runtime"),
        conda:
            "../envs/translation.yaml"
        script:
            TR_SCRIPT


rule tr_clean:
    input:
        tr_raw_files,
    output:
        folder=directory(f"{TR_OUT}/data/clean"),
        report=report(
            f"{TR_OUT}/data/clean_report.json",
            caption="../report/translation_cleaning.rst",
            category="Translation",
        ),
    params:
        data={k: TR_DATA[k] for k in ("src", "tgt", "encoding")},
        prefixes=tr_prefixes(),
        clean=TR.get("clean", {}),
    log:
        f"{TR_OUT}/logs/clean.log",
    threads: res("data", "threads")
    resources:
        mem_mb=res("data", "mem_mb"),
        runtime=res("data", "runtime"),
    conda:
        "../envs/translation.yaml"
    script:
        TR_SCRIPT


rule tr_vocab:
    input:
        folder=f"{TR_OUT}/data/clean",
    output:
        f"{TR_OUT}/data/vocab.json",
    params:
        data={k: TR_DATA[k] for k in ("src", "tgt")},
        vocab=TR["vocab"],
    log:
        f"{TR_OUT}/logs/vocab.log",
    threads: res("data", "threads")
    resources:
        mem_mb=res("data", "mem_mb"),
        runtime=res("data", "runtime"),
    conda:
        "../envs/translation.yaml"
    script:
        TR_SCRIPT


rule tr_tokenize:
    input:
        folder=f"{TR_OUT}/data/clean",
        vocab=f"{TR_OUT}/data/vocab.json",
    output:
        **{s: f"{TR_OUT}/data/tokenized/{s}.npz" for s in SPLITS},
    params:
        data={k: TR_DATA[k] for k in ("src", "tgt")},
        vocab=TR["vocab"],
    log:
        f"{TR_OUT}/logs/tokenize.log",
    threads: res("data", "threads")
    resources:
        mem_mb=res("data", "mem_mb"),
        runtime=res("data", "runtime"),
    conda:
        "../envs/translation.yaml"
    script:
        TR_SCRIPT


TR_SHARDS = {s: f"{TR_OUT}/data/tokenized/{s}.npz" for s in ("train", "validation")}


rule tr_train_teacher:
    input:
        **TR_SHARDS,
        vocab=f"{TR_OUT}/data/vocab.json",
    output:
        model=directory(f"{TR_OUT}/models/teacher"),
        steps=f"{TR_OUT}/train/teacher/steps.csv",
        evals=f"{TR_OUT}/train/teacher/evals.csv",
    params:
        model=TR["model"],
        train=tr_train_settings(None),
        seed=config["seed"],
        checkpoints=f"{TR_OUT}/checkpoints/teacher",
    log:
        f"{TR_OUT}/logs/train_teacher.log",
    threads: res("train", "threads")
    resources:
        mem_mb=res("train", "mem_mb"),
        runtime=res("train", "runtime"),
        gpu=train_gpus(),
    conda:
        "../envs/translation.yaml"
    script:
        TR_SCRIPT


rule tr_prune:
    input:
        **TR_SHARDS,
        vocab=f"{TR_OUT}/data/vocab.json",
        model=f"{TR_OUT}/models/teacher",
    output:
        model=directory(f"{TR_OUT}/models/heads_l{{lam}}"),
        steps=f"{TR_OUT}/train/heads_l{{lam}}/steps.csv",
        evals=f"{TR_OUT}/train/heads_l{{lam}}/evals.csv",
        gates=f"{TR_OUT}/train/heads_l{{lam}}/gates.csv",
        report=f"{TR_OUT}/train/heads_l{{lam}}/prune.json",
    wildcard_constraints:
        lam="|".join(TR_LAMBDAS) or "none",
    params:
        prune={k: v for k, v in TR.get("prune", {}).items() if k not in ("lambdas", "train")},
        train=tr_train_settings("prune"),
        seed=config["seed"],
        checkpoints=f"{TR_OUT}/checkpoints/heads_l{{lam}}",
    log:
        f"{TR_OUT}/logs/prune_l{{lam}}.log",
    threads: res("train", "threads")
    resources:
        mem_mb=res("train", "mem_mb"),
        runtime=res("train", "runtime"),
        gpu=train_gpus(),
    conda:
        "../envs/translation.yaml"
    script:
        TR_SCRIPT


rule tr_evaluate:
    input:
        test=f"{TR_OUT}/data/tokenized/test.npz",
        vocab=f"{TR_OUT}/data/vocab.json",
        model=f"{TR_OUT}/models/{{model}}",
    output:
        f"{TR_OUT}/metrics/{{model}}.json",
    wildcard_constraints:
        model="|".join(TR_MODELS),
    params:
        evaluate=TR["evaluate"],
    log:
        f"{TR_OUT}/logs/evaluate_{{model}}.log",
    threads: res("evaluate", "threads")
    resources:
        mem_mb=res("evaluate", "mem_mb"),
        runtime=res("evaluate", "runtime"),
    conda:
        "../envs/translation.yaml"
    script:
        TR_SCRIPT


rule tr_copy_baseline:
    input:
        test=f"{TR_OUT}/data/tokenized/test.npz",
    output:
        f"{TR_OUT}/metrics/copy_source.json",
    log:
        f"{TR_OUT}/logs/copy_baseline.log",
    threads: res("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
    conda:
        "../envs/translation.yaml"
    script:
        TR_SCRIPT


TR_METRICS = expand(f"{TR_OUT}/metrics/{{model}}.json", model=TR_MODELS + ["copy_source"])
TR_REPORTS = expand(f"{TR_OUT}/train/{{model}}/prune.json", model=TR_PRUNED)


rule tr_summary:
    input:
        metrics=TR_METRICS,
        prune_reports=TR_REPORTS,
        teacher=f"{TR_OUT}/metrics/teacher.json",
        code=TR_PACKAGE / "report.py",
    output:
        csv=report(
            f"{TR_OUT}/tables/summary.csv",
            caption="../report/translation_summary.rst",
            category="Translation",
        ),
        md=f"{TR_OUT}/tables/summary.md",
        samples=report(
            f"{TR_OUT}/tables/samples.md",
            caption="../report/translation_samples.rst",
            category="Translation",
        ),
    log:
        f"{TR_OUT}/logs/summary.log",
    threads: res("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
    conda:
        "../envs/report.yaml"
    script:
        TR_SCRIPT


def tr_plot_inputs(wildcards):
    """Logs of one model for its curves; metrics and prune reports for the comparison figure."""
    code = {"code": [TR_PACKAGE / "report.py", PACKAGE_DIR / "compression_plots.py", PACKAGE_DIR / "plots.py"]}
    if wildcards.model == "heads":
        return {**code, "metrics": TR_METRICS, "prune_reports": TR_REPORTS}
    run = f"{TR_OUT}/train/{wildcards.model}"
    files = {"steps": f"{run}/steps.csv", "evals": f"{run}/evals.csv"}
    if wildcards.model != "teacher":
        files.update(gates=f"{run}/gates.csv", teacher_evals=f"{TR_OUT}/train/teacher/evals.csv")
    return {**code, **files}


rule tr_plot:
    input:
        unpack(tr_plot_inputs),
    output:
        report(
            f"{TR_OUT}/figures/{{model}}_{{kind}}.{{ext}}",
            caption="../report/translation_figure.rst",
            category="Translation",
            labels={"model": "{model}", "figure": "{kind}"},
        ),
    wildcard_constraints:
        model="|".join(TR_MODELS + ["heads"]),
        kind="loss|lr|bleu|popen|gates",
        ext="png|gif",
    params:
        kind=lambda wc: "gif" if wc.ext == "gif" else ("heads_bleu" if wc.model == "heads" else wc.kind),
        title=lambda wc: wc.model if wc.model == "teacher" else f"lambda={wc.model.removeprefix('heads_l')}",
    log:
        f"{TR_OUT}/logs/plot_{{model}}_{{kind}}_{{ext}}.log",
    threads: res("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
    conda:
        "../envs/report.yaml"
    script:
        TR_SCRIPT
