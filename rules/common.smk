import sys
import time
from functools import partial
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from shrink.core.errors import ShrinkError
from shrink.core.splits import SPLITS
from shrink.core.precision import check_config
from shrink.ner.recipes import METHODS, plan, recipe_string
from shrink.ner.train_settings import SPEED_ONLY
from shrink.core.data_dirs import data_source
from shrink.ner.sources import ENV_VAR as CONLL_ENV_VAR, resolve_conll_dir

min_version("9.0")


validate(config, schema="../schemas/config.schema.yaml")
try:  # fp16 on a CPU fails here; an explicit bf16 the CPU only emulates warns once, naming the key
    check_config(config)
except ShrinkError as e:
    raise WorkflowError(str(e))
for _task in ("translation", "lm", "definition_match"):
    if config["task"] == _task and _task not in config:
        raise WorkflowError(f"config key 'task' is {_task} but there is no '{_task}' section "
                            f"(use --configfile config/{_task}.yaml)")

# The train settings a training rule's params hold: the speed-only ones stay out, so changing them reruns nothing
TRAIN_PARAMS = {k: v for k, v in config["train"].items() if k not in SPEED_ONLY}

# Package modules listed as inputs of the cheap rules, so editing them reruns exactly those rules.
PACKAGE_DIR = Path(workflow.basedir) / "src" / "shrink"
NER_PACKAGE = PACKAGE_DIR / "ner"
FIGURES_MODULE = PACKAGE_DIR / "core" / "figures.py"
GATE_PLOTS_MODULE = PACKAGE_DIR / "methods" / "gate_plots.py"
TEACHER = "teacher"
# Every model folder under results/models/ that gets evaluated and tabled; compression variants join this list.
MODELS = [TEACHER]


def ner_source():
    """'local' (with the folder, whose three split files data.files exist), 'hub' or 'synthetic'."""
    data = config["data"]
    try:
        source, _ = data_source(data["source"], data.get("conll_dir"), "data.conll_dir", CONLL_ENV_VAR, "hub")
        # resolved again to check the three split files, naming the data.files key of a missing one
        return source, resolve_conll_dir(data.get("conll_dir"), data["files"]) if source == "local" else None
    except ShrinkError as e:
        raise WorkflowError(str(e))


# The CoNLL source is resolved for the NER task only: a stale CONLL2003_DIR must not stop a translation run.
SOURCE, CONLL_DIR = ner_source() if config["task"] == "ner" else (None, None)


def raw_split(split):
    if SOURCE == "local":
        return str(CONLL_DIR / config["data"]["files"][split])
    return f"results/data/raw/{split}.txt"


def raw_inputs(wildcards):
    return {s: raw_split(s) for s in SPLITS}


# Only the settings a step reads reach its params, so editing an unrelated key reruns nothing.
CLEAN_KEYS = ("encoding", "tag_scheme", "on_malformed", "max_sentences", "filters")
TOKENIZER_KEYS = ("preset", "name_or_path", "tokenizer")


def pick(section, keys):
    return {k: config[section].get(k) for k in keys}


# Each rule also names its group in its resources (resource_group="train", a string no scheduler
# counts), so a job that outgrows its request can name the config key to raise (shrink.core.guard).
def res(group, key):
    """A resource value of a rule group (config 'resources'), falling back to 'default'."""
    table = config["resources"]
    value = table.get(group, {}).get(key, table["default"].get(key))
    if value is None:
        raise WorkflowError(f"config key 'resources.{group}.{key}' (or resources.default.{key}) is not set")
    return value


def group_resources(group):
    """A rule's resources from its config group: memory and time (threads go in `threads:`), and the
    group's name, which no scheduler counts but which lets shrink.core.guard name the key to raise."""
    return {"resource_group": group, "mem_mb": res(group, "mem_mb"), "runtime": res(group, "runtime")}


def train_gpus():
    """A training job asks the scheduler for one GPU exactly when it will train on CUDA."""
    return 1 if config["train"]["device"] == "cuda" else 0


def train_tasks(trains=True):
    """Resources of a job that trains in train.processes worker processes, as the SLURM executor
    plugin reads them: one task each (`tasks` -> --ntasks) on CPU; on CUDA one GPU each (`gpu` ->
    --gpus, `tasks_per_gpu` -> --ntasks-per-gpu, 0 leaves the flag out); all on one node, where the
    job spawns its workers. `threads` stays the job's total, shared out among the workers."""
    n = config["train"].get("processes", 1) if trains else 1
    cuda = trains and config["train"]["device"] == "cuda"
    return {"tasks": n, "nodes": 1, "gpu": n if cuda else 0, "tasks_per_gpu": 1 if cuda and n > 1 else 0}


def checkpoint_dir(model):
    # Not a declared output: Snakemake would delete it before a rerun, and resuming needs it.
    return f"results/checkpoints/{model}"


# Compression variants: recipes of steps, each step cached under results/steps/<method>-<hash>/.
try:
    VARIANTS, STEPS = plan(config.get("compress"))
except ShrinkError as e:
    raise WorkflowError(str(e))
MODELS += list(VARIANTS)
TEACHER_LOGITS = "results/teacher/train_logits.safetensors"


