"""Cleaning and validation of CoNLL splits, with a report of what was dropped and why.

Filters are configurable so the same step serves noisy web text: regex rules that drop
a sentence, regex rules stripped from tokens, and length bounds.
"""

import codecs
import math
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field

from ..core.errors import ConfigError, DataError
from ..core.splits import SPLITS
from .conll import Sentence, iob1_violations, label_list, read_conll, to_iob2

NOT_DROPS = ("stripped_tokens", "iob1_tags_converted")  # counted, but no sentence is removed for them

# A split looks like it lost its sentence breaks (blank lines) when its longest sentence has more than
# MAX_SENTENCE_TOKENS tokens, or, with at least OUTLIER_MIN_OTHERS other sentences, more than OUTLIER_FACTOR
# times the 99th-percentile length of the others. CoNLL-2003's longest sentence has 124 tokens.
MAX_SENTENCE_TOKENS = 1000
OUTLIER_FACTOR = 10
OUTLIER_MIN_OTHERS = 10
REPLACEMENT_CHAR = "\ufffd"


class DataWarning(UserWarning):
    """Valid but suspicious input; every one is also listed in the cleaning report's `warnings`."""


@dataclass
class Filters:
    drop_regex: list = field(default_factory=list)
    strip_regex: list = field(default_factory=list)
    min_tokens: int = 1
    max_tokens: int | None = None

    @classmethod
    def from_config(cls, cfg):
        cfg = dict(cfg or {})
        f = cls(**{k: cfg[k] for k in ("drop_regex", "strip_regex", "min_tokens", "max_tokens") if k in cfg})
        for key in ("drop_regex", "strip_regex"):
            for i, pattern in enumerate(getattr(f, key)):
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise ConfigError(f"data.filters.{key}[{i}]", f"bad regex {pattern!r}: {e}") from None
        return f

    def compiled(self):
        return [re.compile(p) for p in self.drop_regex], [re.compile(p) for p in self.strip_regex]


def filter_sentences(sentences, filters, counts):
    """Apply drop/strip/length rules; `counts` collects how many sentences each rule removed."""
    drop, strip = filters.compiled()
    kept = []
    for s in sentences:
        text = " ".join(s.tokens)
        rule = next((p.pattern for p in drop if p.search(text)), None)
        if rule is not None:
            counts[f"drop_regex:{rule}"] += 1
            continue
        tokens, tags, offsets = s.tokens, s.tags, s.offsets
        if strip:
            tokens, tags, offsets = strip_tokens(s, strip)
            counts["stripped_tokens"] += len(s.tokens) - len(tokens)
        if not tokens:
            counts["empty"] += 1
            continue
        if len(tokens) < filters.min_tokens:
            counts["too_short"] += 1
            continue
        if filters.max_tokens and len(tokens) > filters.max_tokens:
            counts["too_long"] += 1
            continue
        kept.append(Sentence(tokens, tags, s.line, s.path, offsets))
    return kept


def strip_tokens(s, patterns):
    """Delete pattern matches from tokens and drop tokens left empty, keeping entity spans intact.

    A removed B-X hands its B- to the next kept token when that token continues the entity
    (B-X I-X), and the result is repaired to IOB2, so stripping never merges or orphans entities.
    Returns tokens, tags and each kept token's line offset in the original sentence.
    """
    tokens, tags, offsets = [], [], []
    pending_begin = None
    for i, (tok, tag) in enumerate(zip(s.tokens, s.tags)):
        for p in patterns:
            tok = p.sub("", tok)
        if not tok:
            pending_begin = tag[2:] if tag.startswith("B-") else pending_begin if tag.startswith("I-") else None
            continue
        if pending_begin is not None and tag == f"I-{pending_begin}":
            tag = f"B-{pending_begin}"
        pending_begin = None
        tokens.append(tok)
        tags.append(tag)
        offsets.append(s.offsets[i] if s.offsets is not None else i)
    return tokens, to_iob2(tags), offsets


def fix_scheme(sentences, scheme, counts):
    """Check IOB2, converting IOB1 when `scheme` is 'auto' or 'iob1'; strict 'iob2' fails on the first violation."""
    out = []
    for s in sentences:
        bad = iob1_violations(s.tags)
        if bad and scheme == "iob2":
            i = bad[0]
            raise DataError(s.path, s.line_of(i),
                            f"tag '{s.tags[i]}' starts an entity without B- (IOB1); "
                            "set data.tag_scheme: auto to convert IOB1 to IOB2")
        counts["iob1_tags_converted"] += len(bad)
        out.append(Sentence(s.tokens, to_iob2(s.tags), s.line, s.path, s.offsets) if bad else s)
    return out


def split_encodings(encoding):
    """{split: (encoding or 'auto', its config key)} from data.encoding: one name for every split, or a
    mapping naming each split. An unknown codec or split fails naming the key."""
    if isinstance(encoding, str):
        per = {s: (encoding, "data.encoding") for s in SPLITS}
    elif isinstance(encoding, dict):
        unknown = sorted(set(encoding) - set(SPLITS))
        if unknown:
            raise ConfigError(f"data.encoding.{unknown[0]}", f"is not a split (splits: {', '.join(SPLITS)})")
        missing = [s for s in SPLITS if s not in encoding]
        if missing:
            raise ConfigError("data.encoding", f"names no encoding for {', '.join(missing)} "
                              "(a mapping names every split; use auto to detect one)")
        per = {s: (encoding[s], f"data.encoding.{s}") for s in SPLITS}
    else:
        raise ConfigError("data.encoding", f"must be an encoding name, auto, or a mapping per split, not {encoding!r}")
    for name, key in per.values():
        if not isinstance(name, str) or (name != "auto" and _no_codec(name)):
            raise ConfigError(key, f"unknown encoding {name!r} (use auto or a Python codec name such as "
                              "utf-8 or latin-1)")
    return per


