"""Cleaning of language-model text, with a count of what each filter removed.

A "row" is one document: a whole book file (.txt), or one line of a .jsonl file (web text with a
text field and an optional quality label). Filters run in this fixed order, each switchable in the
config section `lm.clean`:

1. normalize   CRLF/CR -> LF, NFC, non-breaking spaces -> spaces, trailing spaces stripped,
               runs of 3+ blank lines collapsed to one blank line
2. http_error  drop short rows that are HTTP error pages (404/503 ... "Not Found", "<div>Error 404 page")
3. quality     drop rows whose quality label is listed in `quality.drop` (default LOW)
4. publisher   strip the Wolne Lektury header (up to the ISBN line) and footer (`-----` + `Ta lektura`)
5. isbn        strip ISBN tags left anywhere in the text
6. min_chars   drop rows shorter than N characters after cleaning (default 1: empty rows)

A row dropped by an earlier filter is counted there only. The report has, per filter, rows dropped,
rows changed and characters removed, plus totals, so chars_in - chars_out is the sum of removals.
"""

import html
import json
import random
import re
import unicodedata
from pathlib import Path

from ..core.errors import ConfigError, DataError

ORDER = ("normalize", "http_error", "quality", "publisher", "isbn", "min_chars")

# Options of each filter; `enabled` is implied. A filter may also be given as plain true/false.
DEFAULTS = {
    "normalize": {},
    "http_error": {"max_chars": 1000, "min_share": 0.3},
    "quality": {"field": "quality_ai", "drop": ["LOW"]},
    "publisher": {"header_lines": 20},
    "isbn": {},
    "min_chars": {"chars": 1},
}
TOP_LEVEL = {"text_field": "text"}
# Flat spellings of filter options, as the config file writes them: `quality_drop: [LOW]`.
FLAT = {"quality_drop": ("quality", "drop"), "quality_field": ("quality", "field")}


def resolve_settings(settings):
    """The `lm.clean` section with defaults filled in; unknown or ill-typed keys raise ConfigError.

    A filter is true/false or a mapping of its options (`quality: {drop: [LOW], field: quality_ai}`);
    `quality_drop` and `quality_field` are flat spellings of the quality options.
    """
    settings = dict(settings or {})
    out = dict(TOP_LEVEL)
    for key, value in settings.items():
        if key in TOP_LEVEL:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"lm.clean.{key}", f"must be a non-empty string, not {value!r}")
            out[key] = value
        elif key not in DEFAULTS and key not in FLAT:
            known = ", ".join(sorted([*TOP_LEVEL, *DEFAULTS, *FLAT]))
            raise ConfigError(f"lm.clean.{key}", f"unknown key (known: {known})")
    for name, defaults in DEFAULTS.items():
        out[name] = _filter_options(name, settings.get(name, True), defaults)
        for flat, (target, option) in FLAT.items():
            if target == name and flat in settings:
                out[name][option] = _filter_options(name, {option: settings[flat]}, defaults, flat_key=flat)[option]
    return out


def _filter_options(name, value, defaults, flat_key=None):
    opts = {"enabled": True, **defaults}
    if isinstance(value, bool):
        opts["enabled"] = value
        return opts
    if name == "min_chars" and isinstance(value, int):  # `min_chars: 50` is shorthand
        value = {"chars": value}
    if not isinstance(value, dict):
        raise ConfigError(f"lm.clean.{name}", f"must be true, false or a mapping of options, not {value!r}")
    for key, v in value.items():
        where = f"lm.clean.{flat_key or f'{name}.{key}'}"
        if key not in opts:
            raise ConfigError(where, f"unknown key (known: {', '.join(sorted(opts))})")
        expected = type(opts[key])
        if expected is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, expected) or (expected is int and isinstance(v, bool)):
            raise ConfigError(where, f"must be {expected.__name__}, not {v!r}")
        if expected in (int, float) and v < 0:
            raise ConfigError(where, f"must be >= 0, not {v}")
        if key == "drop" and not all(isinstance(x, str) for x in v):
            raise ConfigError(where, f"must be a list of labels (strings), not {v!r}")
        opts[key] = v
    return opts


# ---------------------------------------------------------------- reading

def read_documents(path, settings=None):
    """Rows of a .txt book (one row), a .jsonl file (one row per line) or a folder of them (sorted).

    Each row is dict(text, quality, source=<file name>, line=<line number, 1 for a book>).
    Text is kept byte-for-byte (CRLF included) so that `normalize` sees and counts it.
    """
    cfg = resolve_settings(settings)
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".txt", ".jsonl"))
        if not files:
            raise DataError(path, None, "the folder has no .txt or .jsonl files")
        return [row for f in files for row in read_documents(f, settings)]
    if not path.is_file():
        raise DataError(path, None, "no such file")
    try:
        raw = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[:e.start].count(b"\n") + 1
        raise DataError(path, line, f"not valid UTF-8 ({e.reason})") from None
    if path.suffix == ".jsonl":
        return _read_jsonl(path, raw, cfg["text_field"], cfg["quality"]["field"])
    return [{"text": raw, "quality": None, "source": path.name, "line": 1}]