def model_dir(model):
    if model == TEACHER:
        return f"results/models/{TEACHER}"
    return f"results/steps/{VARIANTS[model].last}/model"


def step_of(method, wildcards):
    sid = f"{method}-{wildcards.hash}"
    if sid not in STEPS:
        raise WorkflowError(f"no recipe step {sid} in config key 'compress.variants'")
    return STEPS[sid]


def step_inputs(wildcards, method):
    step = step_of(method, wildcards)
    inputs = {"data": "results/data/tokenized"}
    if step.parent == TEACHER:
        inputs["parent"] = model_dir(TEACHER)
    elif step.parent != "pretrained":
        inputs["parent"] = f"results/steps/{step.parent}/model"
    p = step.params
    if (method == "distill" and not p.get("intermediate")) or (
        method == "gate_heads" and p.get("loss") == "distill"
    ):
        inputs["logits"] = TEACHER_LOGITS
    if method == "distill" and p.get("intermediate"):
        inputs["teacher"] = model_dir(TEACHER)
    return inputs


def step_key(sid):
    """The config key of a step, for error messages: its first variant's recipe entry."""
    for name, v in VARIANTS.items():
        if sid in v.steps:
            return f"compress.variants.{v.base}.recipe[{v.steps.index(sid)}]"
    return "compress.variants"


def step_outputs(method, trains):
    base = f"results/steps/{method}-{{hash}}"
    out = {"model": directory(f"{base}/model"), "report": f"{base}/step.json"}
    if trains:
        out.update(steps=f"{base}/steps.csv", epochs=f"{base}/epochs.csv")
    if method == "gate_heads":
        out["extra"] = f"{base}/gates.csv"
    return out


def variant_info(model):
    """What the summary table says about a model's recipe (the teacher has none)."""
    if model == TEACHER:
        return {"method": "fine-tune", "recipe": "teacher", "steps": []}
    v = VARIANTS[model]
    last = STEPS[v.last]
    return {
        "method": last.method if last.method != "prune" else last.params.get("method", "sparsegpt"),
        "recipe": recipe_string(v, STEPS),
        "root": v.root,
        "steps": [{"id": s, "method": STEPS[s].method, "params": STEPS[s].params} for s in v.steps],
    }


def variants_with(method):
    return [name for name, v in VARIANTS.items() if STEPS[v.last].method == method]


def training_steps():
    """Step ids of every training step any variant runs (their logs feed the loss figure)."""
    return sorted({s for v in VARIANTS.values() for s in v.steps if STEPS[s].trains})


# Which compression figures the variants call for, and labels for their inputs.
PRUNED = variants_with("prune")
GATED = variants_with("gate_heads")


def compression_figures():
    figs = []
    if VARIANTS:
        figs += expand("results/figures/pareto_{axis}.png", axis=["params", "latency"])
    if training_steps():
        figs.append("results/figures/compress_losses.png")
    if PRUNED:
        figs.append("results/figures/pruning_sparsity.png")
    if GATED:
        figs.append("results/figures/heads_f1.png")
        figs += expand("results/figures/gates_{model}.{ext}", model=GATED, ext=["png", "gif"])
    return figs


def step_label(sid):
    """A readable label for a step's log: the variants that run it, and the method."""
    users = [n for n, v in VARIANTS.items() if sid in v.steps]
    more = f" (+{len(users) - 1})" if len(users) > 1 else ""
    return f"{users[0]}{more}: {STEPS[sid].method}"


# A job SLURM killed for its time or memory limit fails with SLURM's word only; after a failed run
# (the Snakefile's `onerror`), name the rule and the config key to raise, from the SLURM executor
# plugin's job logs of this run.
WORKFLOW_START = time.time()


def slurm_logdir():
    logdir = getattr(getattr(workflow, "executor_settings", None), "logdir", None)
    if logdir and not Path(logdir).is_absolute():  # as the plugin resolves it
        logdir = Path(workflow.workdir_init) / logdir
    return logdir or ".snakemake/slurm_logs"


def explain_failures():
    """After a failed run: the failed jobs' one-line errors (under SLURM they are only in the job
    logs, and Snakemake's own block shows `message: None`), then the jobs SLURM killed."""
    from shrink.core.guard import job_errors

    errors = job_errors(["results", slurm_logdir()], since=WORKFLOW_START)
    if errors:
        print("The failed jobs said:", *errors, sep="\n  ", file=sys.stderr)
    explain_slurm_kills()


def explain_slurm_kills():
    from shrink.core.guard import slurm_kills, slurm_message

    logdir = slurm_logdir()
    told = set()
    for kill in slurm_kills(logdir, since=WORKFLOW_START):
        if (kill.rule, kill.resource) in told:
            continue
        told.add((kill.rule, kill.resource))
        try:
            group = workflow.get_rule(kill.rule).resources.get("resource_group")
            group = getattr(group, "value", group)  # Snakemake 9 wraps resources in Resource objects
        except Exception:  # a rule of another workflow version
            group = None
        value = res(group, kill.resource) if group else None
        print(slurm_message(kill, group, value), file=sys.stderr)
