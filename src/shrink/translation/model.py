"""A plain encoder-decoder Transformer (Vaswani et al. 2017) for translation.

Shared source/target embedding tied to the output projection, sinusoidal positions, pre-norm or
post-norm blocks. Attention keeps the heads explicit (q/k/v/out projections, heads concatenated
before `out`), so hard-concrete gates can sit in front of `out` and closed heads can be cut out of
the weights. A pruned model records its kept heads per encoder layer in its config, so it reloads
with the smaller shapes.
"""

import json
import math
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..core.atomic import atomic_dir
from ..core.errors import ConfigError, reject_unknown_keys
from .vocab import BOS_ID, EOS_ID, PAD_ID

MODEL_FILE, CONFIG_FILE = "model.pt", "config.json"


@dataclass
class Seq2SeqConfig:
    vocab_size: int
    d_model: int = 256
    heads: int = 8
    ffn: int = 1024
    encoder_layers: int = 4
    decoder_layers: int = 4
    dropout: float = 0.1
    norm: str = "pre"  # pre: LayerNorm before each sublayer (stable without long warmup); post: as in the paper
    max_positions: int = 512
    encoder_heads: list | None = None  # kept head indices per encoder layer once pruned; None: all heads

    @classmethod
    def from_dict(cls, d, vocab_size=None):
        d = dict(d)
        if vocab_size is not None:
            d["vocab_size"] = vocab_size
        reject_unknown_keys(d, cls, "translation.model")
        cfg = cls(**d)
        if cfg.d_model % cfg.heads:
            raise ConfigError("translation.model.heads", f"d_model {cfg.d_model} is not divisible by {cfg.heads} heads")
        if cfg.norm not in ("pre", "post"):
            raise ConfigError("translation.model.norm", f"must be pre or post, not {cfg.norm!r}")
        return cfg

    @property
    def head_dim(self):
        return self.d_model // self.heads


class Attention(nn.Module):
    """Multi-head attention with `n_heads` heads of `head_dim` (fewer than the config's once pruned)."""

    def __init__(self, d_model, n_heads, head_dim, dropout):
        super().__init__()
        self.n_heads, self.head_dim, self.dropout = n_heads, head_dim, dropout
        inner = n_heads * head_dim
        with warnings.catch_warnings():  # zero heads left: empty weights, whose init torch warns about
            warnings.filterwarnings("ignore", "Initializing zero-element tensors")
            self.q, self.k, self.v = (nn.Linear(d_model, inner) for _ in range(3))
            self.out = nn.Linear(inner, d_model)  # its input is the heads concatenated: the place for gates

    def _split(self, x):
        return x.unflatten(-1, (self.n_heads, self.head_dim)).transpose(1, 2)  # (B, H, T, hd)

    def project_kv(self, memory):
        return self._split(self.k(memory)), self._split(self.v(memory))

    def forward(self, x, mask, kv=None, cache=None):
        """`mask` (B or 1, 1, T, S) is True where a query may look. `kv`: precomputed keys/values of a
        memory (cross-attention); `cache`: a dict growing with this layer's keys/values (decoding)."""
        if self.n_heads == 0:  # every head pruned: the sublayer adds only the output bias
            return self.out(x.new_zeros(*x.shape[:-1], 0))
        q = self._split(self.q(x))
        if kv is not None:
            k, v = kv
        else:
            k, v = self._split(self.k(x)), self._split(self.v(x))
            if cache is not None:
                if "k" in cache:
                    k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
                cache["k"], cache["v"] = k, v
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).flatten(-2))


class FeedForward(nn.Sequential):
    def __init__(self, d_model, ffn, dropout):
        super().__init__(nn.Linear(d_model, ffn), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn, d_model))


class Block(nn.Module):
    """Self-attention, optional cross-attention, feed-forward; each a residual sublayer."""

    def __init__(self, cfg, n_heads, cross):
        super().__init__()
        self.pre = cfg.norm == "pre"
        self.self_attn = Attention(cfg.d_model, n_heads, cfg.head_dim, cfg.dropout)
        self.cross_attn = Attention(cfg.d_model, cfg.heads, cfg.head_dim, cfg.dropout) if cross else None
        self.ffn = FeedForward(cfg.d_model, cfg.ffn, cfg.dropout)
        self.norms = nn.ModuleList(nn.LayerNorm(cfg.d_model) for _ in range(3 if cross else 2))
        self.drop = nn.Dropout(cfg.dropout)

    def _residual(self, x, norm, fn):
        if self.pre:
            return x + self.drop(fn(norm(x)))
        return norm(x + self.drop(fn(x)))

    def forward(self, x, self_mask, memory_kv=None, cross_mask=None, cache=None):
        norms = iter(self.norms)
        x = self._residual(x, next(norms), lambda h: self.self_attn(h, self_mask, cache=cache))
        if self.cross_attn is not None:
            x = self._residual(x, next(norms), lambda h: self.cross_attn(h, cross_mask, kv=memory_kv))
        return self._residual(x, next(norms), self.ffn)


def sinusoids(n, d):
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(n, d)
    table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return table


