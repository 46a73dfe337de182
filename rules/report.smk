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
        code=NER_PACKAGE / "tables.py",
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
        **group_resources("default"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/ner.py"


rule plot_training_curve:
    input:
        logs=lambda wc: expand(
            "results/train/{model}/{log}.csv",
            model=TEACHER,
            log="epochs" if wc.kind == "val_f1" else "steps",
        ),
        code=[NER_PACKAGE / "plots.py", FIGURES_MODULE],
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
        **group_resources("default"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/ner.py"


rule plot_per_type_f1:
    input:
        metrics="results/metrics/{model}.json",
        code=[NER_PACKAGE / "plots.py", FIGURES_MODULE],
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
        **group_resources("default"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/ner.py"


# Compression figures: from metrics and step logs only, like the ones above.


rule plot_pareto:
    input:
        metrics=expand("results/metrics/{model}.json", model=MODELS),
        code=[NER_PACKAGE / "compression_plots.py", FIGURES_MODULE],
    output:
        report(
            "results/figures/pareto_{axis}.png",
            caption="../report/pareto.rst",
            category="Compression",
            labels={"figure": "pareto {axis}"},
        ),
    wildcard_constraints:
        axis="params|latency",
    params:
        kind="pareto",
        teacher=TEACHER,
    log:
        "results/logs/plot_pareto_{axis}.log",
    threads: res("default", "threads")
    resources:
        **group_resources("default"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/ner.py"


rule plot_compress_losses:
    input:
        logs=[f"results/steps/{s}/steps.csv" for s in training_steps()],
        code=[NER_PACKAGE / "compression_plots.py", FIGURES_MODULE],
    output:
        report(
            "results/figures/compress_losses.png",
            caption="../report/compress_losses.rst",
            category="Compression",
            labels={"figure": "training losses"},
        ),
    params:
        kind="compress_losses",
        labels=[step_label(s) for s in training_steps()],
    log:
        "results/logs/plot_compress_losses.log",
    threads: res("default", "threads")
    resources:
        **group_resources("default"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/ner.py"


rule plot_pruning:
    input:
        metrics=expand("results/metrics/{model}.json", model=PRUNED),
        teacher=f"results/metrics/{TEACHER}.json",
        code=[NER_PACKAGE / "compression_plots.py", FIGURES_MODULE],
    output:
        report(
            "results/figures/pruning_sparsity.png",
            caption="../report/pruning.rst",
            category="Compression",
            labels={"figure": "pruning"},
        ),
    params:
        kind="pruning",
    log:
        "results/logs/plot_pruning.log",
    threads: res("default", "threads")
    resources:
        **group_resources("default"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/ner.py"


rule plot_heads_f1:
    input:
        metrics=expand("results/metrics/{model}.json", model=GATED),
        teacher=f"results/metrics/{TEACHER}.json",
        code=[NER_PACKAGE / "compression_plots.py", FIGURES_MODULE],
    output:
        report(
            "results/figures/heads_f1.png",
            caption="../report/heads_f1.rst",
            category="Compression",
            labels={"figure": "heads kept"},
        ),
    params:
        kind="heads_f1",
    log:
        "results/logs/plot_heads_f1.log",
    threads: res("default", "threads")
    resources:
        **group_resources("default"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/ner.py"


rule plot_gates:
    input:
        gates=lambda wc: f"results/steps/{VARIANTS[wc.model].last}/gates.csv",
        code=[GATE_PLOTS_MODULE, FIGURES_MODULE],
    output:
        report(
            "results/figures/gates_{model}.{ext}",
            caption="../report/gates.rst",
            category="Compression",
            labels={"figure": "gates {ext}", "model": "{model}"},
        ),
    wildcard_constraints:
        model="|".join(GATED) or "no-gated-variants",
        ext="png|gif",
    params:
        kind=lambda wc: "gate_curves" if wc.ext == "png" else "gate_gif",
        title="{model}",
    log:
        "results/logs/plot_gates_{model}_{ext}.log",
    threads: res("default", "threads")
    resources:
        **group_resources("default"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/ner.py"
