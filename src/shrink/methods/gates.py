"""Hard-concrete gates (Louizos et al. 2018) for pruning attention heads (Voita et al. 2019).

A gate z in [0, 1] multiplies each head's output. z follows the hard-concrete distribution: a binary
concrete sample s (temperature beta) stretched to (l, r) with l < 0 < 1 < r and clamped to [0, 1], so
z is exactly 0 or 1 with nonzero probability while still being reparameterisable. The expected L0 norm
sum_i P(z_i != 0) = sum_i sigmoid(log_alpha_i - beta * log(-l / r)) is differentiable; the training
penalty is lambda * expected_l0().

Nothing here knows about a particular model: `gate_heads_before` works on any attention output
projection whose input is the concatenation of the heads, and `GatedHeads` draws one sample per
forward pass of a root module and hands row `index` of it to each gated projection.
"""

import math
from typing import Callable

import torch
from torch import nn


class HardConcreteGates(nn.Module):
    """A tensor of independent hard-concrete gates of `shape`, e.g. (num_layers, num_heads).

    `init_open` is the initial P(gate != 0). The default 0.99 gives log_alpha = logit(0.99) +
    beta * log(-l / r) ~= 3.0: the eval gate is then exactly 1 (it is 1 once log_alpha >= log((1-l)/(r-1))
    = log 11 ~= 2.4), so the converged model starts unchanged, as Voita prunes a trained model; and a
    training sample is exactly 1 with probability ~0.80, yet the L0 gradient p(1-p) ~= 0.01 is not
    vanishingly small, so the penalty can still close gates.
    """

    def __init__(self, shape, temperature=2 / 3, stretch=(-0.1, 1.1), init_open=0.99):
        super().__init__()
        self.temperature = float(temperature)
        self.low, self.high = map(float, stretch)
        if not (self.low < 0 and self.high > 1 and 0 < init_open < 1):
            raise ValueError("need stretch l < 0 < 1 < r and 0 < init_open < 1")
        # Inverse of open_probability(): log_alpha = logit(init_open) + beta * log(-l / r).
        init = math.log(init_open / (1 - init_open)) + self._log_ratio()
        self.log_alpha = nn.Parameter(torch.full(tuple(shape), init))

    def _log_ratio(self):
        return self.temperature * math.log(-self.low / self.high)

    def _stretch(self, s):
        return (s * (self.high - self.low) + self.low).clamp(0.0, 1.0)

    def sample(self):
        """Reparameterised training sample; uses the global RNG, so torch.manual_seed makes it reproducible."""
        # Keep u away from 0 and 1 so log(u) - log(1 - u) stays finite.
        u = torch.rand_like(self.log_alpha).clamp(1e-6, 1 - 1e-6)
        s = torch.sigmoid((u.log() - (1 - u).log() + self.log_alpha) / self.temperature)
        return self._stretch(s)

    def deterministic(self):
        """Test-time estimate of Louizos et al.: clamp(sigmoid(log_alpha) * (r - l) + l, 0, 1)."""
        return self._stretch(torch.sigmoid(self.log_alpha))

    def forward(self):
        return self.sample() if self.training else self.deterministic()

    def open_probability(self):
        """P(z != 0) = P(s > -l / (r - l)) = sigmoid(log_alpha - beta * log(-l / r))."""
        return torch.sigmoid(self.log_alpha - self._log_ratio())

    def expected_l0(self):
        """Expected number of nonzero gates; the sparsity penalty is lambda * expected_l0()."""
        return self.open_probability().sum()

    @torch.no_grad()
    def keep_mask(self):
        """Gates whose eval value is > 0, i.e. log_alpha > log(-l / (r - l)) (= -log 11 by default).

        This is exactly the set of heads that contribute in eval mode, so removing the others (and
        folding the eval values of the kept ones into the weights) reproduces the gated eval model.
        """
        return self.deterministic() > 0


def gate_heads_before(linear: nn.Module, gate_fn: Callable[[], torch.Tensor], num_heads: int):
    """Multiply each head's slice of `linear`'s input by its gate; returns the hook handle.

    `linear` is an attention output projection whose input is (..., num_heads * head_dim), heads
    concatenated in order (the layout of every standard multi-head attention). Gating the input of
    this projection is the same as gating each head's output before the heads are mixed.
    """

    def hook(module, args):
        x, rest = args[0], args[1:]
        gate = gate_fn().to(x)  # match dtype and device of the activations
        heads = x.unflatten(-1, (num_heads, x.shape[-1] // num_heads))
        return ((heads * gate[:, None]).flatten(-2),) + tuple(rest)

    return linear.register_forward_pre_hook(hook)


class GatedHeads:
    """Attaches gates to a model: one gate sample per forward pass of `root`, shared by all layers.

    Sampling once per forward of the whole model (rather than at each layer call) gives one coherent
    mask per pass, and the stored sample is reused if layers are recomputed (gradient checkpointing).
    The sample follows `root.training`: a random draw in training, the deterministic value in eval,
    whatever the mode of the gates module itself. The gates are not registered in the model, so their
    parameters must be given to the optimizer separately. Use as a context manager, or call remove().
    """

    def __init__(self, root: nn.Module, gates: HardConcreteGates):
        self.gates, self.current = gates, None
        self.handles = [root.register_forward_pre_hook(self._draw)]

    def _draw(self, module, args):
        self.current = self.gates.sample() if module.training else self.gates.deterministic()

    def _row(self, index):
        if self.current is None:
            raise RuntimeError("gated projection ran before the root module's forward drew a gate sample")
        return self.current[index]

    def gate(self, linear: nn.Module, index, num_heads: int):
        """Gate `linear`'s input heads with row `index` of each sample (an int or tuple index)."""
        self.handles.append(gate_heads_before(linear, lambda: self._row(index), num_heads))
        return self

    def remove(self):
        for handle in self.handles:
            handle.remove()
        self.handles, self.current = [], None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
