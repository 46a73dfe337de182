# Definition matching: settings, paths and input functions shared by rules/definition_match.smk.

DM = config.get("definition_match") or {}
DM_OUT = "results/definition_match"
DM_SCRIPT = "../workflow/scripts/definition_match.py"
DM_LAYERS = DM.get("features", {}).get("layers", [])
DM_HEADS = DM.get("heads", [])
DM_RUNS = [f"{lay}/{head}" for lay in DM_LAYERS for head in DM_HEADS]


def dm_source():
    """('local', folder) of WiC-TSV (e.g. WIC_TSV_DIR=../shared/data/wic_tsv), or ('synthetic', None)."""
    data = DM.get("data", {})
    try:
        return data_source(data.get("source", "auto"), data.get("dir"), "definition_match.data.dir", "WIC_TSV_DIR",
                           "error")
    except ShrinkError as e:
        raise WorkflowError(str(e))


DM_SOURCE, DM_DIR = dm_source() if config["task"] == "definition_match" else (None, None)
DM_DATA = f"{DM_OUT}/data/raw" if DM_SOURCE == "synthetic" else str(DM_DIR)


def dm_data_files(wildcards):
    if DM_SOURCE == "synthetic":
        return [DM_DATA]
    names = [f"{s}_{kind}.txt" for s in ("train", "dev") for kind in ("examples", "definitions", "labels")]
    missing = [n for n in names if not (DM_DIR / n).is_file()]
    if missing:
        raise WorkflowError(f"config key 'definition_match.data.dir' (or WIC_TSV_DIR): {DM_DIR} lacks {missing}")
    return [str(DM_DIR / n) for n in names]


def dm_targets():
    return [f"{DM_OUT}/tables/summary.csv", f"{DM_OUT}/tables/summary.md", f"{DM_OUT}/report.md"] + dm_figures()


def dm_figures():
    return [f"{DM_OUT}/figures/{name}.png" for name in ("learning_curves", "size_curves", "accuracy")]
