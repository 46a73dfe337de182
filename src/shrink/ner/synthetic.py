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


def write_corpus(out_dir, sizes=None, seed=0):
    """Write train/validation/test.txt in the 4-column CoNLL-2003 layout (token POS chunk NER)."""
    sizes = sizes or {"train": 400, "validation": 80, "test": 80}
    rng = random.Random(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, n in sizes.items():
        lines = ["-DOCSTART- -X- -X- O", ""]
        for _ in range(n):
            tokens, tags = _fill(rng.choice(TEMPLATES), rng)
            lines += [f"{t} NN I-NP {g}" for t, g in zip(tokens, tags)] + [""]
        (out_dir / f"{split}.txt").write_text("\n".join(lines), encoding="utf-8")
    return out_dir


if __name__ == "__main__":
    import sys

    write_corpus(sys.argv[1] if len(sys.argv) > 1 else "synthetic_conll")
