# Tables and figures from cached metrics and logs only: no model is loaded here.
# Each rule lists the package module it draws with as an input, so editing plot code
# reruns the plots (and nothing upstream).

FIGURES = {
    "loss": "Training loss per optimizer step (log scale), raw and smoothed.",
    "lr": "Learning rate per step: linear warmup, then the configured decay.",
    "val_f1": "Validation entity F1 after each epoch; the best epoch is the saved model.",
}


rule summary_table:
    input:
        metrics=expand("results/metrics/{model}.json", model=MODELS),
        code=PACKAGE_DIR / "tables.py",
    output:
        csv=report(
            "results/tables/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
        ),
        md="results/tables/summary.md",
    params:
        teacher=TEACHER,
    log:
        "results/logs/summary_table.log",
    threads: res("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/summary_table.py"


rule plot_training_curve:
    input:
        logs=lambda wc: expand(
            "results/train/{model}/{log}.csv",
            model=TEACHER,
            log="epochs" if wc.kind == "val_f1" else "steps",
        ),
        code=PACKAGE_DIR / "plots.py",
    output:
        report(
            "results/figures/{kind}.png",
            caption="../report/figure.rst",
            category="Training",
            labels={"figure": "{kind}"},
        ),
    wildcard_constraints:
        kind="|".join(FIGURES),
    params:
        kind="{kind}",
        description=lambda wc: FIGURES[wc.kind],
    log:
        "results/logs/plot_{kind}.log",
    threads: res("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/plot.py"


rule plot_per_type_f1:
    input:
        metrics="results/metrics/{model}.json",
        code=PACKAGE_DIR / "plots.py",
    output:
        report(
            "results/figures/per_type_f1_{model}.png",
            caption="../report/per_type_f1.rst",
            category="Evaluation",
            labels={"model": "{model}"},
        ),
    params:
        kind="per_type_f1",
    log:
        "results/logs/plot_per_type_f1_{model}.log",
    threads: res("default", "threads")
    resources:
        mem_mb=res("default", "mem_mb"),
        runtime=res("default", "runtime"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/plot.py"
