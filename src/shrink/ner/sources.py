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


def fetch_hub(name, out_paths, revision=None):
    """Download a token-classification dataset from the Hub and write each split as a CoNLL file.

    Expects `tokens` and `ner_tags` columns with ClassLabel tag names, as in `conll2003`.
    """
    from datasets import load_dataset

    ds = load_dataset(name, revision=revision)
    for split in SPLITS:
        if split not in ds:
            raise ConfigError("data.hub_name", f"dataset '{name}' has no '{split}' split (has {list(ds)})")
        names = ds[split].features["ner_tags"].feature.names
        sents = [Sentence(list(r["tokens"]), [names[t] for t in r["ner_tags"]], 0)
                 for r in ds[split] if len(r["tokens"])]
        with atomic_path(out_paths[split]) as tmp:
            write_conll(sents, tmp)