def _read_jsonl(path, raw, text_field, quality_field):
    rows = []
    # split on "\n" only: str.splitlines would also break at U+2028 etc., which JSON strings may hold raw
    for n, line in enumerate(raw.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(path, n, f"malformed JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(path, n, f"expected a JSON object, got {type(obj).__name__}")
        if text_field not in obj:
            raise DataError(path, n, f"no '{text_field}' field (set lm.clean.text_field; "
                                     f"fields here: {', '.join(sorted(obj)) or 'none'})")
        if not isinstance(obj[text_field], str):
            raise DataError(path, n, f"field '{text_field}' is {type(obj[text_field]).__name__}, not a string")
        rows.append({"text": obj[text_field], "quality": obj.get(quality_field),
                     "source": path.name, "line": n})
    return rows


# ---------------------------------------------------------------- filters
# Each filter maps (text, row, options) -> new text, or None to drop the row.

NBSP = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2007": " "})


def normalize(text, row, opts):
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFC", text).translate(NBSP)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    # 3+ blank lines = 4+ newlines in a row; paragraph breaks (one blank line) are kept
    text = re.sub(r"\n{4,}", "\n\n", text)
    return text.strip("\n")


_CODES = r"(?:400|401|403|404|408|410|429|500|502|503|504)"
_ERROR_NAMES = (r"not found|forbidden|unauthori[sz]ed|bad request|internal server error|bad gateway|"
                r"service (?:temporarily )?unavailable|gateway time-?out|too many requests|gone")
# A row must match one of these to be an error page ...
HTTP_ERROR = re.compile("|".join([
    rf"\b(?:http\s*)?(?:error|błąd|blad|kod)\s*:?\s*{_CODES}\b(?:\s*(?:page|{_ERROR_NAMES}))?",
    rf"\b{_CODES}\s*[-–:]?\s*(?:error|page|{_ERROR_NAMES})\b",
    r"\b(?:page|file|url|resource)\s+not\s+found\b",
    r"\b(?:service (?:temporarily )?unavailable|internal server error|bad gateway|gateway time-?out)\b",
    r"^(?:not found|forbidden|bad request|access denied)\b",  # a page titled with the status name
    r"\b(?:the )?requested url\b[^\n]{0,200}?\bwas not found on this server\b",
    r"\byou don't have permission to access\b[^\n]{0,200}?(?:\bon this server\b|\bthis resource\b)",
    r"\bthe server is temporarily unable to service your request\b[^.\n]*",
    r"\bthe page you (?:are looking for|requested) (?:was not found|could not be found|does not exist)\b",
    r"\bstrona (?:nie została znaleziona|nie istnieje|o podanym adresie nie istnieje)\b",
    r"\bnie znaleziono (?:strony|pliku|zasobu)\b",
]), re.IGNORECASE)
# ... and these boilerplate parts count towards how much of the row is error text.
HTTP_BOILERPLATE = re.compile(
    r"\b(?:apache|nginx|cloudflare|microsoft-iis|openresty)(?:/[\d.]+)?(?:\s*\([^)\n]{0,40}\))?"
    r"(?:[^\n]{0,80}?\bport \d+)?|\bplease try again later\b|\bspróbuj ponownie później\b",
    re.IGNORECASE)
TAG = re.compile(r"<[^<>]{0,300}>")


def http_error(text, row, opts):
    """Drop a row that is an error page: it names an HTTP error and, with markup removed, is short
    (<= max_chars) and at least `min_share` of its characters are error text. A long paragraph that
    mentions "błąd 404" in passing keeps its row."""
    visible = " ".join(html.unescape(TAG.sub(" ", text)).split())
    if not visible or len(visible) > opts["max_chars"] or not HTTP_ERROR.search(visible):
        return text
    covered = set()
    for pattern in (HTTP_ERROR, HTTP_BOILERPLATE):
        for m in pattern.finditer(visible):
            covered.update(range(m.start(), m.end()))
    return None if len(covered) >= opts["min_share"] * len(visible) else text


def quality(text, row, opts):
    label = row.get("quality")
    if label is None:
        return text
    drop = {str(x).casefold() for x in opts["drop"]}
    return None if str(label).casefold() in drop else text


ISBN_NUMBER = r"(?:97[89][- ]?)?\d{1,5}[- ]?\d{1,7}[- ]?\d{1,7}[- ]?[\dXx]"
ISBN_LINE = re.compile(rf"^\s*ISBN(?:-1[03])?:?\s*{ISBN_NUMBER}\s*$")
FOOTER_RULE = re.compile(r"^-{5}\s*$")  # exactly five dashes: longer rules are section breaks in the books


def publisher(text, row, opts):
    """Strip the Wolne Lektury header (author, title, ISBN: everything up to the ISBN line, when it
    is within the first `header_lines` lines) and footer (from `-----` followed by `Ta lektura`)."""
    lines = text.splitlines(keepends=True)
    start = 0
    for i, line in enumerate(lines[:opts["header_lines"]]):
        if ISBN_LINE.match(line):
            start = i + 1
            break
    end = len(lines)
    for i in range(start, len(lines)):
        if FOOTER_RULE.match(lines[i]):
            nxt = next((ln for ln in lines[i + 1:] if ln.strip()), "")
            if nxt.lstrip().startswith("Ta lektura"):
                end = i
                break
    if start == 0 and end == len(lines):
        return text
    return "".join(lines[start:end]).strip("\r\n")


ISBN_TAG = re.compile(rf"[(\[]\s*ISBN(?:-1[03])?:?[ \t]*{ISBN_NUMBER}\s*[)\]]"
                      rf"|\bISBN(?:-1[03])?:?[ \t]*{ISBN_NUMBER}\b")


def isbn(text, row, opts):
    """Remove ISBN tags; a line left empty by the removal goes too, other lines keep their words."""
    if "ISBN" not in text:
        return text
    out = []
    for line in text.splitlines(keepends=True):
        new = ISBN_TAG.sub("", line)
        if new == line:
            out.append(line)
        elif new.strip():
            body = re.sub(r"[ \t]{2,}", " ", new.rstrip("\r\n")).strip(" \t")
            out.append(body + line[len(line.rstrip("\r\n")):])
    return "".join(out).strip("\r\n")


def min_chars(text, row, opts):
    return text if len(text.strip()) >= opts["chars"] else None


FILTERS = {"normalize": normalize, "http_error": http_error, "quality": quality,
           "publisher": publisher, "isbn": isbn, "min_chars": min_chars}
assert tuple(FILTERS) == ORDER


def clean_documents(docs, settings=None):
    """Apply the enabled filters in ORDER. Returns (kept rows as new dicts, report)."""
    cfg = resolve_settings(settings)
    report = {name: {"enabled": cfg[name]["enabled"], "rows_dropped": 0, "rows_changed": 0,
                     "chars_removed": 0} for name in ORDER}
    kept, chars_in = [], 0
    for row in docs:
        text = row["text"]
        chars_in += len(text)
        for name in ORDER:
            if not cfg[name]["enabled"]:
                continue
            new = FILTERS[name](text, row, cfg[name])
            counts = report[name]
            if new is None:
                counts["rows_dropped"] += 1
                counts["chars_removed"] += len(text)
                text = None
                break
            if new != text:
                counts["rows_changed"] += 1
                counts["chars_removed"] += len(text) - len(new)
                text = new
        if text is not None:
            kept.append({**row, "text": text})
    report.update(rows_in=len(docs), rows_out=len(kept), chars_in=chars_in,
                  chars_out=sum(len(r["text"]) for r in kept))
    return kept, report


# ---------------------------------------------------------------- hold-out

def split_by_document(docs, validation, seed=0, key="lm.data.validation"):
    """Hold out whole sources (books, or .jsonl files): (train_docs, val_docs).

    `validation` is a list of source names (a name may omit its .txt/.jsonl suffix) or a count of
    sources drawn with `seed`. No source is ever split between the two sides.
    """
    sources = sorted({d["source"] for d in docs})
    if isinstance(validation, bool) or not isinstance(validation, (int, list, tuple)):
        raise ConfigError(key, f"must be a list of document names or a count, not {validation!r}")
    if isinstance(validation, int):
        if not 1 <= validation < len(sources):
            raise ConfigError(key, f"a count of held-out documents must be between 1 and "
                                   f"{len(sources) - 1} (there are {len(sources)} documents), not {validation}")
        held = set(random.Random(seed).sample(sources, validation))
    else:
        if not validation:
            raise ConfigError(key, "names no document to hold out")
        by_stem = {Path(s).stem: s for s in sources}
        held = set()
        for name in validation:
            match = name if name in sources else by_stem.get(str(name))
            if match is None:
                raise ConfigError(key, f"no document named {name!r} (documents: {', '.join(sources)})")
            held.add(match)
        if held == set(sources):
            raise ConfigError(key, "holds out every document: nothing is left to train on")
    train = [d for d in docs if d["source"] not in held]
    val = [d for d in docs if d["source"] in held]
    return train, val