def _no_codec(name):
    try:
        codecs.lookup(name)
        return False
    except LookupError:
        return True


def sentence_stats(sentences):
    """Number of sentences, the longest (tokens and first line) and the 99th-percentile length of the others."""
    if not sentences:
        return {"sentences": 0, "longest_sentence": None, "p99_other_sentence_tokens": None}
    lengths = [len(s.tokens) for s in sentences]
    i = max(range(len(lengths)), key=lengths.__getitem__)
    others = sorted(lengths[:i] + lengths[i + 1:])
    p99 = others[math.ceil(0.99 * len(others)) - 1] if others else None  # nearest rank
    return {"sentences": len(sentences), "longest_sentence": {"tokens": lengths[i], "line": sentences[i].line},
            "p99_other_sentence_tokens": p99}


def lost_breaks(stats):
    """Why a split looks like it lost its sentence breaks (see MAX_SENTENCE_TOKENS), or None."""
    longest, p99 = stats["longest_sentence"], stats["p99_other_sentence_tokens"]
    if longest is None:
        return None
    if longest["tokens"] > MAX_SENTENCE_TOKENS:
        return f"more than {MAX_SENTENCE_TOKENS}"
    if stats["sentences"] - 1 >= OUTLIER_MIN_OTHERS and longest["tokens"] > OUTLIER_FACTOR * p99:
        return f"more than {OUTLIER_FACTOR}x the 99th percentile of the other sentences ({p99} tokens)"
    return None


def input_checks(split, path, res, report):
    """The split's encoding, sentence and U+FFFD statistics into `report`; a DataWarning for each doubt."""
    stats = sentence_stats(res.sentences)
    bad = [(s, i) for s in res.sentences for i, tok in enumerate(s.tokens) if REPLACEMENT_CHAR in tok]
    found = []
    if res.encoding_doubt:
        found.append(f"{split} ({path}): {res.encoding_doubt}")
    if bad:
        s, i = bad[0]
        found.append(f"{split} ({path}): {len(bad)} tokens contain the U+FFFD replacement character, first at "
                     f"line {s.line_of(i)} ({s.tokens[i]!r}); bytes were lost before the file reached the "
                     "pipeline (decoded with the wrong encoding and saved again)")
    why = lost_breaks(stats)
    if why:
        longest = stats["longest_sentence"]
        found.append(f"{split} ({path}): the sentence at line {longest['line']} has {longest['tokens']} tokens, "
                     f"{why}; the file may lack the blank lines between sentences "
                     f"({stats['sentences']} sentences, {sum(len(s.tokens) for s in res.sentences)} tokens)")
    report["splits"][split].update({
        "encoding": res.encoding, "encoding_from": res.encoding_from, **stats,
        "replacement_char_tokens": len(bad), "sentence_breaks_suspect": why is not None,
    })
    for message in found:
        warnings.warn(message, DataWarning, stacklevel=3)
    report["warnings"] += found


def clean_corpus(paths, encoding="auto", tag_scheme="auto", on_malformed="error", filters=None):
    """Read, validate and clean all splits. Returns ({split: sentences}, labels, report).

    `encoding` is data.encoding: a codec name or auto for every split, or a mapping naming each split's.
    """
    filters = filters or Filters()
    if tag_scheme not in ("auto", "iob1", "iob2"):
        raise ConfigError("data.tag_scheme", f"must be auto, iob1 or iob2, not {tag_scheme!r}")
    encodings = split_encodings(encoding)
    splits, report = {}, {"splits": {}, "rejected_lines": [], "warnings": []}
    for split in SPLITS:
        enc, key = encodings[split]
        res = read_conll(paths[split], encoding=enc, on_malformed=on_malformed, key=key)
        report["splits"][split] = {"file": str(paths[split])}
        input_checks(split, paths[split], res, report)
        counts = Counter()
        counts["malformed"] = len(res.rejected)
        report["rejected_lines"] += [f"{w}: {why}" for w, why in res.rejected]
        sents = fix_scheme(res.sentences, tag_scheme, counts)
        sents = filter_sentences(sents, filters, counts)
        if not sents:
            raise DataError(paths[split], None, f"the {split} split has no sentences left"
                            + (" after cleaning" if res.sentences else ""))
        splits[split] = sents
        report["splits"][split].update({
            "rows_in": len(res.sentences) + len(res.rejected),
            "rows_out": len(sents),
            "tokens_out": sum(len(s.tokens) for s in sents),
            "dropped": {k: v for k, v in sorted(counts.items()) if v and k not in NOT_DROPS},
            "stripped_tokens": counts["stripped_tokens"],
            "iob1_tags_converted": counts["iob1_tags_converted"],
        })

    labels = label_list(splits["train"])
    known = set(labels)
    for split in ("validation", "test"):
        for s in splits[split]:
            for i, tag in enumerate(s.tags):
                if tag not in known:
                    raise DataError(s.path, s.line_of(i),
                                    f"tag '{tag}' never occurs in the train split "
                                    f"({paths['train']}); the model could not learn it")

    train_keys = {tuple(s.tokens) for s in splits["train"]}
    report["leakage"] = {
        f"{split}_sentences_also_in_train": sum(tuple(s.tokens) in train_keys for s in splits[split])
        for split in ("validation", "test")
    }
    report["labels"] = labels
    return splits, labels, report


def subsample(sentences, n, seed):
    """A seeded random subset of n sentences, kept in file order (documents stay readable)."""
    import random

    keep = sorted(random.Random(seed).sample(range(len(sentences)), n))
    return [sentences[i] for i in keep]
