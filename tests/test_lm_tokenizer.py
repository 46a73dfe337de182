"""LM tokenizers: trained byte-level BPE, tiktoken offline behaviour, document encoding."""

import numpy as np
import pytest

from shrink.core.errors import ConfigError, ShrinkError
from shrink.lm import tokenizer as tk

POLISH = [
    "Litwo! Ojczyzno moja! ty jesteś jak zdrowie: ile cię trzeba cenić, ten tylko się dowie.",
    "Zażółć gęślą jaźń. Źdźbło żyta, łąka, pięść, ćma — „cytat” … ŻÓŁW, Łódź, Śląsk.",
    "W Tyńcu, w gospodzie „Pod Lutym Turem”, należącej do opactwa, siedziało kilku ludzi.",
    "— Żyje — odpowiadał Soroka — za trzy dni tak będzie na koniu siedział.",
] * 20


@pytest.fixture(scope="module")
def bpe():
    return tk.BPETokenizer(tk.train_bpe(POLISH, vocab_size=400))


def test_bpe_round_trips_polish_exactly(bpe):
    unseen = ["Chrząszcz brzmi w trzcinie w Szczebrzeszynie.",
              "ĄĘÓŚŁŻŹĆŃ ąęóśłżźćń\n\n  wcięcie\ttab",
              "emoji 😀 i znaki spoza korpusu: 日本語, ﬁ", "<|endoftext|> w środku tekstu"]
    for text in POLISH[:4] + unseen:
        ids = bpe.encode(text)
        assert bpe.decode(ids) == text
        assert all(0 <= i < bpe.vocab_size for i in ids)
    # the literal text of the special token is encoded as text, not as the document separator
    assert bpe.eot_id not in bpe.encode(unseen[-1])
    # merges were learnt: common Polish words take fewer tokens than bytes
    assert len(bpe.encode(POLISH[0])) < len(POLISH[0].encode()) / 2


def test_bpe_vocab_size_respected_and_eot():
    tok = tk.BPETokenizer(tk.train_bpe(POLISH, vocab_size=300))
    assert tok.vocab_size == 300 and tok.eot_id == 0
    # a corpus too small for the requested size stops early, never above it
    big = tk.BPETokenizer(tk.train_bpe(POLISH[:4], vocab_size=5000))
    assert 257 < big.vocab_size <= 5000
    with pytest.raises(ConfigError, match="vocab_size"):
        tk.train_bpe(POLISH, vocab_size=200)


def test_bpe_deterministic_and_saved(tmp_path, bpe):
    again = tk.BPETokenizer(tk.train_bpe(POLISH, vocab_size=400))
    assert [again.encode(t) for t in POLISH[:4]] == [bpe.encode(t) for t in POLISH[:4]]
    path = tmp_path / "bpe.json"
    tk.save(bpe, path)
    loaded = tk.load_tokenizer(path)
    assert loaded.vocab_size == bpe.vocab_size and loaded.eot_id == bpe.eot_id
    assert [loaded.encode(t) for t in POLISH[:4]] == [bpe.encode(t) for t in POLISH[:4]]
    assert tk.load_tokenizer(f"bpe:{path}").encode("ąę") == bpe.encode("ąę")


def test_bad_specs_and_files(tmp_path):
    with pytest.raises(ShrinkError, match="no such file"):
        tk.load_tokenizer(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ShrinkError, match="not a tokenizer JSON"):
        tk.load_tokenizer(bad)


def test_encode_documents_separates_with_eot(bpe):
    docs = [{"text": "Ala ma kota."}, {"text": "Żółw."}, "Łódź"]
    ids = tk.encode_documents(bpe, docs)
    assert ids.dtype == np.uint16
    eot = bpe.eot_id
    expected = [eot, *bpe.encode("Ala ma kota."), eot, *bpe.encode("Żółw."), eot, *bpe.encode("Łódź")]
    assert ids.tolist() == expected


def test_encode_documents_int32_for_large_vocab():
    class Big(tk.LMTokenizer):
        name, vocab_size, eot_id = "big", 70000, 69999

        def encode(self, text):
            return [65536 + len(text)]

    ids = tk.encode_documents(Big(), ["ab", "abc"])
    assert ids.dtype == np.int32 and ids.tolist() == [69999, 65538, 69999, 65539]


def test_tiktoken_offline_raises_shrink_error(tmp_path, monkeypatch):
    pytest.importorskip("tiktoken")
    # an empty cache and an unreachable proxy: the download fails at once even on a connected machine
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setattr(tk, "OFFLINE_ALIASES", ())  # as if no package bundled the file
    with pytest.raises(ShrinkError, match=r"could not be fetched.*TIKTOKEN_CACHE_DIR"):
        tk.load_tokenizer("tiktoken:cl100k_base")
    with pytest.raises(ShrinkError, match="no encoding 'nonsense'"):
        tk.load_tokenizer("tiktoken:nonsense")


def test_tiktoken_from_local_cache(tmp_path, monkeypatch):
    """TIKTOKEN_CACHE_DIR is honoured: a tiny hand-made encoding file placed there loads offline."""
    pytest.importorskip("tiktoken")
    import base64
    import hashlib

    import tiktoken_ext.openai_public as public

    # the cache key is the sha1 of the download URL; the file has "base64(token) rank" lines
    url = "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken"
    lines = [f"{base64.b64encode(bytes([b])).decode()} {b}" for b in range(256)]
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    for var in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")

    def r50k_bytes_only():  # the real constructor checks a hash our tiny file cannot have
        from tiktoken.load import load_tiktoken_bpe
        return {"name": "r50k_base", "explicit_n_vocab": 257, "pat_str": r"\S+|\s+",
                "mergeable_ranks": load_tiktoken_bpe(url), "special_tokens": {tk.EOT: 256}}

    monkeypatch.setitem(public.ENCODING_CONSTRUCTORS, "r50k_base", r50k_bytes_only)
    import tiktoken.registry as registry
    monkeypatch.setattr(registry, "ENCODING_CONSTRUCTORS", None)  # rebuild from the patched module
    monkeypatch.setattr(registry, "ENCODINGS", {})
    tok = tk.load_tokenizer("tiktoken:r50k_base")
    assert (tok.vocab_size, tok.eot_id, tok.name) == (257, 256, "tiktoken:r50k_base")
    assert tok.encode("ąb") == list("ąb".encode()) and tok.decode(tok.encode("ąb")) == "ąb"


def test_hf_tokenizer_folder(tmp_path, bpe):
    transformers = pytest.importorskip("transformers")
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe.tokenizer, eos_token=tk.EOT)
    fast.save_pretrained(tmp_path)
    tok = tk.load_tokenizer(f"hf:{tmp_path}")
    assert (tok.vocab_size, tok.eot_id) == (bpe.vocab_size, bpe.eot_id)
    for text in POLISH[:4]:
        assert tok.encode(text) == bpe.encode(text) and tok.decode(tok.encode(text)) == text
    with pytest.raises(ShrinkError, match="could not be loaded"):
        tk.load_tokenizer(f"hf:{tmp_path / 'nowhere'}")
