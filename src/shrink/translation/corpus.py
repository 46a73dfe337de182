"""Parallel corpus: reading aligned files, cleaning with a report, and a synthetic toy corpus.

A corpus split is two files, `{prefix}.en` and `{prefix}.ru`, where line N of one is the
translation of line N of the other. Pairs are lists of (source, target) strings.
"""

import codecs
import random
import re
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.atomic import atomic_path
from ..core.errors import ConfigError, DataError, reject_unknown_keys
from ..core.splits import SPLITS

# Every filter that drops a pair, in the order they are applied (a pair counts under the first it fails).
FILTERS = ("empty", "untranslated", "length_ratio", "too_long", "too_short", "duplicate",
           "test_overlap", "validation_overlap")
# Flagged pairs that are nevertheless kept: evaluation sets stay complete, and overlap may be allowed.
FLAGS = ("untranslated_kept", "test_overlap_kept", "validation_overlap_kept")
CYRILLIC = "[\\u0400-\\u04FF]"

Pair = tuple[str, str]


# ---------------------------------------------------------------- reading and writing


def _read_lines(path: Path, encoding: str) -> list[str]:
    """Lines of `path` without their "\\n" or "\\r\\n" ending; a bad byte is reported as file:line."""
    if not path.is_file():
        raise DataError(path, None, "file not found (each split needs one file per language)")
    raw = path.read_bytes()
    chunks = raw.split(b"\n")
    if chunks[-1] == b"":  # a final newline ends the last line, it does not start a new one
        chunks.pop()
    lines = []
    # Decoding line by line (not the whole file) pins a bad byte to its line number.
    for n, chunk in enumerate(chunks, 1):
        try:
            lines.append(chunk.decode(encoding).removesuffix("\r"))
        except UnicodeDecodeError as e:
            raise DataError(path, n, f"byte 0x{chunk[e.start]:02x} is not valid {encoding}; set the config key "
                                     "translation.data.encoding to the file's encoding (for example cp1251)") from None
    return lines


def read_pairs(prefix, src: str = "en", tgt: str = "ru", encoding: str = "utf-8") -> list[Pair]:
    """Aligned (source, target) lines of `{prefix}.{src}` and `{prefix}.{tgt}`."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ConfigError("translation.data.encoding", f"unknown encoding {encoding!r}") from None
    src_path, tgt_path = Path(f"{prefix}.{src}"), Path(f"{prefix}.{tgt}")
    sources, targets = _read_lines(src_path, encoding), _read_lines(tgt_path, encoding)
    if len(sources) != len(targets):
        raise DataError(src_path, None, f"has {len(sources)} lines but {tgt_path} has {len(targets)}; "
                                        "line N of one file must translate line N of the other")
    return list(zip(sources, targets))


def read_split(prefixes, src: str = "en", tgt: str = "ru", encoding: str = "utf-8") -> list[Pair]:
    """All pairs of several corpora (each a path prefix), in order."""
    return [pair for prefix in prefixes for pair in read_pairs(prefix, src, tgt, encoding)]


def write_pairs(folder, split: str, pairs: list[Pair], src: str = "en", tgt: str = "ru") -> tuple[Path, Path]:
    """Write `{folder}/{split}.{src}` and `.{tgt}` atomically: UTF-8, one sentence a line."""
    for i, pair in enumerate(pairs):
        if any("\n" in s or "\r" in s for s in pair):
            # a line break inside a sentence would shift every later line out of alignment
            raise DataError(f"split '{split}'", None, f"pair {i} contains a line break: {pair!r}")
    paths = []
    for lang, side in ((src, 0), (tgt, 1)):
        path = Path(folder) / f"{split}.{lang}"
        with atomic_path(path) as tmp:
            tmp.write_text("".join(p[side] + "\n" for p in pairs), encoding="utf-8", newline="\n")
        paths.append(path)
    return paths[0], paths[1]


# ---------------------------------------------------------------- cleaning


def _key(name: str) -> str:
    return f"translation.clean.{name}"


@dataclass
class CleanConfig:
    max_len_ratio: float = 3.0  # longer/shorter side in characters ...
    ratio_min_chars: int = 10  # ... checked only when both sides have at least this many characters
    max_words: int = 100
    min_words: int = 1
    dedupe: bool = True
    drop_test_overlap: bool = True  # drop train pairs sharing a side with the test or validation split
    target_script: str | None = CYRILLIC  # a target with no match is untranslated; None disables the check

    def __post_init__(self):
        for name in ("ratio_min_chars", "max_words", "min_words"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(_key(name), f"must be a non-negative integer, not {value!r}")
        ratio = self.max_len_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 1:
            raise ConfigError(_key("max_len_ratio"), f"must be a number > 1 (longer side / shorter side), not {ratio!r}")
        if self.max_words < self.min_words:
            raise ConfigError(_key("max_words"), f"{self.max_words} is below min_words ({self.min_words})")
        for name in ("dedupe", "drop_test_overlap"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(_key(name), f"must be true or false, not {getattr(self, name)!r}")
        if self.target_script is not None:
            try:
                re.compile(self.target_script)
            except (re.error, TypeError) as e:
                raise ConfigError(_key("target_script"), f"bad regex {self.target_script!r}: {e}") from None

    @classmethod
    def from_config(cls, d: dict | None) -> "CleanConfig":
        """Build from the `translation.clean` config section; unknown keys are errors, not silently ignored."""
        d = dict(d or {})
        reject_unknown_keys(d, cls, "translation.clean")
        return cls(**d)


def normalize(text: str) -> str:
    """NFC, every whitespace run (tabs, NBSP, ...) as one space, no leading/trailing space."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()


