"""Cleaning filters of the language-model text: each filter on crafted rows, with exact counts."""

import json
import os
from pathlib import Path

import pytest

from conftest import missing_corpus
from shrink.core.errors import ConfigError, DataError
from shrink.lm.clean import (
    ORDER,
    clean_documents,
    read_documents,
    resolve_settings,
    split_by_document,
)

BOOKS = Path(os.environ.get("POLISH_LM_DIR", Path(__file__).resolve().parents[2] / "shared/data/polish_lm"))

STORY = ("Rozdział pierwszy\r\n\r\nW Tyńcu, w gospodzie „Pod Lutym Turem”, siedziało kilku ludzi, "
         "słuchając opowiadania wojaka bywalca.\r\n\r\n— Żyje — odpowiadał Soroka.\r\n")
BOOK = ("Henryk Sienkiewicz\r\n\r\nKrzyżacy\r\nTom I\r\n\r\nISBN 978-83-288-2813-1\r\n\r\n\r\n\r\n\r\n"
        + STORY +
        "\r\n\r\n\r\n-----\r\nTa lektura, podobnie jak tysiące innych, dostępna jest na stronie wolnelektury.pl.\r\n"
        "\r\nWydawca: Fundacja Nowoczesna Polska\r\n\r\nISBN 978-83-288-2813-1\r\n")
CLEAN_STORY = STORY.replace("\r\n", "\n").strip("\n")

PARAGRAPH_404 = ("Serwer zwrócił mu wtedy błąd 404, więc zamknął komputer i poszedł do biblioteki, gdzie "
                 "przez całe popołudnie czytał Sienkiewicza, a wieczorem wrócił do domu pieszo przez park.")
