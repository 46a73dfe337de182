"""One-shot pruning of Linear layers: SparseGPT (Frantar & Alistarh 2023, "SparseGPT: Massive Language
Models Can Be Accurately Pruned in One-Shot") and the two baselines it is compared with, magnitude
pruning and Wanda (Sun et al. 2024, "A Simple and Effective Pruning Approach for Large Language Models").

SparseGPT prunes each output row w to minimise the layer's reconstruction error on calibration
inputs, (w - w')^T H (w - w') with H = 2/N sum x x^T. Columns are visited left to right; when a
column is pruned, the Optimal Brain Surgeon update moves the not-yet-visited columns of the row to
compensate, using the inverse Hessian of those remaining columns. All of these inverses are rows of
one upper Cholesky factor U of H^-1, so the whole sequence costs one factorisation.

What each method prunes (unstructured sparsity s; "floor" is floor(s * count)):
- sparsegpt, mask_selection "block" (default; the paper's Algorithm 1 and its reference code): the
  columns are cut into blocks of `blocksize`; on reaching a block, the mask is chosen over the whole
  block (all rows x the block's columns together) as the lowest OBS errors (w / U_cc)^2, with the
  weights as updated by the earlier blocks. Rows therefore lose different numbers of weights. Block
  budgets telescope, floor(s * rows * i2) - floor(s * rows * i1) for columns [i1, i2), so the
  layer loses exactly floor(s * rows * cols) weights.
- sparsegpt, mask_selection "row": the same, but the block's budget floor(s * i2) - floor(s * i1) is
  taken in every row separately, so every row loses exactly floor(s * cols) weights.
- magnitude: the floor(s * rows * cols) smallest |w| of the whole weight matrix (layer-wide), the
  classic baseline of the SparseGPT paper.
- wanda: the floor(s * cols) lowest |W_ij| * ||X_j||_2 of every output row, as in Wanda's paper
  (its per-output comparison group).
Counts are those of the mask; a kept weight that happens to be 0 adds to the zeros.
n:m patterns (all three methods) prune exactly n weights in every group of m consecutive input
columns of every row; SparseGPT chooses a group's mask when it reaches the group.
"""

import inspect
import math

import torch
from torch import nn

METHODS = ("sparsegpt", "magnitude", "wanda")
MASK_SELECTIONS = ("block", "row")  # SparseGPT's unstructured mask: over a whole block, or per row of it


def _n_pruned(sparsity, n):
    # round down; the epsilon absorbs float error such as 0.29 * 100 = 28.999...
    return math.floor(sparsity * n + 1e-9)


def _lowest(score, k):
    """Boolean mask of the k lowest scores in each row (True = prune)."""
    idx = score.topk(k, dim=1, largest=False).indices
    return torch.zeros_like(score, dtype=torch.bool).scatter_(1, idx, True)


def _lowest_overall(score, k):
    """Boolean mask of the k lowest scores of the whole tensor (True = prune); exactly k even with ties."""
    flat = score.reshape(-1)
    idx = flat.topk(k, largest=False).indices
    return torch.zeros_like(flat, dtype=torch.bool).scatter_(0, idx, True).reshape(score.shape)


def _block_budget(sparsity, rows, i1, i2, mask_selection):
    """Weights to prune in columns [i1, i2): per row ("row") or over the whole block ("block").

    Differences of cumulative floors, so the budgets of consecutive blocks add up to the floor of the
    total (no rounding drift however many blocks there are).
    """
    if mask_selection == "row":
        return _n_pruned(sparsity, i2) - _n_pruned(sparsity, i1)
    return _n_pruned(sparsity, rows * i2) - _n_pruned(sparsity, rows * i1)


def _select(score, sparsity, prune_n, prune_m):
    """Prune mask: the lowest `sparsity` fraction per row, or n lowest of every m consecutive columns."""
    rows, cols = score.shape
    if prune_n and prune_m:
        if cols % prune_m:
            raise ValueError(f"{cols} input columns are not a multiple of m={prune_m}")
        return _lowest(score.reshape(-1, prune_m), prune_n).reshape(rows, cols)
    return _lowest(score, _n_pruned(sparsity, cols))


def _check(sparsity, prune_n, prune_m):
    if not 0 <= sparsity <= 1:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    if bool(prune_n) != bool(prune_m) or prune_n < 0 or prune_n > prune_m:
        raise ValueError(f"bad n:m pattern {prune_n}:{prune_m}")


