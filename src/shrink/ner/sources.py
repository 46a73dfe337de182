"""Where raw data comes from: a local folder of CoNLL files, or a dataset on the Hugging Face Hub."""

from ..core.atomic import atomic_path
from ..core.data_dirs import resolve_data_dir
from ..core.errors import ConfigError
from .cleaning import SPLITS
from .conll import Sentence, write_conll

ENV_VAR = "CONLL2003_DIR"


def resolve_conll_dir(configured):
    """The local CoNLL folder from config (data.conll_dir) or the environment, or None for the Hub."""
    folder, key, kind = resolve_data_dir(configured, "data.conll_dir", ENV_VAR)
    if folder is None:
        return None
    missing = [f"{s}.txt" for s in SPLITS if not (folder / f"{s}.txt").is_file()]
    if missing:
        raise ConfigError(key, f"'{folder}' lacks {', '.join(missing)} (expected train.txt, validation.txt, test.txt)",
                          kind)
    return folder.resolve()


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
