"""BDH-GPU, the tensor form of "The Dragon Hatchling" (Kosowski, Uznański, Chorowski, Stamirowska,
Bartoszkiewicz; Pathway 2025, arXiv:2509.26507): Section 3 defines BDH-GPU as a state-space model, and
the paper's code listing (github.com/pathwaycom/bdh) gives the parallel-in-time form written here.

D = width (model dimension), H = n_head, N = mlp_multiplier * D / H neurons per head, LN = LayerNorm
without affine parameters. One set of weights serves every layer: encoder E (H, D, N), value encoder
E_v (H, D, N) and decoder Dec (H N, D); with the tied embedding that is all the parameters, so the
count is V D + 3 mlp_multiplier D^2 whatever n_layer is. For position t and head h:

    v_t  = LN(Emb[token_t])                                     residual state, in R^D
    repeat n_layer times:
      x_t  = ReLU(v_t E_h)                                      sparse positive neuron activations, R^N
      a_t  = sum_{s < t} <R_t x_t, R_s x_s> v_s                 linear attention: no softmax, queries =
                                                                keys = x, values = v, strictly causal
      y_t  = ReLU(LN(a_t) E_v,h) * x_t                          gating: a neuron fires only if both do
      v_t  = LN(v_t + LN([y_t^1 ... y_t^H] Dec))                back to D dimensions
    logits_t = v_t Emb^T

R_t is the rotary position rotation (RoPE) at position t, applied to pairs of neuron coordinates, so the
attention score <R_t x_t, R_s x_s> depends on positions only through t - s (the paper's U^{t-s}). The
sum over s < t is the attention matrix masked with tril(-1); the model reads its own token only
through the residual v_t. Dropout acts on the gated activations y, as in the reference code.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .common import CausalLM

DEFAULTS = {"n_layer": 4, "n_head": 4, "mlp_multiplier": 16, "dropout": 0.0}
ROPE_THETA = 2.0 ** 16  # a wide frequency range: N is large and the paper's listing uses 2^16


def _ln(x):
    return F.layer_norm(x, x.shape[-1:])


class BDH(CausalLM):
    def __init__(self, vocab_size, block_size, width, n_layer, n_head, mlp_multiplier, dropout):
        super().__init__(vocab_size, block_size)
        self.n_layer, self.n_head = n_layer, n_head
        self.neurons = mlp_multiplier * width // n_head  # N, per head
        self.embed = nn.Embedding(vocab_size, width)
        self.encoder = nn.Parameter(torch.empty(n_head, width, self.neurons))
        self.encoder_v = nn.Parameter(torch.empty(n_head, width, self.neurons))
        self.decoder = nn.Parameter(torch.empty(n_head * self.neurons, width))
        self.drop = nn.Dropout(dropout)
        # one frequency per pair of neuron coordinates; a buffer (not a parameter), rebuilt, not saved
        inv_freq = ROPE_THETA ** (-torch.arange(0, self.neurons, 2, dtype=torch.float32) / self.neurons)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        for p in (self.embed.weight, self.encoder, self.encoder_v, self.decoder):
            nn.init.normal_(p, mean=0.0, std=0.02)

    def rope(self, z):
        """Rotate each pair (z[2i], z[2i+1]) of z (B, H, T, N) by angle position * inv_freq[i]."""
        pos = torch.arange(z.size(-2), device=z.device, dtype=torch.float32)
        angle = pos[:, None] * self.inv_freq[None, :]  # (T, N/2)
        cos, sin = angle.cos().to(z.dtype), angle.sin().to(z.dtype)
        even, odd = z[..., 0::2], z[..., 1::2]
        return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)

    def forward(self, idx):
        B, T = idx.shape
        v = _ln(self.embed(idx)).unsqueeze(1)  # (B, 1, T, D): one residual stream, broadcast over heads
        earlier = torch.ones(T, T, dtype=torch.bool, device=idx.device).tril(-1)  # s < t strictly
        for _ in range(self.n_layer):
            x = F.relu(v @ self.encoder)  # (B, H, T, N)
            xr = self.rope(x)
            scores = (xr @ xr.transpose(-1, -2)).masked_fill(~earlier, 0.0)  # (B, H, T, T)
            a = scores @ v  # (B, H, T, D)
            y = F.relu(_ln(a) @ self.encoder_v) * x  # (B, H, T, N)
            y = self.drop(y).transpose(1, 2).reshape(B, 1, T, self.n_head * self.neurons)
            v = _ln(v + _ln(y @ self.decoder))
        return F.linear(v.squeeze(1), self.embed.weight)  # tied head
