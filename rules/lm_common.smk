# Language-model task: settings, paths and input functions shared by rules/lm.smk.
from shrink.core.data_dirs import data_source

LM = config.get("lm") or {}
LM_OUT = "results/lm"
LM_SCRIPT = "../workflow/scripts/lm.py"
LM_PACKAGE = PACKAGE_DIR / "lm"
LM_ARCHS = list(LM.get("archs", {}))
LM_TOK = LM.get("tokenizer")
# (tokenizer, arch) pairs to train: every architecture with the main tokenizer, the transformer with the others
LM_RUNS = [(LM_TOK, a) for a in LM_ARCHS] + [(t, "transformer") for t in LM.get("compare_tokenizers", [])]


def lm_gpus():
    """A training job asks for a GPU exactly when lm.train.device is cuda."""
    return 1 if LM.get("train", {}).get("device", "cpu") == "cuda" else 0


def lm_folder(section, key, env_var, fallback):
    """(source, folder) of a data section: local folder, synthetic, or (None, None) when absent and optional."""
    try:
        return data_source(section.get("source", "auto"), section.get("dir"), key, env_var, fallback)
    except ShrinkError as e:
        raise WorkflowError(str(e))


# text is required (e.g. POLISH_LM_DIR=../shared/data/polish_lm); ARC-Easy is optional
LM_SOURCE, LM_DIR = (lm_folder(LM.get("data", {}), "lm.data.dir", "POLISH_LM_DIR", "error")
                     if config["task"] == "lm" else (None, None))
ARC_SOURCE, ARC_DIR = lm_folder(LM.get("arc") or {}, "lm.arc.dir", "ARC_EASY_DIR", None) if LM.get("arc") else (None, None)


def lm_check_names():
    known = set(LM.get("tokenizers", {}))
    for key, names in (("lm.tokenizer", [LM_TOK]), ("lm.compare_tokenizers", LM.get("compare_tokenizers", []))):
        for name in names:
            if name not in known:
                raise WorkflowError(f"config key '{key}': {name!r} is not a key of lm.tokenizers ({sorted(known)})")


if config["task"] == "lm":
    lm_check_names()


def lm_raw_files(wildcards):
    if LM_SOURCE == "synthetic":
        return [f"{LM_OUT}/data/raw"]
    files = sorted(str(p) for p in LM_DIR.iterdir() if p.suffix in (".txt", ".jsonl"))
    if not files:
        raise WorkflowError(f"config key 'lm.data.dir' (or POLISH_LM_DIR): {LM_DIR} holds no .txt or .jsonl files")
    return files


def arc_files(wildcards):
    if ARC_SOURCE == "synthetic":
        return [f"{LM_OUT}/data/arc_raw"]
    return [str(ARC_DIR / f"ARC-Easy-{s}.json") for s in SPLITS]


def lm_run_outputs(kind):
    return [f"{LM_OUT}/{kind}/{t}/{a}.json" for t, a in LM_RUNS]


def lm_targets():
    targets = expand(f"{LM_OUT}/tables/{{name}}.{{ext}}", name=["architectures", "tokenizers", "cleaning"],
                     ext=["csv", "md"])
    targets += [f"{LM_OUT}/tables/samples.md", f"{LM_OUT}/report.md"]
    targets += expand(f"{LM_OUT}/figures/{{fig}}.png", fig=["loss_vs_steps", "loss_vs_time", "lr", "tokenizers"])
    if LM.get("sorting"):
        targets += expand(f"{LM_OUT}/tables/sorting.{{ext}}", ext=["csv", "md"])
        targets += expand(f"{LM_OUT}/figures/{{fig}}.png", fig=["sorting_by_length", "sorting_by_position"])
    if ARC_SOURCE:
        targets += expand(f"{LM_OUT}/tables/arc.{{ext}}", ext=["csv", "md"])
    return targets


def lm_table_inputs(wildcards):
    files = {"metrics": lm_run_outputs("metrics"), "samples": lm_run_outputs("samples"),
             "clean_report": f"{LM_OUT}/data/clean_report.json",
             "code": [LM_PACKAGE / "report.py"]}
    if LM.get("sorting"):
        files["sorting"] = expand(f"{LM_OUT}/sorting/{{arch}}.json", arch=LM_ARCHS)
    if ARC_SOURCE:
        files["arc"] = expand(f"{LM_OUT}/arc/{{arch}}.json", arch=LM_ARCHS)
    return files