WEB = [
    {"text": "<div>Error 404 page...</div>", "quality_ai": "HIGH"},
    {"text": "503 Service Unavailable\nnginx/1.18.0", "quality_ai": "HIGH"},
    {"text": PARAGRAPH_404, "quality_ai": "HIGH"},
    {"text": "W roku 404 cesarz przeniósł stolicę do Rawenny.", "quality_ai": "MEDIUM"},
    {"text": "kup teraz tanio kup teraz", "quality_ai": "LOW"},
    {"text": "Nowa książka (ISBN 978-83-01-00000-1) trafiła do księgarń.", "quality_ai": "HIGH"},
    {"text": "   \n  ", "quality_ai": "HIGH"},
    {"text": "Zwykły tekst bez błędów.\u2028"},  # a raw line separator must not split the JSON line
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def web_docs(tmp_path):
    return read_documents(write_jsonl(tmp_path / "web.jsonl", WEB))


def test_read_documents_book_and_jsonl(tmp_path):
    (tmp_path / "book.txt").write_bytes(BOOK.encode())
    write_jsonl(tmp_path / "web.jsonl", WEB)
    docs = read_documents(tmp_path)
    assert [d["source"] for d in docs] == ["book.txt"] + ["web.jsonl"] * len(WEB)
    assert docs[0]["text"] == BOOK  # CRLF kept for `normalize` to count
    assert docs[1] == {"text": WEB[0]["text"], "quality": "HIGH", "source": "web.jsonl", "line": 1}
    assert docs[-1]["quality"] is None and docs[-1]["line"] == len(WEB)


def test_malformed_jsonl_line_names_the_line(tmp_path):
    path = tmp_path / "web.jsonl"
    path.write_text('{"text": "dobry"}\n\n{"text": "zły"\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"web\.jsonl:3: malformed JSON") as e:
        read_documents(path)
    assert e.value.line == 3


def test_missing_text_field_names_the_line(tmp_path):
    path = write_jsonl(tmp_path / "web.jsonl", [{"text": "a"}, {"content": "b"}])
    with pytest.raises(DataError, match=r"web\.jsonl:2: no 'text' field"):
        read_documents(path)
    # the field name comes from the settings
    with pytest.raises(DataError, match=r"web\.jsonl:1: no 'content' field"):
        read_documents(path, {"text_field": "content"})


def test_book_header_footer_and_crlf(tmp_path):
    docs = [{"text": BOOK, "quality": None, "source": "krzyzacy.txt", "line": 1}]
    out, report = clean_documents(docs)
    assert [d["text"] for d in out] == [CLEAN_STORY]
    assert "\r" not in out[0]["text"] and "ISBN" not in out[0]["text"]
    assert report["normalize"]["rows_changed"] == 1
    assert report["publisher"]["rows_changed"] == 1
    assert report["isbn"]["rows_changed"] == 0  # the publisher filter already took both ISBN lines
    assert report["chars_in"] == len(BOOK) and report["chars_out"] == len(CLEAN_STORY)
    assert report["chars_in"] - report["chars_out"] == sum(report[f]["chars_removed"] for f in ORDER)


def test_normalize_details():
    # NBSP, trailing spaces, CRLF, CR, 4 blank lines (collapsed), 2 blank lines (kept), z + combining acute
    text = "a\u00a0b  \r\nc\rd\n\n\n\n\ne\n\n\nz\u0301 "
    out, report = clean_documents([{"text": text, "source": "x"}], {"publisher": False, "isbn": False})
    assert out[0]["text"] == "a b\nc\nd\n\ne\n\n\n\u017a"  # ź composed (NFC)
    assert report["normalize"]["chars_removed"] == len(text) - len(out[0]["text"])


def test_web_rows_counts(tmp_path):
    out, report = clean_documents(web_docs(tmp_path))
    texts = [d["text"] for d in out]
    assert texts == [PARAGRAPH_404, WEB[3]["text"], "Nowa książka trafiła do księgarń.", WEB[7]["text"].strip()]
    assert report["http_error"]["rows_dropped"] == 2
    assert report["http_error"]["chars_removed"] == len(WEB[0]["text"]) + len(WEB[1]["text"])
    assert report["quality"]["rows_dropped"] == 1
    assert report["isbn"]["rows_changed"] == 1
    assert report["isbn"]["chars_removed"] == len(WEB[5]["text"]) - len(texts[2])
    assert report["min_chars"]["rows_dropped"] == 1
    assert report["normalize"]["rows_changed"] == 2  # the blank row and the U+2028 row
    assert (report["rows_in"], report["rows_out"]) == (8, 4)
    assert report["chars_in"] - report["chars_out"] == sum(report[f]["chars_removed"] for f in ORDER)
    # rows keep their provenance
    assert [d["line"] for d in out] == [3, 4, 6, 8]


def test_http_error_pages_dropped_but_long_mentions_kept():
    pages = ["404 Not Found", "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>"
             "<p>The requested URL /a/b.html was not found on this server.</p><hr><address>Apache/2.4.41 "
             "(Ubuntu) Server at example.com Port 80</address></body></html>",
             "Błąd 404 - strona nie istnieje.", "HTTP Error 500 Internal Server Error", "Service Unavailable"]
    book = ("Mówiono, że ktoś napisał na drzwiach «Error 404 page not found», lecz nikt nie wiedział, "
            "co to znaczy. " * 30)
    kept = ["Dostałem błąd 404 i poszedłem spać, bo było późno.", book]
    docs = [{"text": t, "source": "web"} for t in pages + kept]
    out, report = clean_documents(docs)
    assert [d["text"] for d in out] == [k.strip() for k in kept]
    assert report["http_error"]["rows_dropped"] == len(pages)


def test_quality_labels_and_field_configurable(tmp_path):
    rows = [{"text": "a", "q": "low"}, {"text": "b", "q": "SPAM"}, {"text": "c", "q": "HIGH"}, {"text": "d"}]
    path = write_jsonl(tmp_path / "w.jsonl", rows)
    settings = {"quality": {"field": "q", "drop": ["LOW", "spam"]}}  # labels compared case-insensitively
    out, report = clean_documents(read_documents(path, settings), settings)
    assert [d["text"] for d in out] == ["c", "d"]
    assert report["quality"]["rows_dropped"] == 2


def test_switched_off_filters_leave_their_rows(tmp_path):
    off = {name: False for name in ORDER}
    docs = web_docs(tmp_path)
    out, report = clean_documents(docs, off)
    assert [d["text"] for d in out] == [r["text"] for r in WEB]
    assert all(report[f]["rows_dropped"] == report[f]["rows_changed"] == 0 for f in ORDER)
    assert not any(report[f]["enabled"] for f in ORDER)

    out, report = clean_documents(docs, {"http_error": False})
    assert WEB[0]["text"] in [d["text"] for d in out] and report["http_error"]["rows_dropped"] == 0
    out, report = clean_documents(docs, {"quality": False})
    assert WEB[4]["text"] in [d["text"] for d in out]
    out, _ = clean_documents(docs, {"isbn": False})
    assert WEB[5]["text"] in [d["text"] for d in out]
    out, report = clean_documents(docs, {"min_chars": 30})
    assert all(len(d["text"]) >= 30 for d in out) and report["min_chars"]["rows_dropped"] == 2  # blank row, 24-char row

    book = [{"text": BOOK, "source": "b.txt"}]
    out, report = clean_documents(book, {"publisher": False})
    assert out[0]["text"].startswith("Henryk Sienkiewicz") and "Ta lektura" in out[0]["text"]
    assert report["isbn"]["rows_changed"] == 1 and "ISBN" not in out[0]["text"]
    out, _ = clean_documents(book, {"normalize": False, "publisher": False, "isbn": False})
    assert out[0]["text"] == BOOK


def test_publisher_needs_both_footer_lines_and_early_isbn():
    # a long dash rule inside the text is a section break, and ISBN deep in the text is not a header
    text = "\n".join(["Tekst."] * 25 + ["ISBN 978-83-288-2813-1", "-" * 48, "Dalej.", "-----", "Koniec."])
    out, report = clean_documents([{"text": text, "source": "b"}], {"isbn": False})
    assert out[0]["text"] == text and report["publisher"]["rows_changed"] == 0


def test_settings_validated():
    with pytest.raises(ConfigError, match=r"lm\.clean\.bogus"):
        resolve_settings({"bogus": 1})
    with pytest.raises(ConfigError, match=r"lm\.clean\.quality\.fields"):
        resolve_settings({"quality": {"fields": "x"}})
    with pytest.raises(ConfigError, match=r"lm\.clean\.min_chars\.chars"):
        resolve_settings({"min_chars": {"chars": "ten"}})
    with pytest.raises(ConfigError, match=r"lm\.clean\.http_error"):
        resolve_settings({"http_error": "yes"})
    assert resolve_settings({"min_chars": 5})["min_chars"] == {"enabled": True, "chars": 5}
    with pytest.raises(ConfigError, match=r"lm\.clean\.quality\.drop"):
        resolve_settings({"quality": {"field": "q", "drop": [1]}})


def test_flat_config_spelling(tmp_path):
    """config/lm.yaml writes `quality: true, quality_drop: [...]`; both spellings mean the same."""
    flat = resolve_settings({"quality": True, "quality_drop": ["SPAM"], "quality_field": "q", "min_chars": 1})
    assert flat["quality"] == {"enabled": True, "field": "q", "drop": ["SPAM"]}
    assert resolve_settings({"quality": False, "quality_drop": ["X"]})["quality"]["enabled"] is False
    with pytest.raises(ConfigError, match=r"'lm\.clean\.quality_drop'"):
        resolve_settings({"quality_drop": "LOW"})


def test_split_keeps_books_whole():
    docs = [{"text": f"{s}-{i}", "source": s} for s in ("a.txt", "b.txt", "c.txt", "d.txt") for i in range(3)]
    train, val = split_by_document(docs, ["b", "d.txt"])
    assert {d["source"] for d in val} == {"b.txt", "d.txt"} and len(val) == 6
    assert {d["source"] for d in train} == {"a.txt", "c.txt"} and len(train) == 6

    train, val = split_by_document(docs, 1, seed=3)
    held = {d["source"] for d in val}
    assert len(held) == 1 and len(val) == 3 and not held & {d["source"] for d in train}
    assert split_by_document(docs, 1, seed=3) == (train, val)  # seeded

    with pytest.raises(ConfigError, match="no document named 'e'"):
        split_by_document(docs, ["e"])
    with pytest.raises(ConfigError, match="between 1 and 3"):
        split_by_document(docs, 4)


def test_real_books_lose_publisher_text():
    if not BOOKS.is_dir():
        missing_corpus("the Wolne Lektury books are not in POLISH_LM_DIR or ../shared/data")
    docs = read_documents(BOOKS)
    out, report = clean_documents(docs)
    assert report["rows_out"] == report["rows_in"] == len(docs)
    for d in out:
        assert "Ta lektura" not in d["text"] and "ISBN" not in d["text"] and "\r" not in d["text"]
