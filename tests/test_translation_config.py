"""Translation settings fail early with the key at fault; the corpus folder comes from config or EN_RU_DIR."""

import pytest

from shrink.core.errors import ConfigError
from shrink.translation.jobs import resolve_dir
from shrink.translation.model import Seq2SeqConfig
from shrink.translation.train import Seq2SeqTrainConfig, lr_lambda


def test_model_settings_are_checked():
    with pytest.raises(ConfigError, match="translation.model.heads.*not divisible"):
        Seq2SeqConfig.from_dict({"d_model": 100, "heads": 8}, vocab_size=500)
    with pytest.raises(ConfigError, match="translation.model.norm"):
        Seq2SeqConfig.from_dict({"norm": "sandwich"}, vocab_size=500)
    with pytest.raises(ConfigError, match="translation.model.layers.*unknown key"):
        Seq2SeqConfig.from_dict({"layers": 6}, vocab_size=500)
    assert Seq2SeqConfig.from_dict({"d_model": 64, "heads": 4}, vocab_size=500).head_dim == 16


def test_train_settings_are_checked():
    with pytest.raises(ConfigError, match="translation.train.lr"):
        Seq2SeqTrainConfig.from_dict({"lr": 5e-12})
    with pytest.raises(ConfigError, match="translation.prune.train.select"):
        Seq2SeqTrainConfig.from_dict({"select": "test_bleu"}, prefix="translation.prune.train")
    with pytest.raises(ConfigError, match="translation.train.steps.*unknown key"):
        Seq2SeqTrainConfig.from_dict({"steps": 10})


@pytest.mark.parametrize("scheduler", ["inverse_sqrt", "cosine"])
def test_schedules_warm_up_to_the_peak_then_decay(scheduler):
    f = lr_lambda(Seq2SeqTrainConfig(scheduler=scheduler, warmup_steps=100), total=1000)
    assert f(50) == pytest.approx(0.5) and f(100) == pytest.approx(1.0)
    assert f(400) < f(200) < 1.0
    if scheduler == "cosine":
        assert f(1000) == pytest.approx(0.0, abs=1e-12)
    else:
        assert f(400) == pytest.approx(0.5)  # sqrt(100 / 400)


def test_corpus_folder_from_config_or_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("EN_RU_DIR", raising=False)
    assert resolve_dir(None) is None  # neither set: the workflow falls back to the Hub
    monkeypatch.setenv("EN_RU_DIR", str(tmp_path))
    assert resolve_dir(None) == tmp_path.resolve()
    with pytest.raises(ConfigError, match="config key 'translation.data.dir'.*does not exist"):
        resolve_dir(str(tmp_path / "missing"))
    monkeypatch.setenv("EN_RU_DIR", str(tmp_path / "gone"))
    with pytest.raises(ConfigError, match="environment variable 'EN_RU_DIR'"):
        resolve_dir(None)