def _untranslated(src: str, tgt: str, script: re.Pattern | None) -> bool:
    """The target is a copy of the source, or has no letter of the target script while the source has letters."""
    if src.casefold() == tgt.casefold():
        return True
    return script is not None and not script.search(tgt) and any(c.isalpha() for c in src)


def _length_filter(src: str, tgt: str, cfg: CleanConfig) -> str | None:
    shorter, longer = sorted((len(src), len(tgt)))
    if shorter >= cfg.ratio_min_chars and longer / shorter > cfg.max_len_ratio:
        return "length_ratio"
    words = (len(src.split()), len(tgt.split()))
    if max(words) > cfg.max_words:
        return "too_long"
    if min(words) < cfg.min_words:
        return "too_short"
    return None


def hold_out(pairs: list[Pair], size: int, seed: int, key: str = "translation.data.holdout.size"):
    """(held, rest): `size` pairs drawn at random with `seed`, and the others in their original order.

    Cleaning later drops every train pair that shares a side with a held-out pair (test overlap), so a
    sentence repeated with another translation does not leak across the split.
    """
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size < len(pairs):
        raise ConfigError(key, f"must be an integer between 1 and {len(pairs) - 1} (the corpus has "
                               f"{len(pairs)} pairs), not {size!r}")
    chosen = set(random.Random(seed).sample(range(len(pairs)), size))
    return [pairs[i] for i in sorted(chosen)], [p for i, p in enumerate(pairs) if i not in chosen]


def _clean_eval(pairs: list[Pair], script) -> tuple[list[Pair], Counter]:
    """Validation/test: only empty pairs go; untranslated ones are counted but kept, so scores stay comparable."""
    kept, counts = [], Counter()
    for src, tgt in pairs:
        if not src or not tgt:
            counts["empty"] += 1
            continue
        if _untranslated(src, tgt, script):
            counts["untranslated_kept"] += 1
        kept.append((src, tgt))
    return kept, counts