def magnitude_prune(weight, sparsity=0.5, prune_n=0, prune_m=0):
    """Zero the floor(sparsity * numel) smallest |w| of the whole matrix (layer-wide, the classic
    baseline), or the n smallest of every group of m; returns a new tensor."""
    _check(sparsity, prune_n, prune_m)
    if prune_n:
        return weight.masked_fill(_select(weight.abs(), sparsity, prune_n, prune_m), 0)
    return weight.masked_fill(_lowest_overall(weight.abs(), _n_pruned(sparsity, weight.numel())), 0)


def wanda_prune(weight, input_norm, sparsity=0.5, prune_n=0, prune_m=0):
    """Zero the lowest |W_ij| * ||X_j||_2 of each output row (or group of m); input_norm is (in,)."""
    _check(sparsity, prune_n, prune_m)
    score = weight.abs().float() * input_norm.float().to(weight.device)[None, :]
    return weight.masked_fill(_select(score, sparsity, prune_n, prune_m), 0)


@torch.no_grad()
def sparsegpt_prune(weight, hessian, sparsity=0.5, prune_n=0, prune_m=0, blocksize=128, percdamp=0.01,
                    mask=None, mask_selection="block"):
    """SparseGPT on one Linear weight (out, in) given H (in, in). Returns (new_weight, stats).

    mask_selection (unstructured only): "block" chooses each block's mask over all its rows together
    (the paper), "row" takes the block's budget in every row. `mask` (out, in, True = prune) fixes
    the pruned set instead of selecting it; for tests and for reusing a mask chosen elsewhere.
    """
    _check(sparsity, prune_n, prune_m)
    if mask_selection not in MASK_SELECTIONS:
        raise ValueError(f"unknown mask_selection {mask_selection!r}; expected one of {MASK_SELECTIONS}")
    if prune_m and blocksize % prune_m:
        raise ValueError(f"blocksize {blocksize} must be a multiple of m={prune_m}")
    W = weight.detach().float().clone()
    H = hessian.detach().float().clone().to(W.device)
    rows, cols = W.shape
    # A dead input (never nonzero on the calibration data) leaves H singular. Its weight has no
    # effect on the calibration outputs, so give it a unit diagonal (decoupled from the rest) and a
    # zero pruning score: it is pruned first, for free, but never beyond the block's (or row's) budget.
    dead = H.diagonal() == 0
    H[dead, dead] = 1
    damp = percdamp * H.diagonal().mean()
    H.diagonal().add_(damp)  # dampening keeps the Cholesky stable for near-singular H
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    prune = torch.zeros_like(W, dtype=torch.bool) if mask is None else mask.to(W.device, torch.bool)
    pick = _lowest if mask_selection == "row" else _lowest_overall

    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1, U1 = W[:, i1:i2], U[i1:i2, i1:i2]  # views: in-place updates reach W
        d = U1.diagonal()
        err = torch.zeros_like(W1)
        if mask is None and not prune_n:
            # Adaptive selection per block, with the weights as updated by earlier blocks; the OBS
            # error of pruning w_c is w_c^2 / [H_F^-1]_cc = (w_c / U_cc)^2. "block" spends the budget
            # where these errors are smallest whichever row they are in (the paper); top-k rather than
            # the reference code's threshold, so ties cannot push the count past the budget.
            score = (W1 / d) ** 2
            score[:, dead[i1:i2]] = 0
            prune[:, i1:i2] = pick(score, _block_budget(sparsity, rows, i1, i2, mask_selection))
        for j in range(i2 - i1):
            c = i1 + j
            if mask is None and prune_n and j % prune_m == 0:
                # n:m: choose the group's mask when reaching it, so it sees all updates so far
                score = (W1[:, j:j + prune_m] / d[j:j + prune_m]) ** 2
                score[:, dead[c:c + prune_m]] = 0
                prune[:, c:c + prune_m] = _lowest(score, prune_n)
            w = W1[:, j]
            e = torch.where(prune[:, c], w, 0) / d[j]
            # OBS update of the remaining columns of the block; column j is then frozen
            W1[:, j + 1:] -= e[:, None] * U1[j, j + 1:][None, :]
            W1[:, j] = w.masked_fill(prune[:, c], 0)
            err[:, j] = e
        # lazy batch update: the columns after the block receive the block's errors in one matmul
        W[:, i2:] -= err @ U[i1:i2, i2:]

    stats = {"sparsity": prune.float().mean().item(), "dead_inputs": int(dead.sum()), "damp": float(damp)}
    return W.to(weight.dtype), stats


