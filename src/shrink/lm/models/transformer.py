"""Decoder-only Transformer in the nanoGPT shape (Radford et al. 2019; Karpathy's nanoGPT).

token + learned position embeddings -> n_layer pre-LayerNorm blocks
    x = x + Attn(LN(x));  x = x + MLP(LN(x))        (MLP: width -> 4 width -> width, GELU)
-> final LayerNorm -> logits = x @ token_embedding^T (the head is tied to the input embedding).

The attention also accepts `memory`, extra hidden states to read keys and values from; the plain
Transformer never passes any, the reflex model (reflex.py) passes the outputs of earlier layers.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .common import CausalLM, init_nanogpt

DEFAULTS = {"n_layer": 4, "n_head": 4, "dropout": 0.0, "bias": False}


class SelfAttention(nn.Module):
    """Causal multi-head attention. Query and key/value projections are separate so that keys and
    values can come from more states than the queries (reflex attention)."""

    def __init__(self, width, n_head, dropout, bias):
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.q = nn.Linear(width, width, bias=bias)
        self.kv = nn.Linear(width, 2 * width, bias=bias)
        self.proj = nn.Linear(width, width, bias=bias)
        self.resid_drop = nn.Dropout(dropout)

    def _split_heads(self, x):  # (B, S, W) -> (B, heads, S, W / heads)
        B, S, W = x.shape
        return x.view(B, S, self.n_head, W // self.n_head).transpose(1, 2)

    def forward(self, x, memory=()):
        """x (B, T, W), already normalised. `memory`: normalised states (B, T, W) of earlier layers; the
        query at position t may read position s <= t of x and of every memory state."""
        B, T, W = x.shape
        q = self._split_heads(self.q(x))
        sources = torch.cat([x, *memory], dim=1) if memory else x  # keys/values along the sequence axis
        k, v = (self._split_heads(part) for part in self.kv(sources).split(W, dim=-1))
        p = self.dropout if self.training else 0.0
        if memory:
            # the same causal pattern for each of the 1 + len(memory) blocks of T keys (True = may attend)
            causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=causal.repeat(1, 1 + len(memory)), dropout_p=p)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(B, T, W)))


class MLP(nn.Module):
    def __init__(self, width, dropout, bias):
        super().__init__()
        self.fc = nn.Linear(width, 4 * width, bias=bias)
        self.proj = nn.Linear(4 * width, width, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, width, n_head, dropout, bias):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, bias=bias)
        self.attn = SelfAttention(width, n_head, dropout, bias)
        self.ln_2 = nn.LayerNorm(width, bias=bias)
        self.mlp = MLP(width, dropout, bias)

    def forward(self, x, memory=()):
        # earlier states go through this block's own LayerNorm, like its input, before the k/v projection
        x = x + self.attn(self.ln_1(x), [self.ln_1(h) for h in memory])
        return x + self.mlp(self.ln_2(x))


class Transformer(CausalLM):
    def __init__(self, vocab_size, block_size, width, n_layer, n_head, dropout, bias):
        super().__init__(vocab_size, block_size)
        self.tok_emb = nn.Embedding(vocab_size, width)
        self.pos_emb = nn.Embedding(block_size, width)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(width, n_head, dropout, bias) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(width, bias=bias)
        init_nanogpt(self, n_layer)

    def embed(self, idx):
        self.check_length(idx)
        pos = torch.arange(idx.size(1), device=idx.device)
        return self.drop(self.tok_emb(idx) + self.pos_emb(pos))

    def head(self, x):
        return F.linear(self.ln_f(x), self.tok_emb.weight)  # tied: the output head is the embedding

    def forward(self, idx):
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        return self.head(x)