def _clean_train(pairs: list[Pair], cfg: CleanConfig, script, held_out: dict[str, list[Pair]]):
    """All filters, then overlap with the held-out splits (test first, so a pair in both counts as test_overlap)."""
    sides = {name: ({s for s, _ in split}, {t for _, t in split}) for name, split in held_out.items()}
    kept, counts, seen = [], Counter(), set()
    for src, tgt in pairs:
        if not src or not tgt:
            reason = "empty"
        elif _untranslated(src, tgt, script):
            reason = "untranslated"
        else:
            reason = _length_filter(src, tgt, cfg)
        if reason is None and cfg.dedupe and (src, tgt) in seen:
            reason = "duplicate"
        if reason is not None:
            counts[reason] += 1
            continue
        seen.add((src, tgt))
        overlap = next((f"{name}_overlap" for name, (srcs, tgts) in sides.items() if src in srcs or tgt in tgts), None)
        if overlap and cfg.drop_test_overlap:
            counts[overlap] += 1
            continue
        if overlap:
            counts[f"{overlap}_kept"] += 1
        kept.append((src, tgt))
    return kept, counts


def clean_splits(splits: dict[str, list[Pair]], cfg: CleanConfig | None = None) -> tuple[dict[str, list[Pair]], dict]:
    """Normalize and filter the splits: `train` and the evaluation splits (`validation`, `test` and any
    extra test set, named `test_<name>`). Returns (cleaned splits, report).

    The report always has every filter and flag name, with zero counts, so reports compare key by key.
    """
    cfg = cfg or CleanConfig()
    script = re.compile(cfg.target_script) if cfg.target_script else None
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        raise DataError("translation.data.splits", None, f"no {missing} split")
    normalized = {split: [(normalize(s), normalize(t)) for s, t in pairs] for split, pairs in splits.items()}
    out, counts = {}, {}
    evaluation = [s for s in splits if s != "train"]
    for split in evaluation:  # cleaned first: train overlap is checked against what they keep
        out[split], counts[split] = _clean_eval(normalized[split], script)
    # Test sets first, so a pair in both a test set and validation counts as test_overlap.
    held_out = {}
    for split in sorted(evaluation, key=lambda s: not s.startswith("test")):
        name = "test" if split.startswith("test") else "validation"
        held_out[name] = held_out.get(name, []) + out[split]
    out["train"], counts["train"] = _clean_train(normalized["train"], cfg, script, held_out)

    report = {"splits": {}, "config": asdict(cfg)}
    for split in splits:
        c, n_read = counts[split], len(splits[split])
        report["splits"][split] = {"read": n_read, "kept": len(out[split]),
                                   "dropped": {f: c[f] for f in FILTERS}, **{f: c[f] for f in FLAGS}}
        if not out[split]:
            why = ", ".join(f"{f}={c[f]}" for f in FILTERS if c[f]) or "nothing"
            raise DataError(f"split '{split}'", None,
                            f"no pairs left after cleaning ({n_read} read; dropped: {why})" if n_read
                            else "no pairs: the input files are empty")
    return {split: out[split] for split in splits}, report


# ---------------------------------------------------------------- synthetic corpus

# A toy English -> "Russian" language. Cyrillic words are fixed per English word form; the
# grammar drops determiners, keeps adjective-noun order, moves the verb to the end and the
# adverb to the front, so a model has to reorder, not just copy word by word.
NOUNS = [  # English singular, plural; Russian singular, plural
    ("cat", "cats", "кот", "коты"), ("dog", "dogs", "пёс", "псы"), ("bird", "birds", "птица", "птицы"),
    ("fish", "fish", "рыба", "рыбы"), ("horse", "horses", "конь", "кони"), ("mouse", "mice", "мышь", "мыши"),
    ("child", "children", "ребёнок", "дети"), ("farmer", "farmers", "фермер", "фермеры"),
    ("teacher", "teachers", "учитель", "учителя"), ("king", "kings", "король", "короли"),
]
VERBS = [  # English with a singular subject, with a plural one; Russian likewise
    ("sees", "see", "видит", "видят"), ("likes", "like", "любит", "любят"), ("chases", "chase", "гонит", "гонят"),
    ("feeds", "feed", "кормит", "кормят"), ("finds", "find", "находит", "находят"),
    ("hears", "hear", "слышит", "слышат"), ("knows", "know", "знает", "знают"),
    ("helps", "help", "помогает", "помогают"),
]
ADJECTIVES = {"big": "большой", "small": "маленький", "red": "красный", "old": "старый", "young": "молодой",
              "happy": "весёлый", "black": "чёрный", "white": "белый"}