class LayerStats:
    """Running statistics of the inputs of one Linear: H = 2/N sum x x^T and per-feature ||X_j||_2."""

    def __init__(self, in_features, device=None):
        self.xtx = torch.zeros(in_features, in_features, device=device)
        self.sq = torch.zeros(in_features, device=device)
        self.n = 0

    def add(self, x, token_mask=None):
        """x (..., in); token_mask (...) boolean, True for real tokens (padding is left out)."""
        if token_mask is not None:
            if token_mask.shape != x.shape[:-1]:
                raise ValueError(f"token mask {tuple(token_mask.shape)} does not match input {tuple(x.shape)}")
            x = x[token_mask.to(x.device, torch.bool)]
        x = x.reshape(-1, x.shape[-1]).float()
        self.xtx += x.T @ x
        self.sq += (x * x).sum(0)
        self.n += x.shape[0]

    @property
    def hessian(self):
        return self.xtx * (2 / self.n) if self.n else torch.zeros_like(self.xtx)

    @property
    def input_norm(self):
        return self.sq.sqrt()


def relative_error(weight, new_weight, hessian):
    """||W X - W' X||_F^2 / ||W X||_F^2, from H alone since ||A X||_F^2 = tr(A X X^T A^T)."""
    W, D = weight.float(), (weight.float() - new_weight.float())
    den = ((W @ hessian) * W).sum().item()
    return ((D @ hessian) * D).sum().item() / den if den > 0 else float("nan")


def _parse_pattern(pattern):
    return (0, 0) if pattern == "unstructured" else tuple(int(v) for v in pattern.split(":"))


def _run(block, hidden, kwargs, layer_kwargs):
    out = block(hidden, **kwargs, **(layer_kwargs or {}))
    return out[0] if isinstance(out, (tuple, list)) else out  # older HF layers return tuples


def _token_mask_for(x, mask):
    """The batch's token mask for a linear's input over tokens; None (every row counts) for an input that
    is not per token, such as DeBERTa's relative-position embeddings through its position projections."""
    return mask if mask is not None and tuple(x.shape[:-1]) == tuple(mask.shape) else None


