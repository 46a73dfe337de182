# Translation task: settings, paths and input functions shared by rules/translation.smk.

TR = config.get("translation") or {}
TR_OUT = "results/translation"
TR_DATA = TR.get("data", {})
TR_LAMBDAS = [f"{lam:g}" for lam in TR.get("prune", {}).get("lambdas", [])]
TR_PRUNED = [f"heads_l{lam}" for lam in TR_LAMBDAS]
TR_MODELS = ["teacher"] + TR_PRUNED
TR_SCRIPT = "../workflow/scripts/translation.py"
TR_PACKAGE = PACKAGE_DIR / "translation"


def translation_source():
    """(source, folder): a local folder of .en/.ru files, or the Hub or a synthetic corpus."""
    from shrink.translation.jobs import ENV_VAR

    try:
        return data_source(TR_DATA["source"], TR_DATA.get("dir"), "translation.data.dir", ENV_VAR, "hub")
    except ShrinkError as e:
        raise WorkflowError(str(e))


TR_SOURCE, TR_DIR = translation_source()


def tr_prefixes():
    """{split: [file prefix, ...]}: `<prefix>.<src>` and `<prefix>.<tgt>` hold a split's pairs."""
    if TR_SOURCE == "local":
        return {s: [str(TR_DIR / p) for p in TR_DATA["splits"][s]] for s in SPLITS}
    return {s: [f"{TR_OUT}/data/raw/{s}"] for s in SPLITS}


def tr_holdout():
    """translation.data.holdout with its prefix resolved like the train prefixes, or None."""
    h = TR_DATA.get("holdout")
    if not h:
        return None
    # Hub and synthetic corpora have a single train split: the holdout comes from it.
    prefix = str(TR_DIR / h["prefix"]) if TR_SOURCE == "local" else f"{TR_OUT}/data/raw/train"
    if prefix not in tr_prefixes()["train"]:
        raise WorkflowError(f"config key 'translation.data.holdout.prefix' ({h['prefix']}) is not one of "
                            "translation.data.splits.train")
    return {**h, "prefix": prefix}


TR_HOLDOUT = tr_holdout()
# The primary test set (`test`: the README's headline and the pruning criterion), then an in-domain one.
TR_TESTS = ["test"] + ([f"test_{TR_HOLDOUT['name']}"] if TR_HOLDOUT else [])
TR_SPLITS = ["train", "validation"] + TR_TESTS


def tr_raw_files(wildcards):
    if TR_SOURCE != "local":
        return [f"{TR_OUT}/data/raw"]
    langs = (TR_DATA["src"], TR_DATA["tgt"])
    missing = [f"{p}.{lang}" for ps in tr_prefixes().values() for p in ps for lang in langs
               if not Path(f"{p}.{lang}").is_file()]
    if missing:
        raise WorkflowError(f"config key 'translation.data.splits' names files that do not exist: {missing[:3]}")
    return [f"{p}.{lang}" for ps in tr_prefixes().values() for p in ps for lang in langs]


def tr_train_settings(section):
    """translation.train, with a section's own overrides (e.g. prune.train) on top."""
    return {**TR["train"], **(TR.get(section, {}).get("train") or {})} if section else dict(TR["train"])


def tr_figures():
    figs = expand(f"{TR_OUT}/figures/teacher_{{kind}}.png", kind=["loss", "lr", "bleu"])
    figs += expand(f"{TR_OUT}/figures/{{model}}_{{kind}}.png", model=TR_PRUNED, kind=["loss", "bleu", "popen"])
    figs += expand(f"{TR_OUT}/figures/{{model}}_gates.gif", model=TR_PRUNED)
    if TR_PRUNED:
        figs.append(f"{TR_OUT}/figures/heads_bleu.png")
    return figs


def translation_targets():
    return [f"{TR_OUT}/tables/summary.csv", f"{TR_OUT}/tables/summary.md", f"{TR_OUT}/tables/samples.md"] + tr_figures()


TR_SHARDS = {s: f"{TR_OUT}/data/tokenized/{s}.npz" for s in ("train", "validation")}
TR_TEST_SHARDS = {s: f"{TR_OUT}/data/tokenized/{s}.npz" for s in TR_TESTS}
TR_METRICS = expand(f"{TR_OUT}/metrics/{{model}}.json", model=TR_MODELS + ["copy_source"])
TR_REPORTS = expand(f"{TR_OUT}/train/{{model}}/prune.json", model=TR_PRUNED)


def tr_plot_inputs(wildcards):
    """Logs of one model for its curves; metrics and prune reports for the comparison figure."""
    code = {"code": [TR_PACKAGE / "report.py", GATE_PLOTS_MODULE, FIGURES_MODULE]}
    if wildcards.model == "heads":
        return {**code, "metrics": TR_METRICS, "prune_reports": TR_REPORTS}
    run = f"{TR_OUT}/train/{wildcards.model}"
    files = {"steps": f"{run}/steps.csv", "evals": f"{run}/evals.csv"}
    if wildcards.model != "teacher":
        files.update(gates=f"{run}/gates.csv", teacher_evals=f"{TR_OUT}/train/teacher/evals.csv")
    return {**code, **files}
