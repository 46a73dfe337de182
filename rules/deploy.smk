# The `deployment` target: every model folder -> a checked, self-contained ONNX export measured in
# each runtime (results/deploy/<model>/deploy.json) -> one table and one figure. Not part of `all`:
# run it with `snakemake --cores all deployment` (docs/deploy.md).


rule deploy_model:
    input:
        model=lambda wc: model_dir(wc.model),
        data="results/data/tokenized",
    output:
        directory("results/deploy/{model}"),
    wildcard_constraints:
        model="|".join(MODELS),
    params:
        deploy=config["deploy"],
        evaluate=config["evaluate"],
    log:
        "results/logs/deploy_{model}.log",
    threads: res("evaluate", "threads")
    resources:
        **group_resources("evaluate"),
    conda:
        "../envs/train.yaml"
    script:
        "../workflow/scripts/ner.py"


rule deployment_table:
    input:
        records=expand("results/deploy/{model}", model=MODELS),
        code=[NER_PACKAGE / "deployment_table.py", FIGURES_MODULE],
    output:
        csv=report(
            "results/tables/deployment.csv",
            caption="../report/deployment.rst",
            category="Deployment",
        ),
        md="results/tables/deployment.md",
        figure=report(
            "results/figures/deployment.png",
            caption="../report/deployment_figure.rst",
            category="Deployment",
        ),
    params:
        teacher=TEACHER,
        keep=config["deploy"]["keep"],
    log:
        "results/logs/deployment_table.log",
    threads: res("default", "threads")
    resources:
        **group_resources("default"),
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/ner.py"


rule deployment:
    input:
        rules.deployment_table.output,
