# Language-model task (config `task: lm`): raw books/rows -> cleaned text with a per-filter report ->
# tokenizers -> token shards -> one training job per (tokenizer, architecture) -> validation
# perplexity, bits/char, speed and samples -> sorting and ARC-Easy per architecture -> tables, curves
# and a report section. Every output lives under results/lm/; settings are in lm_common.smk.


if LM_SOURCE == "synthetic":

    rule lm_get_raw:
        output:
            directory(f"{LM_OUT}/data/raw"),
        params:
            synthetic=LM["data"].get("synthetic", {}),
            seed=config["seed"],
        log:
            f"{LM_OUT}/logs/get_raw.log",
        threads: res("data", "threads")
        resources:
            **group_resources("data"),
        conda:
            "../envs/lm.yaml"
        script:
            LM_SCRIPT


if ARC_SOURCE == "synthetic":

    rule lm_get_arc:
        output:
            directory(f"{LM_OUT}/data/arc_raw"),
        params:
            seed=config["seed"],
        log:
            f"{LM_OUT}/logs/get_arc.log",
        threads: res("data", "threads")
        resources:
            **group_resources("data"),
        conda:
            "../envs/lm.yaml"
        script:
            LM_SCRIPT


rule lm_clean:
    input:
        lm_raw_files,
    output:
        train=f"{LM_OUT}/data/clean/train.jsonl",
        validation=f"{LM_OUT}/data/clean/validation.jsonl",
        report=report(f"{LM_OUT}/data/clean_report.json", caption="../report/lm_cleaning.rst", category="Language models"),
    params:
        data=LM["data"],
        clean=LM["clean"],
        seed=config["seed"],
    log:
        f"{LM_OUT}/logs/clean.log",
    threads: res("data", "threads")
    resources:
        **group_resources("data"),
    conda:
        "../envs/lm.yaml"
    script:
        LM_SCRIPT


rule lm_tokenizer:
    input:
        train=f"{LM_OUT}/data/clean/train.jsonl",
    output:
        f"{LM_OUT}/tokenizers/{{tok}}.json",
    params:
        spec=lambda wc: LM["tokenizers"][wc.tok],
    log:
        f"{LM_OUT}/logs/tokenizer_{{tok}}.log",
    threads: res("data", "threads")
    resources:
        **group_resources("data"),
    conda:
        "../envs/lm.yaml"
    script:
        LM_SCRIPT


rule lm_tokenize:
    input:
        train=f"{LM_OUT}/data/clean/train.jsonl",
        validation=f"{LM_OUT}/data/clean/validation.jsonl",
        tokenizer=f"{LM_OUT}/tokenizers/{{tok}}.json",
    output:
        train=f"{LM_OUT}/data/{{tok}}/train.npy",
        validation=f"{LM_OUT}/data/{{tok}}/validation.npy",
        stats=f"{LM_OUT}/data/{{tok}}/stats.json",
    log:
        f"{LM_OUT}/logs/tokenize_{{tok}}.log",
    threads: res("data", "threads")
    resources:
        **group_resources("data"),
    conda:
        "../envs/lm.yaml"
    script:
        LM_SCRIPT


rule lm_train:
    input:
        train=f"{LM_OUT}/data/{{tok}}/train.npy",
        validation=f"{LM_OUT}/data/{{tok}}/validation.npy",
        stats=f"{LM_OUT}/data/{{tok}}/stats.json",
    output:
        model=f"{LM_OUT}/models/{{tok}}/{{arch}}.pt",
        steps=f"{LM_OUT}/train/{{tok}}/{{arch}}/steps.csv",
        evals=f"{LM_OUT}/train/{{tok}}/{{arch}}/evals.csv",
        summary=f"{LM_OUT}/train/{{tok}}/{{arch}}/train.json",
    wildcard_constraints:
        arch="|".join(LM_ARCHS),
    params:
        arch_settings=lambda wc: LM["archs"][wc.arch],
        budget=LM["budget"],
        train=LM["train"],
        seed=config["seed"],
        checkpoint=f"{LM_OUT}/checkpoints/{{tok}}/{{arch}}.pt",
    log:
        f"{LM_OUT}/logs/train_{{tok}}_{{arch}}.log",
    threads: res("train", "threads")
    resources:
        **group_resources("train"),
        gpu=lm_gpus(),
    conda:
        "../envs/lm.yaml"
    script:
        LM_SCRIPT


