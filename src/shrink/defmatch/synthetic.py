"""A small synthetic WiC-TSV-style corpus (target word, context, definition, T/F), for tests and smoke runs.

Each target word has two senses with their own context templates and definitions; an item pairs a
context of one sense with the definition of the same sense (T) or the other (F).
"""

import random
from pathlib import Path

SENSES = {
    "bank": [("the {w} of the river was muddy", "sloping land beside a body of water", "slope"),
             ("she opened an account at the {w}", "a financial institution that accepts deposits", "institution")],
    "mouse": [("the {w} ate the cheese in the kitchen", "a small rodent with a long tail", "rodent"),
              ("click the left {w} button twice", "a hand-operated device that moves a cursor", "device")],
    "spring": [("flowers bloom every {w} in the park", "the season of growth after winter", "season"),
               ("the {w} in the old mattress broke", "a metal coil that returns to its shape", "device")],
    "bat": [("a {w} flew out of the dark cave", "a nocturnal flying mammal", "mammal"),
            ("he swung the {w} and hit the ball", "a club used to hit a ball in sports", "club")],
    "crane": [("a {w} waded through the shallow marsh", "a tall wading bird with long legs", "bird"),
              ("the {w} lifted steel beams onto the roof", "a machine for lifting heavy weights", "machine")],
    "pitch": [("the players ran onto the {w} at noon", "a field on which a sport is played", "field"),
              ("the singer held a perfectly high {w}", "the highness or lowness of a sound", "property")],
}
PREFIXES = ["", "yesterday ", "I think ", "in the story ", "everyone knows "]


def items(n, seed):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        word = rng.choice(sorted(SENSES))
        senses = SENSES[word]
        ctx_sense = rng.randrange(2)
        label = i % 2 == 0
        template, _, _ = senses[ctx_sense]
        _, definition, hypernym = senses[ctx_sense if label else 1 - ctx_sense]
        context = rng.choice(PREFIXES) + template.format(w=word)
        index = context.split().index(word)
        out.append((word, index, context, definition, hypernym, "T" if label else "F"))
    return out


def write_corpus(folder, sizes, seed):
    """Write {split}_examples/definitions/hypernyms/labels.txt for `sizes` = {split: n} into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for k, (split, n) in enumerate(sorted(sizes.items())):
        rows = items(n, seed + k)
        (folder / f"{split}_examples.txt").write_text("".join(f"{w}\t{i}\t{c}\n" for w, i, c, *_ in rows))
        (folder / f"{split}_definitions.txt").write_text("".join(f"{r[3]}\n" for r in rows))
        (folder / f"{split}_hypernyms.txt").write_text("".join(f"{r[4]}\n" for r in rows))
        (folder / f"{split}_labels.txt").write_text("".join(f"{r[5]}\n" for r in rows))
