"""Data-parallel training (train.processes), through the workflow's entry point shrink.jobs.train:
two processes take the optimizer steps one process takes, on the same examples; a two-process run
that crashed after a checkpoint resumes to the uninterrupted run's result; SLURM gets one task (or
GPU) per process."""

import json
import types

import pandas as pd
import pytest
import torch

from shrink.core import distributed
from shrink.core.encoders import minilm_path
from shrink.core.errors import ConfigError
from shrink.core.harness import run
from shrink.ner import jobs
from shrink.ner.conll import label_list, read_conll
from shrink.ner.synthetic import write_corpus
from shrink.ner.tokens import tokenize_corpus
from shrink.ner.train import TrainConfig

# 97 train sentences in batches of 16: the last batch of each epoch holds one sentence, so with two
# processes one of them has no sentence of its own there (the zero-weight shard of shrink.core.distributed).
SIZES = {"train": 97, "validation": 24, "test": 8}
# fp32: the tolerance below is for fp32 reductions split across processes, whatever auto picks on this CPU
SETTINGS = {"epochs": 2, "lr": 3e-3, "batch_size": 16, "log_every": 1, "warmup_ratio": 0.2, "precision": "fp32"}
STEPS_PER_EPOCH = 7


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A tokenized corpus and a tiny random BERT tagger saved with dropout off: one and two processes
    then compute the same function (dropout masks cannot match, each process draws its own)."""
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    root = tmp_path_factory.mktemp("inputs")
    corpus = write_corpus(root / "corpus", SIZES, seed=3)
    labels = label_list(read_conll(corpus / "train.txt").sentences)
    (root / "labels.json").write_text(json.dumps(labels))
    tokenize_corpus({s: corpus / f"{s}.txt" for s in ("train", "validation", "test")}, root / "labels.json",
                    minilm_path(), root / "tokenized", max_length=64)
    torch.manual_seed(5)
    BertForTokenClassification(BertConfig(
        vocab_size=len(AutoTokenizer.from_pretrained(minilm_path())), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={x: i for i, x in enumerate(labels)})).save_pretrained(root / "tiny")
    return root


def snakemake_object(inputs, out, processes):
    """What shrink.jobs.train reads from the snakemake object of rule train_teacher."""
    out.mkdir(parents=True, exist_ok=True)
    return types.SimpleNamespace(
        rule="train_teacher", threads=2, log=[str(out / "train.log")], resources=None,
        input=types.SimpleNamespace(data=str(inputs / "tokenized")),
        output=types.SimpleNamespace(model=str(out / "model"), steps=str(out / "steps.csv"),
                                     epochs=str(out / "epochs.csv")),
        params=types.SimpleNamespace(train={**SETTINGS, "processes": processes}, seed=5,
                                     teacher={"name_or_path": str(inputs / "tiny"), "tokenizer": minilm_path()},
                                     checkpoints=str(out / "ckpt")))


def final_weights(out):
    return torch.load(out / "ckpt" / f"epoch-{SETTINGS['epochs']}" / "state.pt", weights_only=False)["model"]


@pytest.fixture(scope="module")
def one_and_two(inputs, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, processes in (("one", 1), ("two", 2)):
        run(jobs.train, snakemake_object(inputs, root / name, processes))
    return root / "one", root / "two"


def test_two_processes_take_the_steps_of_one(one_and_two):
    one, two = one_and_two
    a, b = pd.read_csv(one / "steps.csv"), pd.read_csv(two / "steps.csv")
    assert len(a) == len(b) == SETTINGS["epochs"] * STEPS_PER_EPOCH and (a["step"] == b["step"]).all()
    # Tolerance: the two runs differ only in float rounding. A shard is padded to its own longest
    # sentence (other matrix shapes, other summation blocking) and the all-reduce adds the two halves
    # of every gradient where one process sums them in one pass: about 1e-7 relative per operation.
    # Measured after 14 steps: losses equal to the 6 decimals of the log (1e-6), weights within 6e-7.
    # 2e-5 leaves a wide margin and still catches a real difference: averaging each shard's own mean
    # (not the global batch's) moved losses by 5e-4 and weights by 4e-4 here. Absolute tolerance only:
    # some parameters (the attention key biases, whose exact gradient is zero) sit near 0, where any
    # relative measure of rounding noise is meaningless.
    assert a["loss"].to_numpy() == pytest.approx(b["loss"].to_numpy(), rel=0, abs=2e-5)
    assert a["lr"].to_numpy() == pytest.approx(b["lr"].to_numpy(), rel=1e-9)
    wa, wb = final_weights(one), final_weights(two)
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wb[name], wa[name], rtol=0, atol=2e-5, msg=name)
    assert a["loss"].iloc[-1] < a["loss"].iloc[0] - 0.1  # it learns, by far more than the tolerance


def test_rank_0_alone_writes_the_log_and_outputs(one_and_two):
    _, two = one_and_two
    log = (two / "train.log").read_text()
    assert log.count("epoch 1: train loss") == 1 and log.count("epoch 2: train loss") == 1, log
    assert (two / "model" / "config.json").exists()
    assert len(pd.read_csv(two / "epochs.csv")) == SETTINGS["epochs"]


class Crash(Exception):
    pass


def crash_after_epoch_1(**kwargs):
    """A training worker killed right after writing its epoch-1 checkpoint."""
    from shrink.ner import train

    save = train.Checkpoints.save

    def save_then_crash(self, epoch, *args, **kw):
        save(self, epoch, *args, **kw)
        if epoch == 1:
            raise Crash("killed after epoch 1")

    train.Checkpoints.save = save_then_crash  # only in this worker process
    jobs._train_teacher(**kwargs)


def test_crashed_two_process_run_resumes_to_the_same_result(inputs, one_and_two, tmp_path):
    _, two = one_and_two
    smk = snakemake_object(inputs, tmp_path, 2)
    kwargs = dict(data=smk.input.data, train=smk.params.train, teacher=smk.params.teacher, seed=smk.params.seed,
                  out=smk.output.model, steps_csv=smk.output.steps, epochs_csv=smk.output.epochs,
                  checkpoints=smk.params.checkpoints)
    # rank 0 dies while rank 1 waits at the barrier: the launch fails instead of hanging
    with pytest.raises(Exception, match="killed after epoch 1"):
        distributed.launch(crash_after_epoch_1, kwargs, processes=2, threads=2)
    assert (tmp_path / "ckpt" / "epoch-1" / "state.json").exists() and not (tmp_path / "model").exists()

    run(jobs.train, smk)
    assert "(epoch 1 of 2 done)" in (tmp_path / "train.log").read_text()
    # same processes, same seed: equal to the last bit, so the run is also deterministic
    for csv in ("steps.csv", "epochs.csv"):
        a, b = pd.read_csv(tmp_path / csv), pd.read_csv(two / csv)
        timing = [c for c in a if c in ("train_seconds", "train_tokens_per_s")]
        pd.testing.assert_frame_equal(a.drop(columns=timing), b.drop(columns=timing))
    wa, wb = final_weights(tmp_path), final_weights(two)
    assert all(torch.equal(wa[n], wb[n]) for n in wa)


@pytest.mark.parametrize("value", [0, -2, 1.5, "2", True])
def test_bad_processes_value_names_the_key(value):
    with pytest.raises(ConfigError, match=r"config key 'train.processes': must be (an integer|at least 1)"):
        TrainConfig.from_dict({"processes": value})


def test_bad_processes_value_fails_the_step_before_any_worker_starts(inputs, tmp_path, capsys):
    smk = snakemake_object(inputs, tmp_path, 0)
    with pytest.raises(SystemExit):
        run(jobs.train, smk)
    assert "ERROR in rule train_teacher: config key 'train.processes'" in capsys.readouterr().err
    assert not (tmp_path / "model").exists() and not (tmp_path / "ckpt").exists()


@pytest.mark.parametrize("device, flags", [("cpu", ["--ntasks=2 ", "--nodes=1"]),
                                           ("cuda", ["--gpus=2", "--ntasks-per-gpu=1", "--nodes=1"])])
def test_slurm_jobs_ask_for_one_task_per_process(tmp_path, device, flags):
    """The training rules' resources, as the SLURM executor plugin renders them into sbatch's flags."""
    from conftest import planned_resources, sbatch_line, snakemake

    r = snakemake(tmp_path, "-n", config={"train": {"processes": 2, "device": device}})
    assert r.returncode == 0, r.stderr[-3000:]
    planned = planned_resources(r.stdout)
    for rule in ("train_teacher", "distill"):
        sbatch = sbatch_line(planned[rule], threads=2)
        assert all(flag in sbatch for flag in flags), (rule, sbatch)
    assert "--ntasks=1 " in sbatch_line(planned["prune"], threads=2)  # trains nothing: one task