NUMBERS = {"two": "два", "three": "три", "four": "четыре", "five": "пять"}
ADVERBS = {"today": "сегодня", "again": "снова", "often": "часто", "now": "сейчас"}


def _noun_phrase(rng: random.Random) -> tuple[list[str], list[str], bool]:
    """English words, Russian words and plurality of a noun phrase of 1-3 words."""
    en_sg, en_pl, ru_sg, ru_pl = rng.choice(NOUNS)
    adj = rng.choice(sorted(ADJECTIVES)) if rng.random() < 0.5 else None
    plural = rng.random() < 0.5
    if plural:
        number = rng.choice(sorted(NUMBERS)) if rng.random() < 0.6 else None
        en = [w for w in (number, adj, en_pl) if w]
        ru = [w for w in (NUMBERS.get(number), ADJECTIVES.get(adj), ru_pl) if w]
    else:
        det = rng.choice(["the", "a"])
        en = [det, *([adj] if adj else []), en_sg]
        if det == "a" and en[1][0] in "aeiou":
            en[0] = "an"
        ru = [w for w in (ADJECTIVES.get(adj), ru_sg) if w]
    return en, ru, plural


def _sentence(rng: random.Random) -> Pair:
    """A 3-8 word sentence: subject verb object [adverb] -> [adverb] subject object verb."""
    subj_en, subj_ru, plural = _noun_phrase(rng)
    obj_en, obj_ru, _ = _noun_phrase(rng)
    verb = rng.choice(VERBS)
    adverb = rng.choice(sorted(ADVERBS)) if rng.random() < 0.3 else None
    en = [*subj_en, verb[1] if plural else verb[0], *obj_en, *([adverb] if adverb else [])]
    ru = [*([ADVERBS[adverb]] if adverb else []), *subj_ru, *obj_ru, verb[3] if plural else verb[2]]
    return " ".join(en), " ".join(ru)


def _unique_pairs(rng: random.Random, n: int) -> list[Pair]:
    """n pairs with no source and no target repeated, so no two splits share a side."""
    pairs, sources, targets = [], set(), set()
    while len(pairs) < n:
        src, tgt = _sentence(rng)
        if src not in sources and tgt not in targets:
            pairs.append((src, tgt))
            sources.add(src)
            targets.add(tgt)
    return pairs


def synthetic_corpus(n_train: int = 2000, n_valid: int = 200, n_test: int = 200, seed: int = 0) -> dict[str, list[Pair]]:
    """A deterministic toy parallel corpus that a tiny Transformer learns in a minute on CPU.

    Splits share no source and no target sentence. Train holds n_train clean pairs plus four
    dirty ones at random positions, for cleaning to find:
      - an empty target (filter `empty`),
      - an exact copy of another train pair (`duplicate`),
      - a source copied as its own target (`untranslated`),
      - a target repeated six times (`length_ratio`).
    """
    rng = random.Random(seed)
    pairs = _unique_pairs(rng, n_train + n_valid + n_test + 3)
    train = pairs[:n_train]
    valid = pairs[n_train:n_train + n_valid]
    test = pairs[n_train + n_valid:n_train + n_valid + n_test]
    (empty_src, _), (copy_src, _), (long_src, long_tgt) = pairs[-3:]
    dirty = [(empty_src, ""), rng.choice(train), (copy_src, copy_src), (long_src, " ".join([long_tgt] * 6))]
    for pair in dirty:
        train.insert(rng.randrange(len(train) + 1), pair)
    return {"train": train, "validation": valid, "test": test}
