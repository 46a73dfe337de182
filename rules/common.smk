from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from shrink.errors import ShrinkError
from shrink.sources import resolve_conll_dir

min_version("9.0")


validate(config, schema="../schemas/config.schema.yaml")

SPLITS = ["train", "validation", "test"]
# Package modules listed as inputs of the cheap rules, so editing them reruns exactly those rules.
PACKAGE_DIR = Path(workflow.basedir) / "src" / "shrink"
TEACHER = "teacher"
# Every model folder under results/models/ that gets evaluated and tabled; compression variants join this list.
MODELS = [TEACHER]


def data_source():
    """'local', 'hub' or 'synthetic', and the local folder when there is one."""
    source = config["data"]["source"]
    if source == "synthetic":
        return source, None
    try:
        folder = resolve_conll_dir(config["data"].get("conll_dir"))
    except ShrinkError as e:
        raise WorkflowError(str(e))
    if source == "local" and folder is None:
        raise WorkflowError(
            "config key 'data.source' is local but neither data.conll_dir nor CONLL2003_DIR is set"
        )
    if source == "hub" or folder is None:
        return "hub", None
    return "local", folder


SOURCE, CONLL_DIR = data_source()


def raw_split(split):
    if SOURCE == "local":
        return str(CONLL_DIR / f"{split}.txt")
    return f"results/data/raw/{split}.txt"


def raw_inputs(wildcards):
    return {s: raw_split(s) for s in SPLITS}


# Only the settings a step reads reach its params, so editing an unrelated key reruns nothing.
CLEAN_KEYS = ("encoding", "tag_scheme", "on_malformed", "max_sentences", "filters")
TOKENIZER_KEYS = ("preset", "name_or_path", "tokenizer")


def pick(section, keys):
    return {k: config[section].get(k) for k in keys}


def res(group, key):
    """A resource value of a rule group (config 'resources'), falling back to 'default'."""
    table = config["resources"]
    value = table.get(group, {}).get(key, table["default"].get(key))
    if value is None:
        raise WorkflowError(f"config key 'resources.{group}.{key}' (or resources.default.{key}) is not set")
    return value


def train_gpus():
    """A training job asks the scheduler for one GPU exactly when it will train on CUDA."""
    return 1 if config["train"]["device"] == "cuda" else 0


def checkpoint_dir(model):
    # Not a declared output: Snakemake would delete it before a rerun, and resuming needs it.
    return f"results/checkpoints/{model}"
