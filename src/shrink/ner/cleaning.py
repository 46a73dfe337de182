"""Cleaning and validation of CoNLL splits, with a report of what was dropped and why.

Filters are configurable so the same step serves noisy web text: regex rules that drop
a sentence, regex rules stripped from tokens, and length bounds.
"""

import re
from collections import Counter
from dataclasses import dataclass, field

from ..core.errors import ConfigError, DataError
from ..core.splits import SPLITS
from .conll import Sentence, iob1_violations, label_list, read_conll, to_iob2

NOT_DROPS = ("stripped_tokens", "iob1_tags_converted")  # counted, but no sentence is removed for them


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


def clean_corpus(paths, encoding="utf-8", tag_scheme="auto", on_malformed="error", filters=None):
    """Read, validate and clean all splits. Returns ({split: sentences}, labels, report)."""
    filters = filters or Filters()
    if tag_scheme not in ("auto", "iob1", "iob2"):
        raise ConfigError("data.tag_scheme", f"must be auto, iob1 or iob2, not {tag_scheme!r}")
    splits, report = {}, {"splits": {}, "rejected_lines": []}
    for split in SPLITS:
        res = read_conll(paths[split], encoding=encoding, on_malformed=on_malformed)
        counts = Counter()
        counts["malformed"] = len(res.rejected)
        report["rejected_lines"] += [f"{w}: {why}" for w, why in res.rejected]
        sents = fix_scheme(res.sentences, tag_scheme, counts)
        sents = filter_sentences(sents, filters, counts)
        if not sents:
            raise DataError(paths[split], None, f"the {split} split has no sentences left"
                            + (" after cleaning" if res.sentences else ""))
        splits[split] = sents
        report["splits"][split] = {
            "file": str(paths[split]),
            "rows_in": len(res.sentences) + len(res.rejected),
            "rows_out": len(sents),
            "tokens_out": sum(len(s.tokens) for s in sents),
            "dropped": {k: v for k, v in sorted(counts.items()) if v and k not in NOT_DROPS},
            "stripped_tokens": counts["stripped_tokens"],
            "iob1_tags_converted": counts["iob1_tags_converted"],
        }

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
