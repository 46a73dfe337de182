# Translation task (config `task: translation`): parallel corpus -> cleaned pairs -> joint subword
# vocabulary -> token shards -> teacher trained from scratch -> encoder-head pruning per lambda ->
# validation and test metrics -> tables, curves, gate plots and GIFs. Every output lives under
# results/translation/; settings and input functions are in translation_common.smk.


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
            **group_resources("data"),
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
        holdout=TR_HOLDOUT,
        seed=config["seed"],
        clean=TR.get("clean", {}),
    log:
        f"{TR_OUT}/logs/clean.log",
    threads: res("data", "threads")
    resources:
        **group_resources("data"),
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
        **group_resources("data"),
    conda:
        "../envs/translation.yaml"
    script:
        TR_SCRIPT


rule tr_tokenize:
    input:
        folder=f"{TR_OUT}/data/clean",
        vocab=f"{TR_OUT}/data/vocab.json",
    output:
        **{s: f"{TR_OUT}/data/tokenized/{s}.npz" for s in TR_SPLITS},
    params:
        splits=TR_SPLITS,
        data={k: TR_DATA[k] for k in ("src", "tgt")},
        vocab=TR["vocab"],
    log:
        f"{TR_OUT}/logs/tokenize.log",
    threads: res("data", "threads")
    resources:
        **group_resources("data"),
    conda:
        "../envs/translation.yaml"
    script:
        TR_SCRIPT



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
        **group_resources("train"),
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
        **group_resources("train"),
        gpu=train_gpus(),
    conda:
        "../envs/translation.yaml"
    script:
        TR_SCRIPT


rule tr_evaluate:
    input:
        **TR_TEST_SHARDS,
        # greedy BLEU/chrF on validation: the split tr_summary chooses on (test is only shown)
        validation=TR_SHARDS["validation"],
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
        **group_resources("evaluate"),
    conda:
        "../envs/translation.yaml"
    script:
        TR_SCRIPT


rule tr_copy_baseline:
    input:
        **TR_TEST_SHARDS,
    output:
        f"{TR_OUT}/metrics/copy_source.json",
    log:
        f"{TR_OUT}/logs/copy_baseline.log",
    threads: res("default", "threads")
    resources:
        **group_resources("default"),
    conda:
        "../envs/translation.yaml"
    script:
        TR_SCRIPT



rule tr_summary:
    input:
        metrics=TR_METRICS,
        prune_reports=TR_REPORTS,
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
        **group_resources("default"),
    conda:
        "../envs/report.yaml"
    script:
        TR_SCRIPT


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
        **group_resources("default"),
    conda:
        "../envs/report.yaml"
    script:
        TR_SCRIPT
