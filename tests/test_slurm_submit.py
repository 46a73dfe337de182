"""What each rule would ask SLURM for: the sbatch lines the executor plugin renders from a dry run's
resources. The values come from the config's `resources` section (odd numbers here, so a constant in
a rule cannot pass by chance), and a GPU is requested exactly when a rule trains on CUDA."""

import re

import pytest
from conftest import planned_resources, sbatch_line, snakemake

RESOURCES = {"default": {"threads": 1, "mem_mb": 1111, "runtime": 11},
             "data": {"threads": 1, "mem_mb": 2222, "runtime": 22},
             "train": {"threads": 2, "mem_mb": 7777, "runtime": 333},
             "evaluate": {"threads": 2, "mem_mb": 3333, "runtime": 44}}
# Rules that train (their group is `train`); every compression method that trains nothing uses `evaluate`.
TRAINING = {"train_teacher", "finetune", "distill", "gate_heads", "feature_based"}
DATA = {"get_raw_data", "clean_data", "tokenize"}
EVALUATION = {"evaluate", "teacher_logits", "prune", "quantize", "factorize_embeddings", "low_rank",
              "share_layers"}


def group(rule):
    if rule in TRAINING:
        return "train"
    if rule in DATA:
        return "data"
    if rule in EVALUATION:
        return "evaluate"
    assert rule == "summary_table" or rule.startswith("plot_"), f"rule {rule} has no expected group"
    return "default"


@pytest.fixture(scope="module", params=["cpu", "cuda"])
def planned(request, tmp_path_factory):
    r = snakemake(tmp_path_factory.mktemp(f"submit_{request.param}"), "-n",
                  config={"train": {"device": request.param}, "resources": RESOURCES})
    assert r.returncode == 0, r.stderr[-3000:]
    return request.param, planned_resources(r.stdout)


def test_every_rule_asks_for_its_config_group(planned):
    device, rules = planned
    assert TRAINING <= set(rules) and "summary_table" in rules and any(r.startswith("plot_") for r in rules)
    for rule, resources in rules.items():
        if rule == "all":
            continue
        want = RESOURCES[group(rule)]
        sbatch = sbatch_line(resources, want["threads"])
        assert f" --mem {want['mem_mb']} " in sbatch and f" -t {want['runtime']} " in sbatch, (rule, sbatch)
        assert f"--cpus-per-task={want['threads']}" in sbatch, (rule, sbatch)
        gpus = re.findall(r"--gpus=(\S+)", sbatch)
        if rule in TRAINING and device == "cuda":
            assert gpus == ["1"], (rule, sbatch)
        else:  # CPU training, evaluation, data, tables and plots: no GPU
            assert gpus == [], (rule, sbatch)


def test_tables_and_plots_ask_for_little(planned):
    _, rules = planned
    small = [r for r in rules if r == "summary_table" or r.startswith("plot_")]
    for rule in small:
        sbatch = sbatch_line(rules[rule], 1)
        assert " --mem 1111 " in sbatch and "--gpus" not in sbatch and "--cpus-per-task=1" in sbatch, (rule, sbatch)
