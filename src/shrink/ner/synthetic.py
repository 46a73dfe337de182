"""A small synthetic CoNLL-format NER corpus, so tests and smoke runs need no external data.

Sentences come from templates with slots for persons, places, organisations and
miscellaneous names; a tiny model can learn them, so metrics move away from zero.
"""

import random
from pathlib import Path

PER = ["John Smith", "Maria Garcia", "Wei Chen", "Anna Kowalska", "Ivan Petrov", "Peter Blackburn", "Fatima Khan"]
LOC = ["London", "Paris", "New York", "Warsaw", "Moscow", "Berlin", "Tokyo", "Brussels"]
ORG = ["Reuters", "European Commission", "Acme Corp", "United Nations", "Bayer", "Real Madrid"]
MISC = ["German", "British", "Olympic", "French", "Nobel"]
TEMPLATES = [
    "{PER} visited {LOC} on Monday .",
    "{ORG} said on Tuesday that {PER} will lead the team .",
    "The {MISC} delegation arrived in {LOC} .",
    "{PER} works for {ORG} in {LOC} .",
    "Shares of {ORG} rose 3 percent .",
    "{LOC} beat {LOC} 2-1 in the {MISC} cup .",
    "It was a quiet day .",
    "{PER} met {PER} at the {ORG} office .",
]


def _fill(template, rng):
    tokens, tags = [], []
    for piece in template.split():
        if piece.startswith("{"):
            kind = piece[1:-1]
            name = rng.choice({"PER": PER, "LOC": LOC, "ORG": ORG, "MISC": MISC}[kind]).split()
            tokens += name
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(name) - 1)
        else:
            tokens.append(piece)
            tags.append("O")
    return tokens, tags


def long_sentence(n_words, rng):
    """One sentence of `n_words` words, templates run together: longer than any window, to test windowing."""
    tokens, tags = [], []
    while len(tokens) < n_words:
        more_tokens, more_tags = _fill(rng.choice(TEMPLATES), rng)
        tokens += more_tokens
        tags += more_tags
    # a cut inside a name leaves B- then I-: still well-formed IOB2
    return tokens[:n_words], tags[:n_words]


def write_corpus(out_dir, sizes=None, seed=0, long_sentence_words=None):
    """Write train/validation/test.txt in the 4-column CoNLL-2003 layout (token POS chunk NER).

    `long_sentence_words`: append to validation one sentence of that many words, from an RNG of its own
    so the other sentences stay those of the same seed without it.
    """
    sizes = sizes or {"train": 400, "validation": 80, "test": 80}
    rng = random.Random(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, n in sizes.items():
        lines = ["-DOCSTART- -X- -X- O", ""]
        sentences = [_fill(rng.choice(TEMPLATES), rng) for _ in range(n)]
        if split == "validation" and long_sentence_words:
            sentences.append(long_sentence(long_sentence_words, random.Random(seed + 1)))
        for tokens, tags in sentences:
            lines += [f"{t} NN I-NP {g}" for t, g in zip(tokens, tags)] + [""]
        (out_dir / f"{split}.txt").write_text("\n".join(lines), encoding="utf-8")
    return out_dir


if __name__ == "__main__":
    import sys

    write_corpus(sys.argv[1] if len(sys.argv) > 1 else "synthetic_conll")
