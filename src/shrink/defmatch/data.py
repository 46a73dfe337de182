"""Reading WiC-TSV splits (target sense verification) and a leak-free validation split.

A split is up to four line-aligned files in one folder:
  {split}_examples.txt     target <TAB> index <TAB> context
  {split}_definitions.txt  one definition per line
  {split}_hypernyms.txt    tab-separated hypernyms; multi-word ones joined by underscores
  {split}_labels.txt       T or F (absent for test, whose labels are kept secret)

`index` is a word index into `context.split()`: in the released train and dev splits the word
there equals the target in every line; in test it differs in case ("Python") or by inflection
("pythons") in about 30% of lines, so a mismatch is reported by `target_mismatches`, not refused.
"""

import random
from collections import defaultdict
from pathlib import Path

from ..core.errors import ConfigError, DataError, ShrinkError

LABELS = {"T": 1, "F": 0}


def _lines(path):
    """The file's lines without line ends; a final newline does not make an extra empty line."""
    text = Path(path).read_text(encoding="utf-8")
    lines = [line.rstrip("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _parse_example(path, number, line):
    fields = line.split("\t")
    if len(fields) != 3:
        raise DataError(path, number, f"expected 3 tab-separated fields (target, index, context), got {len(fields)}")
    target, index, context = fields
    words = context.split()
    try:
        index = int(index)
    except ValueError:
        raise DataError(path, number, f"target index {index!r} is not an integer") from None
    if not 0 <= index < len(words):
        raise DataError(path, number, f"target index {index} is outside the context's {len(words)} words")
    if not target.strip():
        raise DataError(path, number, "empty target word")
    return target, index, context


def read_split(folder, split):
    """Items of one split: dicts with target, index, context, definition, hypernyms (list), label (1/0 or None)."""
    folder = Path(folder)
    paths = {kind: folder / f"{split}_{kind}.txt" for kind in ("examples", "definitions", "hypernyms", "labels")}
    for kind in ("examples", "definitions", "hypernyms"):
        if not paths[kind].is_file():
            raise DataError(paths[kind], None, f"missing {kind} file of split {split!r}")
    has_labels = paths["labels"].is_file()
    columns = {kind: _lines(p) for kind, p in paths.items() if kind != "labels" or has_labels}

    n = len(columns["examples"])
    for kind, lines in columns.items():
        if len(lines) != n:
            # Name the first line that has no partner in the other file.
            raise DataError(paths[kind], min(len(lines), n) + 1,
                            f"has {len(lines)} lines but {paths['examples'].name} has {n}")

    items = []
    for i in range(n):
        target, index, context = _parse_example(paths["examples"], i + 1, columns["examples"][i])
        definition = columns["definitions"][i].strip()
        if not definition:
            raise DataError(paths["definitions"], i + 1, "empty definition")
        hypernyms = [h.replace("_", " ") for h in columns["hypernyms"][i].split("\t") if h.strip()]
        label = None
        if has_labels:
            raw = columns["labels"][i].strip()
            if raw not in LABELS:
                raise DataError(paths["labels"], i + 1, f"label must be T or F, got {raw!r}")
            label = LABELS[raw]
        items.append(dict(target=target, index=index, context=context, definition=definition,
                          hypernyms=hypernyms, label=label))
    return items


def target_mismatches(items):
    """(item number, target, context word at index) where the two differ ignoring case.

    Such items are kept (inflected forms are legitimate targets); this only lets a caller report them."""
    out = []
    for i, item in enumerate(items):
        word = item["context"].split()[item["index"]]
        if word.lower() != item["target"].lower():
            out.append((i, item["target"], word))
    return out


def validation_split(items, fraction, seed, key="definition_match.val_fraction"):
    """(train, val): about `fraction` of the items held out, whole target-word groups at a time.

    WiC-TSV repeats each target word across many items with different senses and contexts; a
    random item split would put the same word on both sides, and a head could then score well by
    memorising word-specific cues instead of matching contexts to definitions. So the distinct
    targets (case-insensitive) are shuffled with `seed` and whole groups go to validation until it
    holds at least `fraction` of the items. Both parts keep the input order.
    """
    if not 0 < fraction < 1:
        raise ConfigError(key, f"must be between 0 and 1 (exclusive), got {fraction!r}")
    groups = defaultdict(list)
    for i, item in enumerate(items):
        groups[item["target"].lower()].append(i)
    if len(groups) < 2:
        raise ShrinkError(f"a validation split by target word needs at least 2 distinct targets, got {len(groups)}")
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    want, held = fraction * len(items), set()
    for name in names[:-1]:  # the last group always stays in train, so train is never empty
        if len(held) >= want:
            break
        held.update(groups[name])
    train = [item for i, item in enumerate(items) if i not in held]
    val = [item for i, item in enumerate(items) if i in held]
    return train, val
