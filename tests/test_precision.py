"""precision: auto picks what the hardware runs natively, the choice reaches every autocast, and an
explicit bf16 that the CPU only emulates warns."""

import json
import os
import subprocess
import sys
import warnings

import pytest
import torch
from test_train import TINY, make_data

from shrink.core import precision
from shrink.core.errors import ConfigError
from shrink.core.precision import check_config, config_precisions, resolve
from shrink.ner.metrics import predict_tags
from shrink.ner.models import build_token_classifier
from shrink.ner.train import TrainConfig, train_token_classifier


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(precision, "_warned", set())
    monkeypatch.delenv(precision.WARNED_ENV, raising=False)


def native_cpu(monkeypatch, native):
    monkeypatch.setattr(precision, "cpu_bf16_native", lambda: native)


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_on_cpu_follows_native_bf16(monkeypatch, native, expected):
    native_cpu(monkeypatch, native)
    assert resolve("auto", "cpu", "train.precision") == expected


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp16")])
def test_auto_on_cuda_is_bf16_where_native_else_fp16(monkeypatch, native, expected):
    monkeypatch.setattr(precision, "cuda_bf16_native", lambda: native)
    assert resolve("auto", "cuda", "train.precision") == expected


def test_native_bf16_needs_amx_or_avx512_bf16_as_well_as_onednn(monkeypatch):
    """oneDNN's bf16 path also exists on plain AVX-512, where it converts in software."""
    monkeypatch.setattr(precision.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    monkeypatch.setattr(precision, "cpu_capability", lambda: "AVX512")
    for amx, avx512_bf16, expected in [(False, False, False), (True, False, True), (False, True, True)]:
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda amx=amx: amx)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        assert precision.cpu_bf16_native() is expected, (amx, avx512_bf16)
    monkeypatch.setattr(precision, "cpu_capability", lambda: "AVX2")  # ATEN_CPU_CAPABILITY=avx2
    assert precision.cpu_bf16_native() is False
    monkeypatch.setattr(precision, "cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert precision.cpu_bf16_native() is False


def test_avx2_emulation_turns_native_bf16_off():
    """The documented way to reproduce an AVX2-only CPU really changes torch's answer and auto's choice."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    code = ("import json, torch; from shrink.core import precision as p; print(json.dumps([p.cpu_capability(), "
            "p.cpu_bf16_native(), p.resolve('auto', 'cpu', 'k'), p.machine()]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    capability, native, resolved, machine = json.loads(out.stdout)
    assert (capability, native, resolved) == ("AVX2", False, "fp32")
    assert machine["ONEDNN_MAX_CPU_ISA"] == "AVX2" and machine["cpu"]


def test_fp16_on_cpu_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"evaluate\.precision.*CUDA"):
        resolve("fp16", "cpu", "evaluate.precision")
    with pytest.raises(ConfigError, match="train.precision"):
        resolve("fp8", "cpu", "train.precision")


def test_explicit_bf16_on_an_emulating_cpu_warns_once_naming_key_and_capability(monkeypatch):
    native_cpu(monkeypatch, False)
    with pytest.warns(RuntimeWarning, match=r"train\.precision: bf16 .*capability .*10-50x slower.*auto"):
        assert resolve("bf16", "cpu", "train.precision") == "bf16"  # it still runs as asked
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve("bf16", "cpu", "train.precision")  # a second resolution stays quiet


def test_explicit_bf16_on_a_native_cpu_is_quiet(monkeypatch):
    native_cpu(monkeypatch, True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve("bf16", "cpu", "train.precision") == "bf16"


def test_workflow_check_finds_every_precision_key_with_its_device(monkeypatch):
    config = {"train": {"precision": "auto", "device": "cuda"}, "evaluate": {"precision": "fp32", "device": "cpu"},
              "compress": {"variants": {"kd": {"recipe": [{"distill": {"precision": "fp16"}}]}}},
              "translation": {"train": {"precision": "bf16"}}}
    assert config_precisions(config) == [
        ("train.precision", "auto", "cuda"), ("evaluate.precision", "fp32", "cpu"),
        ("compress.variants.kd.recipe[0].distill.precision", "fp16", "cuda"),
        ("translation.train.precision", "bf16", "cuda")]
    config["train"]["device"] = "cpu"
    with pytest.raises(ConfigError, match=r"compress\.variants\.kd\.recipe\[0\]\.distill\.precision"):
        check_config(config)
    native_cpu(monkeypatch, False)
    del config["compress"]
    with pytest.warns(RuntimeWarning, match="translation.train.precision"):
        check_config(config)
    assert os.environ[precision.WARNED_ENV] == "translation.train.precision"  # the jobs stay quiet


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("corpus"))


class DtypeProbe:
    """Records the dtype of the classifier's output on every forward pass."""

    def __init__(self, model):
        self.seen = []
        model.classifier.register_forward_hook(lambda mod, inp, out: self.seen.append(out.dtype))


def test_resolved_precision_reaches_training_and_validation_autocast(monkeypatch, tmp_path, data):
    tok, labels, sets = data
    for native, expected in [(True, torch.bfloat16), (False, torch.float32)]:
        native_cpu(monkeypatch, native)
        cfg = TrainConfig.from_dict({"epochs": 1, "lr": 3e-3, "batch_size": 32}, seed=5)
        assert cfg.precision == ("bf16" if native else "fp32")
        model = build_token_classifier(TINY, labels, len(tok), cfg.seed)
        probe = DtypeProbe(model)
        out = tmp_path / str(native)
        train_token_classifier(model, tok, sets["train"], sets["validation"], labels, cfg, out / "model",
                               out / "steps.csv", out / "epochs.csv", out / "ckpt", progress=False)
        assert set(probe.seen) == {expected}  # training steps and the validation pass alike
        record = json.loads((out / "model" / "training.json").read_text())
        assert record["precision"] == cfg.precision and record["machine"]["cpu_capability"]


def test_resolved_precision_reaches_evaluation(monkeypatch, data):
    tok, labels, sets = data
    model = build_token_classifier(TINY, labels, len(tok), 0)
    probe = DtypeProbe(model)
    for native, expected in [(True, torch.bfloat16), (False, torch.float32)]:
        native_cpu(monkeypatch, native)
        probe.seen.clear()
        predict_tags(model, sets["validation"], tok, labels, precision=resolve("auto", "cpu", "evaluate.precision"))
        assert set(probe.seen) == {expected}


def test_lm_training_follows_the_resolved_precision(monkeypatch):
    from shrink.lm.train import LMTrainConfig

    native_cpu(monkeypatch, True)
    assert LMTrainConfig.from_dict({}).precision == "bf16"
    native_cpu(monkeypatch, False)
    assert LMTrainConfig.from_dict({}).precision == "fp32"
    with pytest.raises(ConfigError, match="lm.train.precision"):
        LMTrainConfig.from_dict({"precision": "fp16"})


def test_describe_names_cpu_capability_and_precision():
    line = precision.describe("fp32")
    assert precision.cpu_name() in line and precision.cpu_capability() in line and line.endswith("precision fp32")