class Embedder(nn.Module):
    """Token embedding * sqrt(d) + sinusoidal position, then dropout."""

    def __init__(self, cfg):
        super().__init__()
        self.tokens = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=PAD_ID)
        nn.init.normal_(self.tokens.weight, std=cfg.d_model ** -0.5)
        self.register_buffer("positions", sinusoids(cfg.max_positions, cfg.d_model), persistent=False)
        self.scale, self.drop = math.sqrt(cfg.d_model), nn.Dropout(cfg.dropout)

    def forward(self, ids, start=0):
        if start + ids.shape[1] > self.positions.shape[0]:
            raise ValueError(f"sequence of {start + ids.shape[1]} tokens exceeds max_positions "
                             f"{self.positions.shape[0]} (translation.model.max_positions)")
        return self.drop(self.tokens(ids) * self.scale + self.positions[start: start + ids.shape[1]])


class Encoder(nn.Module):
    """The encoder stack. Its forward runs once per batch, so head gates draw their sample here."""

    def __init__(self, cfg, embed):
        super().__init__()
        kept = cfg.encoder_heads or [list(range(cfg.heads))] * cfg.encoder_layers
        self.embed = embed
        self.layers = nn.ModuleList(Block(cfg, len(kept[i]), cross=False) for i in range(cfg.encoder_layers))
        self.norm = nn.LayerNorm(cfg.d_model) if cfg.norm == "pre" else nn.Identity()

    def forward(self, src):
        mask = (src != PAD_ID)[:, None, None, :]  # (B, 1, 1, S): no query looks at padding
        x = self.embed(src)
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x), mask


class Decoder(nn.Module):
    def __init__(self, cfg, embed):
        super().__init__()
        self.embed = embed
        self.layers = nn.ModuleList(Block(cfg, cfg.heads, cross=True) for _ in range(cfg.decoder_layers))
        self.norm = nn.LayerNorm(cfg.d_model) if cfg.norm == "pre" else nn.Identity()

    def memory_kv(self, memory):
        return [layer.cross_attn.project_kv(memory) for layer in self.layers]

    def forward(self, tgt, memory_kv, src_mask, caches=None, start=0):
        """Hidden states for `tgt`; with `caches` (one dict per layer) `tgt` holds only the new positions."""
        t = tgt.shape[1]
        if caches is None:
            causal = torch.ones(t, t, dtype=torch.bool, device=tgt.device).tril()
            self_mask = causal[None, None] & (tgt != PAD_ID)[:, None, None, :]
        else:  # one new position attends to everything cached before it, so no mask is needed
            self_mask = None
        x = self.embed(tgt, start)
        for i, layer in enumerate(self.layers):
            x = layer(x, self_mask, memory_kv[i], src_mask, None if caches is None else caches[i])
        return self.norm(x)


class Seq2Seq(nn.Module):
    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.config = cfg
        embed = Embedder(cfg)  # one table for source, target and output (tied)
        self.encoder, self.decoder = Encoder(cfg, embed), Decoder(cfg, embed)
        for name, p in self.named_parameters():
            if p.ndim == 2 and "tokens" not in name:
                nn.init.xavier_uniform_(p)

    @property
    def embed(self):
        return self.encoder.embed

    def logits(self, hidden):
        return hidden @ self.embed.tokens.weight.T

    def forward(self, src, tgt_in):
        memory, src_mask = self.encoder(src)
        return self.logits(self.decoder(tgt_in, self.decoder.memory_kv(memory), src_mask))

    def loss(self, batch, label_smoothing=0.0):
        """Mean cross-entropy per target token (padding ignored), with label smoothing."""
        logits = self(batch["src"], batch["tgt_in"])
        return F.cross_entropy(logits.flatten(0, 1).float(), batch["tgt_out"].flatten(), ignore_index=PAD_ID,
                               label_smoothing=label_smoothing)

    def num_parameters(self):
        return sum(p.numel() for p in self.parameters())


def make_batch(src_ids, tgt_ids=None, device="cpu"):
    """Padded tensors: src = tokens + </s>; tgt_in = <s> + tokens; tgt_out = tokens + </s>."""

    def pad(rows):
        width = max(map(len, rows))
        return torch.tensor([r + [PAD_ID] * (width - len(r)) for r in rows], dtype=torch.long, device=device)

    batch = {"src": pad([list(s) + [EOS_ID] for s in src_ids])}
    if tgt_ids is not None:
        batch["tgt_in"] = pad([[BOS_ID] + list(t) for t in tgt_ids])
        batch["tgt_out"] = pad([list(t) + [EOS_ID] for t in tgt_ids])
    return batch


def save_seq2seq(model, folder, extra=None):
    """model.pt (state dict) and config.json, written atomically as one folder."""
    with atomic_dir(folder) as tmp:
        torch.save(model.state_dict(), tmp / MODEL_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps({**asdict(model.config), **(extra or {})}, indent=2))


def load_seq2seq(folder, device="cpu"):
    folder = Path(folder)
    meta = json.loads((folder / CONFIG_FILE).read_text())
    known = {f.name for f in fields(Seq2SeqConfig)}
    model = Seq2Seq(Seq2SeqConfig(**{k: v for k, v in meta.items() if k in known}))
    model.load_state_dict(torch.load(folder / MODEL_FILE, map_location=device, weights_only=True))
    return model.to(device).eval()
