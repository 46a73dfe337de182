# Raw data -> cleaned and validated CoNLL splits -> tokenized Arrow shards.


if SOURCE != "local":

    rule get_raw_data:
        output:
            **{s: f"results/data/raw/{s}.txt" for s in SPLITS},
        params:
            source=SOURCE,
            hub_name=config["data"]["hub_name"],
            hub_revision=config["data"]["hub_revision"],
            hub_columns=config["data"]["hub_columns"],
            synthetic=config["data"].get("synthetic"),
            seed=config["seed"],
        log:
            "results/logs/get_raw_data.log",
        threads: res("data", "threads")
        resources:
            **group_resources("data"),
        conda:
            "../envs/data.yaml"
        script:
            "../workflow/scripts/ner.py"


rule clean_data:
    input:
        unpack(raw_inputs),
    output:
        **{s: f"results/data/clean/{s}.txt" for s in SPLITS},
        labels="results/data/clean/labels.json",
        report=report(
            "results/data/clean/report.json",
            caption="../report/cleaning.rst",
            category="Data",
        ),
    params:
        data=pick("data", CLEAN_KEYS),
        seed=config["seed"],
    log:
        "results/logs/clean_data.log",
    threads: res("data", "threads")
    resources:
        **group_resources("data"),
    conda:
        "../envs/data.yaml"
    script:
        "../workflow/scripts/ner.py"


rule tokenize:
    input:
        **{s: f"results/data/clean/{s}.txt" for s in SPLITS},
        labels="results/data/clean/labels.json",
    output:
        directory("results/data/tokenized"),
    params:
        tokenize=config["tokenize"],
        teacher=pick("teacher", TOKENIZER_KEYS),
    log:
        "results/logs/tokenize.log",
    threads: res("data", "threads")
    resources:
        **group_resources("data"),
    conda:
        "../envs/train.yaml"
    script:
        "../workflow/scripts/ner.py"
