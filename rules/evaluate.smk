# Any model folder -> one metrics JSON: entity F1, size, CPU speed, memory, provenance.


rule evaluate:
    input:
        model=lambda wc: model_dir(wc.model),
        data="results/data/tokenized",
    output:
        "results/metrics/{model}.json",
    wildcard_constraints:
        model="|".join(MODELS),
    params:
        evaluate=config["evaluate"],
        # provenance: the settings every model depends on (a variant's own recipe is in `variant`);
        # not scheduling resources, speed-only train settings or the list of variants, so adding a variant
        # re-evaluates nothing else
        config={**{k: v for k, v in config.items() if k not in ("resources", "compress")}, "train": TRAIN_PARAMS},
        seed=config["seed"],
        variant=lambda wc: variant_info(wc.model),
    log:
        "results/logs/evaluate_{model}.log",
    threads: res("evaluate", "threads")
    resources:
        **group_resources("evaluate"),
    conda:
        "../envs/train.yaml"
    script:
        "../workflow/scripts/ner.py"
