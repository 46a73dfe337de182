"""Reading and writing CoNLL-format NER files, and the IOB tag schemes.

A CoNLL file has one token per line, whitespace-separated columns with the token first
and the NER tag last, a blank line between sentences and `-DOCSTART-` lines between
documents. Every problem is reported with its file and line.
"""

import codecs
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import DataError

TAG_RE = re.compile(r"^(O|[BI]-\S+)$")
COLUMN_SEP = re.compile(r"[ \t]+")


@dataclass
class Sentence:
    tokens: list
    tags: list
    line: int  # line of the first token in its file, 1-based
    path: str = ""
    offsets: list | None = None  # each token's line offset from `line`, once cleaning removed tokens

    def line_of(self, i):
        return self.line + (self.offsets[i] if self.offsets is not None else i)


@dataclass
class ReadResult:
    sentences: list
    rejected: list = field(default_factory=list)  # (where, reason) of lines dropped in skip mode
    encoding: str = "utf-8"  # the codec the file was decoded with
    encoding_from: str = "configured"  # "configured", or "detected" when the setting was auto
    encoding_doubt: str | None = None  # why the encoding may be wrong (cleaning warns it and reports it)


# When charset-normalizer rates several code pages equally (it often cannot tell Western from Central
# European text), the first of these among them wins: the Western European code pages of CoNLL-style corpora.
PREFERRED = ("cp1252", "iso8859-1", "iso8859-15")


def codec_name(name):
    """Python's canonical name of a codec (latin_1 -> iso8859-1), or None if there is no such codec."""
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def detect_encoding(raw, path, key="data.encoding"):
    """(encoding, alternatives) of a file's bytes: UTF-8 when they decode as strict UTF-8 (with a BOM,
    utf-8-sig), else charset-normalizer's best guess, ties going to PREFERRED. `alternatives` are the
    other codecs rated as likely whose text differs from the chosen one's: the guess was ambiguous."""
    if raw.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", []
    if _is_utf8(raw):
        return "utf-8", []
    from charset_normalizer import from_bytes

    matches = from_bytes(raw)
    best = matches.best()
    if best is None:
        raise DataError(path, None, "its encoding could not be detected (no text encoding decodes it); "
                        f"set {key} in the config to the file's encoding")
    tied = [m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    # each match stands for every codec that decodes the bytes to the same text (could_be_from_charset)
    names = list(dict.fromkeys(codec_name(e) or e for m in tied for e in [m.encoding, *m.could_be_from_charset]))
    chosen = next((n for n in PREFERRED if n in names), codec_name(best.encoding) or best.encoding)
    text = raw.decode(chosen, errors="replace")
    alternatives = [n for n in names if n != chosen and raw.decode(n, errors="replace") != text]
    return chosen, alternatives


def _is_utf8(raw):
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def decode(path, encoding="utf-8", key="data.encoding", raw=None):
    """Decode a file strictly; a bad byte is reported with its line number and the config key to set."""
    raw = Path(path).read_bytes() if raw is None else raw
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            path, line,
            f"byte 0x{raw[e.start]:02x} is not valid {encoding}; set {key} in the config "
            "to the file's encoding (for example latin-1), or to auto to detect it",
        ) from None
    except LookupError:
        raise DataError(path, None, f"unknown encoding '{encoding}' (config key {key})") from None


def read_conll(path, encoding="utf-8", on_malformed="error", key="data.encoding"):
    """Read sentences from a CoNLL file.

    encoding='auto' detects the file's encoding (detect_encoding); `key` is the config key that set it,
    named in errors. on_malformed='error' stops at the first bad line; 'skip' drops the sentence holding
    it and records why in `rejected`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "file not found")
    raw = path.read_bytes()
    doubt = None
    if encoding == "auto":
        encoding, alternatives = detect_encoding(raw, path, key)
        encoding_from = "detected"
        if alternatives:
            doubt = (f"detected as {encoding}, but {', '.join(alternatives)} fit the file as well and read its "
                     f"non-ASCII bytes differently; set {key} if its non-ASCII words come out wrong")
    else:
        encoding_from = "configured"
        if not (codec_name(encoding) or "").startswith("utf-8") and not raw.isascii() and _is_utf8(raw):
            doubt = (f"read as the configured {encoding}, but the file is valid UTF-8 with non-ASCII characters, "
                     f"which {encoding} turns into mojibake; set {key} to utf-8 or auto")
    text = decode(path, encoding, key, raw)
    sentences, rejected = [], []
    tokens, tags, start, bad = [], [], None, None
    n_cols, n_cols_line = None, None

    def flush():
        nonlocal tokens, tags, start, bad
        if bad is not None:
            rejected.append(bad)
        elif tokens:
            sentences.append(Sentence(tokens, tags, start, str(path)))
        tokens, tags, start, bad = [], [], None, None

    # Lines end at \n only and columns split at spaces and tabs only: str.splitlines() and
    # str.split() would also break a token at U+2028, U+0085 and other Unicode separators.
    for lineno, line in enumerate(text.split("\n"), start=1):
        cols = COLUMN_SEP.split(line.strip(" \t\r")) if line.strip(" \t\r") else []
        if not cols:
            flush()
            continue
        if cols[0] == "-DOCSTART-":
            flush()
            continue
        problem = None
        if n_cols is None:
            if len(cols) < 2:
                problem = f"has {len(cols)} column; a token and a tag are needed"
            else:
                n_cols, n_cols_line = len(cols), lineno
        elif len(cols) != n_cols:
            problem = (f"has {len(cols)} columns, the rest of the file has {n_cols} "
                       f"(as on line {n_cols_line})")
        if problem is None and not TAG_RE.match(cols[-1]):
            problem = f"tag '{cols[-1]}' is not IOB (expected O, B-TYPE or I-TYPE)"
        if problem is not None:
            if on_malformed == "error":
                raise DataError(path, lineno, problem)
            if bad is None:
                bad = (f"{path}:{lineno}", problem)
            continue
        if start is None:
            start = lineno
        tokens.append(cols[0])
        tags.append(cols[-1])
    flush()
    return ReadResult(sentences, rejected, encoding, encoding_from, doubt)


def write_conll(sentences, path):
    """Write sentences as two-column `token tag` lines (callers wrap this in an atomic write)."""
    with open(path, "w", encoding="utf-8") as f:
        for s in sentences:
            for tok, tag in zip(s.tokens, s.tags):
                f.write(f"{tok} {tag}\n")
            f.write("\n")


def iob1_violations(tags):
    """Indices where a tag is I-X without a preceding X: legal in IOB1, illegal in IOB2."""
    out, prev = [], "O"
    for i, tag in enumerate(tags):
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            out.append(i)
        prev = tag
    return out


def to_iob2(tags):
    """Convert IOB1 (or repair broken IOB2) tags: an entity's first token gets B-."""
    tags = list(tags)
    for i in iob1_violations(tags):
        tags[i] = "B-" + tags[i][2:]
    return tags


def label_list(sentences):
    """The label set of a split in a stable order: O, then B-/I- for every entity type, sorted.

    Both B- and I- of each type are included even if one never occurs, so a model can emit a
    well-formed entity of any type it saw.
    """
    types = sorted({t[2:] for s in sentences for t in s.tags if t != "O"})
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]
