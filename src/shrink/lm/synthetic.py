"""A small synthetic Polish corpus in the layouts the cleaning filters handle, for tests and smoke runs.

Books are written like Wolne Lektury exports (CRLF, a header with an ISBN line, a footer from `-----`
/ `Ta lektura`); one JSONL file holds web rows, some of them HTTP error pages or marked low quality.
Sentences follow a tiny grammar, so a small model's loss falls well below uniform.
"""

import json
import random
from pathlib import Path

SUBJECTS = ["Młody książę", "Stary rycerz", "Pani Wokulska", "Mały Jaś", "Król", "Zagłoba", "Dziewczyna"]
VERBS = ["patrzył na", "szedł przez", "mówił o", "pamiętał", "widział", "kochał", "opuścił"]
OBJECTS = ["zielony las", "cichą rzekę", "stary zamek", "wielkie miasto", "ciemną noc", "swoją ojczyznę"]
ENDINGS = ["i milczał.", "bez słowa.", "przez cały dzień.", "jak we śnie.", "z wielkim żalem.", "."]

FOOTER = ("-----\r\nTa lektura, podobnie jak tysiące innych, dostępna jest na stronie wolnelektury.pl.\r\n\r\n"
          "Wydawca: Fundacja Nowoczesna Polska\r\n")


def sentence(rng):
    end = rng.choice(ENDINGS)
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}{'' if end == '.' else ' '}{end}"


def paragraph(rng, n_sentences=4):
    return " ".join(sentence(rng) for _ in range(n_sentences))


def book_text(rng, title, paragraphs):
    isbn = f"ISBN 978-83-288-{rng.randint(1000, 9999)}-{rng.randint(0, 9)}"
    header = f"Autor Syntetyczny\r\n\r\n{title}\r\n\r\n{isbn}\r\n\r\n\r\n\r\n"
    body = "\r\n\r\n".join(paragraph(rng) for _ in range(paragraphs))
    return header + "Rozdział pierwszy\r\n\r\n" + body + "\r\n\r\n\r\n\r\n" + FOOTER


def web_rows(rng, n):
    rows = []
    for i in range(n):
        kind = i % 10
        if kind == 0:
            rows.append({"text": "<div>Error 404 page not found</div>", "quality_ai": "HIGH"})
        elif kind == 1:
            rows.append({"text": "503 Service Unavailable", "quality_ai": "MEDIUM"})
        elif kind == 2:
            rows.append({"text": paragraph(rng, 2), "quality_ai": "LOW"})
        else:
            rows.append({"text": paragraph(rng), "quality_ai": "HIGH"})
    return rows


def write_corpus(folder, books, paragraphs, web_rows_count, seed):
    """Write `books` book files `ksiazka-N.txt` and `web.jsonl` into `folder`; returns the book names."""
    rng = random.Random(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(books):
        name = f"ksiazka-{i + 1}.txt"
        (folder / name).write_bytes(book_text(rng, f"Księga {i + 1}", paragraphs).encode("utf-8"))
        names.append(name)
    with open(folder / "web.jsonl", "w", encoding="utf-8") as f:
        for row in web_rows(rng, web_rows_count):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return names


def arc_items(n, seed, prefix):
    """Multiple-choice items in the ai2_arc layout, with 3-5 choices and some numeric labels."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        k = 3 + i % 3
        subject = rng.choice(SUBJECTS)
        right = rng.choice(OBJECTS)
        wrong = rng.sample([o for o in OBJECTS if o != right], k - 1)
        choices = wrong + [right]
        rng.shuffle(choices)
        labels = [str(j + 1) for j in range(k)] if i % 4 == 0 else "ABCDE"[:k]
        items.append({"id": f"{prefix}-{i}", "question": f"Co widział {subject.lower()}, gdy szedł przez {right}?",
                      "choices": {"text": choices, "label": list(labels)},
                      "answerKey": labels[choices.index(right)]})
    return items


def write_arc(folder, seed, sizes=(60, 20, 30)):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, (split, n) in enumerate(zip(("train", "validation", "test"), sizes)):
        items = arc_items(n, seed + i, split)
        (folder / f"ARC-Easy-{split}.json").write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
