"""Reflex-attention Transformer: attention that also looks back down the stack.

A plain Transformer layer l (0-based) attends only over its own input h_l, where h_0 is the embedding
output and h_{l+1} = Block_l(h_l). Here layer l reads keys and values from h_l *and* from the states of
the earlier layers h_0 .. h_{l-1} (with `sources = s`, only the s most recent: h_{l-s} .. h_{l-1}), so a
deep layer can fetch what a token looked like before the intermediate layers rewrote it:

    K_l, V_l = W_kv [LN_l(h_l); LN_l(h_{l-1}); ...; LN_l(h_{l-s})]      (concatenated along the sequence)
    h_{l+1}' = h_l + W_o Attn(W_q LN_l(h_l), K_l, V_l, mask)

Causality is kept per position: the query at position t may read position s <= t of every source, so the
boolean mask is the causal triangle repeated once per source. Each earlier state goes through the
layer's own LayerNorm (it differs in scale from h_l) and its own key/value projection, so the model has
exactly the Transformer's parameters: only the attention pattern changes, and the cost grows with the
number of sources (layer l attends over (1 + min(l, s)) T keys). `sources = 0` is the plain Transformer.
"""

from .transformer import Transformer

DEFAULTS = {"n_layer": 4, "n_head": 4, "dropout": 0.0, "bias": False, "sources": None}


class ReflexTransformer(Transformer):
    def __init__(self, vocab_size, block_size, width, n_layer, n_head, dropout, bias, sources):
        super().__init__(vocab_size, block_size, width, n_layer, n_head, dropout, bias)
        self.sources = sources

    def forward(self, idx):
        x = self.embed(idx)
        earlier = []  # h_0 .. h_{l-1}: the inputs of the layers below this one
        for block in self.blocks:
            start = 0 if self.sources is None else max(0, len(earlier) - self.sources)
            memory = earlier[start:]
            earlier.append(x)
            x = block(x, memory)
        return self.head(x)
