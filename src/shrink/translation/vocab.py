"""A joint English+Russian subword vocabulary (Hugging Face `tokenizers`).

One vocabulary serves both languages so source and target share embeddings. Byte-level BPE
(the default) can encode any string, an emoji or a word never seen in training, without <unk>.
"""

from collections.abc import Iterable

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    trainers,
)

from ..core.atomic import atomic_path
from ..core.errors import ConfigError

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIALS = [PAD, BOS, EOS, UNK]  # trainers add special tokens first, so their ids are 0..3
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)
KINDS = ("bpe", "unigram")
MIN_VOCAB = 300  # byte-level BPE needs its 256 byte symbols and the specials before any merge


def _bpe(vocab_size: int, min_frequency: int) -> tuple[Tokenizer, trainers.Trainer]:
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    return tok, trainer


def _unigram(vocab_size: int) -> tuple[Tokenizer, trainers.Trainer]:
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, unk_token=UNK,
                                      show_progress=False)
    return tok, trainer


def train_vocab(texts: Iterable[str], vocab_size: int, kind: str = "bpe", min_frequency: int = 2) -> Tokenizer:
    """Train a tokenizer on `texts` (both languages).

    bpe is reproducible: the same texts and settings give the same tokenizer JSON. The Unigram
    trainer is not (it breaks score ties in hash-map order), so reuse a saved unigram vocabulary
    rather than retraining it. min_frequency (of a pair, to merge it) applies to bpe only.
    """
    if kind not in KINDS:
        raise ConfigError("translation.vocab.kind", f"must be one of {', '.join(KINDS)}, not {kind!r}")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < MIN_VOCAB:
        raise ConfigError("translation.vocab.size",
                          f"must be an integer >= {MIN_VOCAB} (256 byte symbols + special tokens), not {vocab_size!r}")
    tok, trainer = _bpe(vocab_size, min_frequency) if kind == "bpe" else _unigram(vocab_size)
    tok.normalizer = normalizers.NFC()
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def encode(tok: Tokenizer, texts: list[str], max_len: int | None = None) -> list[list[int]]:
    """Token ids of each text, without <s>/</s> (the model adds them), cut to max_len if given."""
    return [enc.ids[:max_len] for enc in tok.encode_batch(list(texts), add_special_tokens=False)]


def decode(tok: Tokenizer, ids_batch: Iterable[Iterable[int]]) -> list[str]:
    """Text of each id sequence, up to its first </s>; <pad> and <s> are dropped, <unk> stays visible."""
    cleaned = []
    for ids in ids_batch:
        ids = [int(i) for i in ids]
        if EOS_ID in ids:  # anything generated after </s> is not part of the hypothesis
            ids = ids[:ids.index(EOS_ID)]
        cleaned.append([i for i in ids if i not in (PAD_ID, BOS_ID)])
    # the byte-level prefix space comes back as a leading space
    return [text.strip() for text in tok.decode_batch(cleaned, skip_special_tokens=False)]


def save_vocab(tok: Tokenizer, path) -> None:
    with atomic_path(path) as tmp:
        tok.save(str(tmp))


def load_vocab(path) -> Tokenizer:
    return Tokenizer.from_file(str(path))