@torch.no_grad()
def prune_layers(layers, first_inputs, method, sparsity=0.5, pattern="unstructured", blocksize=128,
                 percdamp=0.01, layer_kwargs=None, mask_selection="block", per_layer_kwargs=None):
    """Prune every nn.Linear of `layers` block by block, sequentially, as in the SparseGPT paper.

    first_inputs: list of (hidden_states, extra_kwargs, token_mask) as they enter layers[0].
    layer_kwargs: keyword arguments passed to every block call on top of each batch's own.
    per_layer_kwargs: optional [batch][block] kwargs replacing each batch's own for that block (layers
    whose masks or position embeddings differ).
    mask_selection: SparseGPT's unstructured mask, "block" or "row" (see the module docstring).
    For n:m patterns `sparsity` is ignored. Each block's statistics are collected in one pass through
    the unpruned block (the paper's scheme), so a block's later linears (attention output, FFN) see
    inputs from its unpruned earlier linears; the next block then sees the pruned block's outputs.
    Returns {"<block>.<linear>": {"sparsity": zero fraction, "rel_error": relative_error}}.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if mask_selection not in MASK_SELECTIONS:  # fail before the first forward pass, not at the first linear
        raise ValueError(f"unknown mask_selection {mask_selection!r}; expected one of {MASK_SELECTIONS}")
    prune_n, prune_m = _parse_pattern(pattern)
    inputs, report = list(first_inputs), {}
    for i, block in enumerate(layers):
        linears = {name: mod for name, mod in block.named_modules() if isinstance(mod, nn.Linear)}
        stats = {name: LayerStats(mod.in_features, mod.weight.device) for name, mod in linears.items()}
        current = {}  # token mask of the batch being run, read by the hooks

        def hook(name, stats=stats, current=current):  # bound now: a hook must not see a later block's dicts
            return lambda mod, args, out: stats[name].add(args[0], _token_mask_for(args[0], current["mask"]))

        handles = [mod.register_forward_hook(hook(name)) for name, mod in linears.items()]
        try:
            for hidden, kwargs, mask in inputs:
                current["mask"] = mask
                _run(block, hidden, kwargs, layer_kwargs)
        finally:
            for h in handles:
                h.remove()

        for name, mod in linears.items():
            W, s = mod.weight, stats[name]
            if method == "sparsegpt":
                new = sparsegpt_prune(W, s.hessian, sparsity, prune_n, prune_m, blocksize, percdamp,
                                      mask_selection=mask_selection)[0]
            elif method == "wanda":
                new = wanda_prune(W, s.input_norm, sparsity, prune_n, prune_m)
            else:
                new = magnitude_prune(W, sparsity, prune_n, prune_m)
            report[f"{i}.{name}"] = {"sparsity": (new == 0).float().mean().item(),
                                     "rel_error": relative_error(W, new, s.hessian)}
            W.copy_(new)
        # rerun the pruned block: the next block is calibrated on outputs that carry this block's error
        nxt = i + 1
        inputs = [(_run(block, h, kw, layer_kwargs),
                   per_layer_kwargs[b][nxt] if per_layer_kwargs and nxt < len(layers) else kw, mask)
                  for b, (h, kw, mask) in enumerate(inputs)]
    return report


def _layer_inputs(model, layers, batch):
    """Run `model` once and return, for each layer, (hidden_states, kwargs, token_mask) as it gets them.

    Only the first layer's hidden states are used (later ones come from the pruned blocks); the kwargs
    (attention masks, position embeddings, relative positions) are each layer's own, since families
    such as ModernBERT give local and global layers different masks and rotary tables."""
    seen = {}

    def pre_hook(i):
        def hook(mod, args, kwargs):
            seen.setdefault(i, (args, kwargs))  # a shared layer keeps its first call's inputs
        return hook

    handles = [layer.register_forward_pre_hook(pre_hook(i), with_kwargs=True) for i, layer in enumerate(layers)]
    accepted = inspect.signature(model.forward).parameters
    try:
        model(**{k: v for k, v in batch.items()
                 if k in ("input_ids", "attention_mask", "token_type_ids") and k in accepted})
    finally:
        for h in handles:
            h.remove()
    out = []
    for i, layer in enumerate(layers):
        args, kwargs = seen[i] if i in seen else seen[min(seen)]
        # name the positional arguments (the encoder passes the attention mask positionally)
        sig = inspect.signature(layer.forward)
        bound = dict(sig.bind(*args, **kwargs).arguments)
        hidden = bound.pop(next(iter(sig.parameters)))
        for name, p in sig.parameters.items():
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                bound.update(bound.pop(name, {}))
        out.append((hidden, bound, batch["attention_mask"].bool()))
    return out


def _first_layer_inputs(model, layer, batch):
    """(hidden_states, kwargs, token_mask) as `layer` gets them when `model` runs on `batch`."""
    return _layer_inputs(model, [layer], batch)[0]


@torch.no_grad()
def prune_encoder(model, calib_batches, method, sparsity=0.5, pattern="unstructured", blocksize=128, percdamp=0.01,
                  mask_selection="block"):
    """Prune the encoder-layer linears of a token classifier of any supported family in place (its layers
    found by shrink.methods.architectures); returns the report keyed by full linear names.

    Embeddings and the classifier are left dense: the embedding is a lookup table, not a Linear with
    a calibration Hessian, and the classifier is tiny and sits right at the loss. Each layer's extra
    inputs (the model's own attention mask, position embeddings) are captured with pre-hooks, so they
    are built exactly as the model builds them.
    """
    from .architectures import adapter_for

    a = adapter_for(model)
    layers = list(a.layers(model))
    was_training = model.training
    model.eval()
    try:
        captured = [_layer_inputs(model, layers, b) for b in calib_batches]
        first = [c[0] for c in captured]
        per_layer = [[kw for _, kw, _ in c] for c in captured]
        report = prune_layers(layers, first, method, sparsity, pattern, blocksize, percdamp,
                              mask_selection=mask_selection, per_layer_kwargs=per_layer)
    finally:
        model.train(was_training)
    prefix = a.layers_name(model)
    return {f"{prefix}.{k}": v for k, v in report.items()}