rule lm_evaluate:
    input:
        model=f"{LM_OUT}/models/{{tok}}/{{arch}}.pt",
        validation=f"{LM_OUT}/data/{{tok}}/validation.npy",
        stats=f"{LM_OUT}/data/{{tok}}/stats.json",
        tokenizer=f"{LM_OUT}/tokenizers/{{tok}}.json",
        summary=f"{LM_OUT}/train/{{tok}}/{{arch}}/train.json",
    output:
        metrics=f"{LM_OUT}/metrics/{{tok}}/{{arch}}.json",
        samples=f"{LM_OUT}/samples/{{tok}}/{{arch}}.json",
    params:
        generate=LM["generate"],
        seed=config["seed"],
    log:
        f"{LM_OUT}/logs/evaluate_{{tok}}_{{arch}}.log",
    threads: res("evaluate", "threads")
    resources:
        **group_resources("evaluate"),
    conda:
        "../envs/lm.yaml"
    script:
        LM_SCRIPT


rule lm_sorting:
    output:
        result=f"{LM_OUT}/sorting/{{arch}}.json",
        steps=f"{LM_OUT}/sorting/{{arch}}_steps.csv",
    wildcard_constraints:
        arch="|".join(LM_ARCHS),
    params:
        arch_settings=lambda wc: LM["archs"][wc.arch],
        sorting=LM.get("sorting"),
        seed=config["seed"],
    log:
        f"{LM_OUT}/logs/sorting_{{arch}}.log",
    threads: res("train", "threads")
    resources:
        **group_resources("train"),
        gpu=lm_gpus(),
    conda:
        "../envs/lm.yaml"
    script:
        LM_SCRIPT


rule lm_arc:
    input:
        arc=arc_files,
        model=f"{LM_OUT}/models/{LM_TOK}/{{arch}}.pt",
        tokenizer=f"{LM_OUT}/tokenizers/{LM_TOK}.json",
    output:
        result=f"{LM_OUT}/arc/{{arch}}.json",
        steps=f"{LM_OUT}/arc/{{arch}}_finetune.csv",
    wildcard_constraints:
        arch="|".join(LM_ARCHS),
    params:
        arc=LM.get("arc"),
        seed=config["seed"],
    log:
        f"{LM_OUT}/logs/arc_{{arch}}.log",
    threads: res("train", "threads")
    resources:
        **group_resources("train"),
        gpu=lm_gpus(),
    conda:
        "../envs/lm.yaml"
    script:
        LM_SCRIPT


rule lm_tables:
    input:
        unpack(lm_table_inputs),
    output:
        **{f"{name}_{ext}": f"{LM_OUT}/tables/{name}.{ext}" for name in ("architectures", "tokenizers", "cleaning")
           for ext in ("csv", "md")},
        **({f"sorting_{ext}": f"{LM_OUT}/tables/sorting.{ext}" for ext in ("csv", "md")} if LM.get("sorting") else {}),
        **({f"arc_{ext}": f"{LM_OUT}/tables/arc.{ext}" for ext in ("csv", "md")} if ARC_SOURCE else {}),
        samples=f"{LM_OUT}/tables/samples.md",
    params:
        main=LM_TOK,
        archs=LM_ARCHS,
        runs=LM_RUNS,
    log:
        f"{LM_OUT}/logs/tables.log",
    threads: res("default", "threads")
    resources:
        **group_resources("default"),
    conda:
        "../envs/report.yaml"
    script:
        LM_SCRIPT


rule lm_plots:
    input:
        evals=[f"{LM_OUT}/train/{t}/{a}/evals.csv" for t, a in LM_RUNS],
        steps=[f"{LM_OUT}/train/{t}/{a}/steps.csv" for t, a in LM_RUNS],
        tokenizers=f"{LM_OUT}/tables/tokenizers.csv",
        sorting=expand(f"{LM_OUT}/sorting/{{arch}}.json", arch=LM_ARCHS) if LM.get("sorting") else [],
        code=[LM_PACKAGE / "report.py", FIGURES_MODULE],
    output:
        **{fig: report(f"{LM_OUT}/figures/{fig}.png", caption="../report/lm_figure.rst", category="Language models")
           for fig in ["loss_vs_steps", "loss_vs_time", "lr", "tokenizers"]
           + (["sorting_by_length", "sorting_by_position"] if LM.get("sorting") else [])},
    params:
        main=LM_TOK,
        runs=LM_RUNS,
    log:
        f"{LM_OUT}/logs/plots.log",
    threads: res("default", "threads")
    resources:
        **group_resources("default"),
    conda:
        "../envs/report.yaml"
    script:
        LM_SCRIPT


rule lm_report:
    input:
        tables=[t for t in lm_targets() if "/tables/" in t],
        figures=[t for t in lm_targets() if "/figures/" in t],
    output:
        report(f"{LM_OUT}/report.md", caption="../report/lm_report.rst", category="Language models"),
    params:
        archs=LM_ARCHS,
        sorting=bool(LM.get("sorting")),
        arc=bool(ARC_SOURCE),
    log:
        f"{LM_OUT}/logs/report.log",
    threads: res("default", "threads")
    resources:
        **group_resources("default"),
    conda:
        "../envs/report.yaml"
    script:
        LM_SCRIPT
