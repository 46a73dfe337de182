# Definition matching (config `task: definition_match`): WiC-TSV items -> frozen-encoder token features
# per layer combination -> one small head per (features, head) -> tables, learning curves, report.
# Every output lives under results/definition_match/; settings are in definition_match_common.smk.


if DM_SOURCE == "synthetic":

    rule dm_get_raw:
        output:
            directory(f"{DM_OUT}/data/raw"),
        params:
            sizes=DM["data"].get("synthetic", {"train": 300, "dev": 80}),
            seed=config["seed"],
        log:
            f"{DM_OUT}/logs/get_raw.log",
        threads: res("data", "threads")
        resources:
            **group_resources("data"),
        conda:
            "../envs/definition_match.yaml"
        script:
            DM_SCRIPT


rule dm_features:
    input:
        dm_data_files,
    output:
        f"{DM_OUT}/features/{{layers}}.pt",
    params:
        folder=DM_DATA,
        val_fraction=DM.get("data", {}).get("val_fraction", 0.15),
        encoder=DM.get("encoder", {}),
        features={k: v for k, v in DM.get("features", {}).items() if k != "layers"},
        seed=config["seed"],
    log:
        f"{DM_OUT}/logs/features_{{layers}}.log",
    threads: res("evaluate", "threads")
    resources:
        **group_resources("evaluate"),
    conda:
        "../envs/definition_match.yaml"
    script:
        DM_SCRIPT


rule dm_train:
    input:
        f"{DM_OUT}/features/{{layers}}.pt",
    output:
        result=f"{DM_OUT}/runs/{{layers}}/{{head}}.json",
        curve=f"{DM_OUT}/runs/{{layers}}/{{head}}.csv",
    params:
        train=DM.get("train", {}),
        head=DM.get("head", {}),
        fractions=DM.get("size_fractions", [0.25, 0.5, 1.0]),
        seed=config["seed"],
    log:
        f"{DM_OUT}/logs/train_{{layers}}_{{head}}.log",
    threads: res("default", "threads")
    resources:
        **group_resources("default"),
    conda:
        "../envs/definition_match.yaml"
    script:
        DM_SCRIPT


rule dm_tables:
    input:
        results=expand(f"{DM_OUT}/runs/{{run}}.json", run=DM_RUNS),
        code=PACKAGE_DIR / "defmatch" / "report.py",
    output:
        csv=report(f"{DM_OUT}/tables/summary.csv", caption="../report/dm_summary.rst", category="Definition matching"),
        md=f"{DM_OUT}/tables/summary.md",
    log:
        f"{DM_OUT}/logs/tables.log",
    threads: res("default", "threads")
    resources:
        **group_resources("default"),
    conda:
        "../envs/report.yaml"
    script:
        DM_SCRIPT


rule dm_plots:
    input:
        results=expand(f"{DM_OUT}/runs/{{run}}.json", run=DM_RUNS),
        curves=expand(f"{DM_OUT}/runs/{{run}}.csv", run=DM_RUNS),
        code=PACKAGE_DIR / "defmatch" / "report.py",
    output:
        curves=report(f"{DM_OUT}/figures/learning_curves.png", caption="../report/dm_figure.rst",
                      category="Definition matching"),
        sizes=report(f"{DM_OUT}/figures/size_curves.png", caption="../report/dm_figure.rst",
                     category="Definition matching"),
        accuracy=report(f"{DM_OUT}/figures/accuracy.png", caption="../report/dm_figure.rst",
                        category="Definition matching"),
    log:
        f"{DM_OUT}/logs/plots.log",
    threads: res("default", "threads")
    resources:
        **group_resources("default"),
    conda:
        "../envs/report.yaml"
    script:
        DM_SCRIPT


rule dm_report:
    input:
        table=f"{DM_OUT}/tables/summary.md",
        figures=dm_figures(),
    output:
        report(f"{DM_OUT}/report.md", caption="../report/dm_summary.rst", category="Definition matching"),
    log:
        f"{DM_OUT}/logs/report.log",
    threads: res("default", "threads")
    resources:
        **group_resources("default"),
    conda:
        "../envs/report.yaml"
    script:
        DM_SCRIPT
