"""Where raw data comes from: a local folder of CoNLL files, or a dataset on the Hugging Face Hub."""

from pathlib import Path

from ..core.atomic import atomic_path
from ..core.data_dirs import resolve_data_dir
from ..core.errors import ConfigError
from .cleaning import SPLITS
from .conll import Sentence, write_conll

ENV_VAR = "CONLL2003_DIR"


def resolve_conll_dir(configured, files=None):
    """The local CoNLL folder from config (data.conll_dir) or the environment, or None for the Hub.

    `files` is data.files, {split: file name inside the folder}; None means train.txt, validation.txt and
    test.txt. A missing file fails naming its data.files key (the folder's key when `files` is None).
    """
    folder, key, kind = resolve_data_dir(configured, "data.conll_dir", ENV_VAR)
    if folder is None:
        return None
    names = split_files(files)
    missing = [s for s in SPLITS if not (folder / names[s]).is_file()]
    if missing:
        where = "; ".join(f"data.files.{s}: {folder / names[s]}" for s in missing)
        if files is not None:
            key, kind = f"data.files.{missing[0]}", "config key"
        raise ConfigError(key, f"'{folder}' lacks {', '.join(names[s] for s in missing)} (expected {where}; "
                          "set data.files to the corpus's file names)", kind)
    return folder.resolve()


def split_files(files):
    """{split: file name} of data.files; a name must be a relative path inside the corpus folder."""
    if files is None:
        return {s: f"{s}.txt" for s in SPLITS}
    for s in SPLITS:
        name = files.get(s)
        if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
            raise ConfigError(f"data.files.{s}", f"must be a file name inside data.conll_dir, not {name!r}")
    return {s: files[s] for s in SPLITS}


def tag_names(dataset, column, where):
    """A function from one row's tag column to tag strings: ClassLabel ids through the feature's
    names, strings as they are; anything else fails naming the data.hub_columns.tags key."""
    from datasets import ClassLabel, Value

    feature = dataset.features[column]
    inner = getattr(feature, "feature", None)  # the element type of a datasets List (or Sequence)
    if isinstance(inner, ClassLabel):
        return lambda tags: [inner.names[t] for t in tags]
    if isinstance(inner, Value) and inner.dtype in ("string", "large_string"):
        return lambda tags: [str(t) for t in tags]
    raise ConfigError("data.hub_columns.tags", f"column {column!r} of {where} holds {feature}; it must be a "
                      "list of ClassLabel ids or of tag strings per sentence")


def fetch_hub(name, out_paths, revision=None, columns=None):
    """Download a token-classification dataset from the Hub (or read a local folder of data files,
    which `datasets.load_dataset` treats the same way) and write each split as a CoNLL file.

    `columns` is data.hub_columns: {tokens: words column, tags: tags column}, default `tokens` and
    `ner_tags` as in conll2003. Tags may be ClassLabel ids or strings.
    """
    from datasets import load_dataset

    columns = {"tokens": "tokens", "tags": "ner_tags", **(columns or {})}
    ds = load_dataset(name, revision=revision)
    for split in SPLITS:
        if split not in ds:
            raise ConfigError("data.hub_name", f"dataset '{name}' has no '{split}' split (has {list(ds)})")
        where = f"dataset '{name}' ({split} split)"
        for key, col in columns.items():
            if col not in ds[split].column_names:
                raise ConfigError(f"data.hub_columns.{key}", f"{where} has no column {col!r} "
                                  f"(has {ds[split].column_names})")
        names = tag_names(ds[split], columns["tags"], where)
        sents = [Sentence(list(r[columns["tokens"]]), names(r[columns["tags"]]), 0)
                 for r in ds[split] if len(r[columns["tokens"]])]
        with atomic_path(out_paths[split]) as tmp:
            write_conll(sents, tmp)
