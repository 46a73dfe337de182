"""GRU language model: token embedding (width) -> LayerNorm without parameters -> nn.GRU (n_layer
layers, hidden = width) -> LayerNorm -> logits = h @ embedding^T (tied head).

The input LayerNorm is there because the tied embedding starts small (std 0.02, so the first logits are
near uniform): normalised, it still drives the GRU's gates from the first step (on a synthetic bigram
task, loss 1.6 vs 2.8 after 50 steps without it).

A recurrent model has no context limit: `block_size` is only the training length, kept for the shared
interface. Generation runs the whole prompt once and then feeds one token at a time, carrying the
hidden state, so every sampled token is conditioned on the entire history at O(1) cost per step.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .common import CausalLM, sample_next

DEFAULTS = {"n_layer": 2, "dropout": 0.0}


class GRULM(CausalLM):
    def __init__(self, vocab_size, block_size, width, n_layer, dropout):
        super().__init__(vocab_size, block_size)
        self.embed = nn.Embedding(vocab_size, width)
        self.drop = nn.Dropout(dropout)
        # nn.GRU applies dropout only between its layers (and warns if asked to with one layer)
        self.rnn = nn.GRU(width, width, num_layers=n_layer, batch_first=True,
                          dropout=dropout if n_layer > 1 else 0.0)
        self.ln_f = nn.LayerNorm(width)
        # nanoGPT-style small embedding, so the tied head starts near uniform; the GRU keeps PyTorch's
        # uniform(+-1/sqrt(width)) init, which is scaled for its gates.
        nn.init.normal_(self.embed.weight, mean=0.0, std=0.02)

    def step(self, idx, state=None):
        """(logits (B, T, V), new state (n_layer, B, width)) for idx (B, T) following `state`."""
        out, state = self.rnn(self.drop(F.layer_norm(self.embed(idx), (self.embed.embedding_dim,))), state)
        return F.linear(self.ln_f(self.drop(out)), self.embed.weight), state

    def forward(self, idx):
        return self.step(idx)[0]

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None):
        """Like CausalLM.generate, but the hidden state is carried forward: no context cropping, no
        recomputation."""
        if max_new_tokens <= 0:
            return idx
        logits, state = self.step(idx)
        for i in range(max_new_tokens):
            nxt = sample_next(logits[:, -1], temperature, top_k, generator)
            idx = torch.cat([idx, nxt], dim=1)
            if i + 1 < max_new_tokens:
                logits, state = self.step(nxt, state)
        return idx
