"""Tokenized parallel data: token ids of both sides plus the reference text, in one .npz per split."""

import hashlib
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_path


def _pack(rows):
    offsets = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    flat = np.fromiter((i for r in rows for i in r), dtype=np.int32, count=int(offsets[-1]))
    return flat, offsets


def _unpack(flat, offsets):
    return [flat[a:b].tolist() for a, b in zip(offsets[:-1], offsets[1:])]


def _join(texts):
    # Cleaned sentences hold no newline, so one string per column avoids pickled object arrays.
    return np.array("\n".join(texts))


def _split(arr, n):
    return str(arr).split("\n") if n else []


class TokenizedPairs:
    """`src`/`tgt` token-id lists (no <s>, </s>) and the target sentences as text (the BLEU references)."""

    def __init__(self, src, tgt, src_text, tgt_text):
        if not (len(src) == len(tgt) == len(src_text) == len(tgt_text)):
            raise ValueError("source, target and text columns differ in length")
        self.src, self.tgt, self.src_text, self.tgt_text = src, tgt, src_text, tgt_text
        # Batch cost of a pair: both sides with their </s> or <s>.
        self.lengths = [len(s) + len(t) + 2 for s, t in zip(src, tgt)]

    def __len__(self):
        return len(self.src)

    def src_of(self, idx):
        return [self.src[i] for i in idx]

    def tgt_of(self, idx):
        return [self.tgt[i] for i in idx]

    @property
    def fingerprint(self):
        h = hashlib.sha256()
        for rows in (self.src, self.tgt):
            for r in rows:
                h.update(np.asarray(r, dtype=np.int32).tobytes() + b"|")
        return h.hexdigest()[:16]

    def save(self, path):
        src, src_off = _pack(self.src)
        tgt, tgt_off = _pack(self.tgt)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, src=src, src_off=src_off, tgt=tgt, tgt_off=tgt_off,
                     src_text=_join(self.src_text), tgt_text=_join(self.tgt_text))

    @classmethod
    def load(cls, path):
        with np.load(Path(path)) as z:
            src, tgt = _unpack(z["src"], z["src_off"]), _unpack(z["tgt"], z["tgt_off"])
            return cls(src, tgt, _split(z["src_text"], len(src)), _split(z["tgt_text"], len(tgt)))
