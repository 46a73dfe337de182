# shrink: train a transformer teacher, derive compressed variants, compare them.
# Run:     snakemake --cores all          (config.yaml; CONLL2003_DIR for a local CoNLL-2003)
#          snakemake --cores all --configfile config/translation.yaml   (EN_RU_DIR: the en-ru corpus)
#          snakemake --cores all --configfile config/lm.yaml   (POLISH_LM_DIR, ARC_EASY_DIR)
#          snakemake --cores all --configfile config/definition_match.yaml   (WIC_TSV_DIR)
# Report:  snakemake --report results/report.html
# Deploy:  snakemake --cores all deployment   (ONNX exports, runtimes table; docs/deploy.md)
# Rules live in rules/*.smk; this file only wires them together.
configfile: f"{workflow.basedir}/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"


# After a failed run: each failed job's one-line error (under SLURM only its log has it), and the
# jobs SLURM killed for their time or memory limit, with the key to raise.
onerror:
    explain_failures()


if config["task"] == "translation":

    include: "rules/translation_common.smk"
    include: "rules/translation.smk"

    rule all:
        input:
            translation_targets(),

elif config["task"] == "lm":

    include: "rules/lm_common.smk"
    include: "rules/lm.smk"

    rule all:
        input:
            lm_targets(),

elif config["task"] == "definition_match":

    include: "rules/definition_match_common.smk"
    include: "rules/definition_match.smk"

    rule all:
        input:
            dm_targets(),

else:

    include: "rules/data.smk"
    include: "rules/train.smk"
    include: "rules/compress.smk"
    include: "rules/evaluate.smk"
    include: "rules/report.smk"
    include: "rules/deploy.smk"

    rule all:
        input:
            "results/tables/summary.csv",
            "results/tables/summary.md",
            expand("results/figures/{kind}.png", kind=FIGURES),
            f"results/figures/per_type_f1_{TEACHER}.png",
            compression_figures(),
