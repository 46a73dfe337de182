"""Dynamic int8 quantization of a BERT token classifier's linear layers, for CPU inference.

Weights are int8 per output channel (symmetric); activations are quantized per tensor at run time,
from each batch's own min/max (fbgemm/x86 use 7-bit activations, `reduce_range`, to avoid overflow).

Backend: `torch.ao.quantization.quantize_dynamic`, although it is deprecated in favour of torchao.
perf/precision_bench.py --torchao, one run, 2-core AMD EPYC (AVX512-VNNI/BF16), torch 2.13 CPU,
torchao 0.18.0, 2 threads, MiniLM-L6, 50 sentences of 15-37 word pieces; ratios to fp32 (8.3 ms,
158 sentences/s):               batch-1 latency   batch-32 throughput
  bf16 autocast                     1.43x              3.17x
  int8 torch.ao (this module)       2.59x              2.74x
  int8 torchao eager                0.70x              1.12x
On the CoNLL teacher (results/models/teacher, CoNLL test sentences, a busier machine): 2.81x/2.14x,
bf16 1.54x/1.93x, torchao 0.48x/0.80x. torchao imports and runs with this torch, but on CPU its int8
path needs torch.compile (62 s here) and then reached only 1.2x at batch 1, so torch.ao's eager
fbgemm kernels win. torchao is the more accurate (per-token activation scales): max relative logit
error 3.5% vs 13.5% on the teacher, argmax agreement 99.7% vs 99.2%, and on the whole CoNLL test
split entity F1 went 86.39 (fp32) -> 85.96 (this module), bf16 86.38. Only torch.ao's deprecation
warnings are silenced, only around the calls below. If torch drops torch.ao.quantization, move to
torchao's `quantize_(model, Int8DynamicActivationInt8WeightConfig())` plus torch.compile.

The classifier is quantized by default, so every nn.Linear runs the same int8 path: it is one
9 x hidden layer (~0.02% of the linear weights and FLOPs) and made no difference on the teacher's
CoNLL validation F1 (0.8994 with the encoder only int8, 0.8992 with the classifier too; EPYC, issue 16);
`include_classifier=False` keeps it fp32. The embeddings stay fp32: a table lookup does no matmul,
so int8 saves no time there, and dynamic quantization only covers Linear (on MiniLM they are half
the weights, so the file shrinks 1.53x, not 4x; weight-only int8 embeddings would be a size-only step).
"""

import contextlib
import tempfile
import warnings
from pathlib import Path

import torch

from ..core.atomic import atomic_dir

STATE_FILE = "int8_state.pt"
_PACKED = "._packed_params._packed_params"


@contextlib.contextmanager
def _quiet_torch_ao():
    """Silence only torch.ao's deprecation notices (the choice is explained in the module doc); torch's
    own loader of quantized tensors also calls the deprecated TypedStorage."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"TypedStorage is deprecated", UserWarning)
        warnings.filterwarnings("ignore", r"torch\.ao\.quantization is deprecated", DeprecationWarning)
        warnings.filterwarnings("ignore", r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other "
                                "quantized tensor creation functions", UserWarning)
        yield


def linear_names(model, include_classifier=True):
    """Names of the nn.Linear modules to quantize: the encoder's, and the classifier unless told not to."""
    # an empty Linear (q, k, v of a layer whose every head was pruned) computes nothing, and torch.ao's
    # per-channel quantization fails on it ("length of scales must equal to channel")
    return [n for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and m.weight.numel() > 0
            and (include_classifier or n.split(".")[0] != "classifier")]


def quantize_int8(model, include_classifier=True, inplace=False, names=None):
    """Dynamic int8 model (a copy unless `inplace`): every selected nn.Linear becomes a
    DynamicQuantizedLinear with per-channel int8 weights; everything else stays fp32."""
    names = linear_names(model, include_classifier) if names is None else names
    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    with _quiet_torch_ao():
        return torch.ao.quantization.quantize_dynamic(model.eval(), {n: qconfig for n in names}, inplace=inplace)


def int8_size_bytes(model):
    """Bytes of the tensors in the state dict (quantized weights with their per-channel scales and
    zero points, which torch stores as float64/int64), i.e. the payload without file overhead."""
    total = 0
    for value in model.state_dict().values():
        for t in value if isinstance(value, tuple) else (value,):
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
                if t.is_quantized and t.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                    total += 16 * t.q_per_channel_scales().numel()
    return total


def _float_model(config):
    from transformers import AutoModelForTokenClassification

    return AutoModelForTokenClassification.from_config(config)


def save_quantized(model, folder):
    """Write config.json and the quantized state dict to `folder` (atomically); return the bytes of
    the state file, of the same model's fp32 model.safetensors, and their ratio."""
    with atomic_dir(folder) as tmp:
        model.config.save_pretrained(tmp)
        torch.save(model.state_dict(), tmp / STATE_FILE)
        int8 = (tmp / STATE_FILE).stat().st_size
    with tempfile.TemporaryDirectory() as ref:
        _float_model(model.config).save_pretrained(ref)
        fp32 = (Path(ref) / "model.safetensors").stat().st_size
    return {"int8_bytes": int8, "fp32_bytes": fp32, "ratio": fp32 / int8}


def load_quantized(folder):
    """Rebuild the float model from config.json, quantize the same layers, then load the int8 state."""
    from transformers import AutoConfig

    folder = Path(folder)
    with _quiet_torch_ao():
        state = torch.load(folder / STATE_FILE, weights_only=True)
    names = [k[: -len(_PACKED)] for k in state if k.endswith(_PACKED)]
    model = quantize_int8(_float_model(AutoConfig.from_pretrained(folder)), names=names, inplace=True)
    with _quiet_torch_ao():
        model.load_state_dict(state)
    return model.eval()
