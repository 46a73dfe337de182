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
        # provenance: every setting except scheduling resources, which do not change a result
        config={k: v for k, v in config.items() if k != "resources"},
        seed=config["seed"],
        variant=lambda wc: variant_info(wc.model),
    log:
        "results/logs/evaluate_{model}.log",
    threads: res("evaluate", "threads")
    resources:
        mem_mb=res("evaluate", "mem_mb"),
        runtime=res("evaluate", "runtime"),
    conda:
        "../envs/train.yaml"
    script:
        "../workflow/scripts/evaluate.py"
