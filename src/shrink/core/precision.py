"""Numeric precision of a run, chosen from what the hardware runs natively, and the machine a number came from.

`auto` (the default of every precision key) means:
- CPU: bf16 autocast where the processor has bf16 instructions that oneDNN uses (AMX or AVX512-BF16
  on x86, the BF16 extension on Arm), fp32 elsewhere. Without them, bf16 is emulated: one MiniLM-L6
  training step took 9.0 s against 0.38 s in fp32 on an AVX2-only AMD EPYC (24x), a cased DistilBERT
  step 50x; with them it is about 2x faster than fp32 (docs/precision.md).
- CUDA: bf16 where the GPU supports it (Ampere and newer); fp16 autocast elsewhere (V100, T4), with a
  gradient scaler when training.
"""

import contextlib
import os
import platform
import warnings

from .errors import ConfigError

# torch is imported inside the functions: the workflow checks its config with this module at start-up,
# and every snakemake invocation would otherwise pay torch's 1.7 s import.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}
# measured on an AVX2-only AMD EPYC, torch 2.13 (issue 19): MiniLM-L6 24x, cased DistilBERT 50x per training step
EMULATED_BF16_SLOWDOWN = "about 10-50x"

_warned = set()
# set by the workflow once it has warned at start-up, so its jobs (which inherit it) do not repeat it
WARNED_ENV = "SHRINK_BF16_WARNED"


def cpu_capability():
    """torch's vector kernel level (e.g. AVX2, AVX512); ATEN_CPU_CAPABILITY lowers it."""
    import torch

    return torch.backends.cpu.get_cpu_capability()


def cpu_bf16_native():
    """True where bf16 matrix products run on bf16 hardware instructions rather than emulation.

    oneDNN answers for the bf16 path it will take (ONEDNN_MAX_CPU_ISA=AVX2 turns it off); on x86 that
    path also exists on plain AVX-512, where it converts in software, so AMX or AVX512-BF16 is required too.
    """
    import torch

    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        hardware = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
        return bool(hardware) and cpu_capability() not in ("DEFAULT", "NO AVX", "AVX2")
    return True


def cuda_bf16_native():
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def device_type(device):
    if device in ("cpu", "cuda"):
        return device
    import torch

    return torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                        "cpu" if device == "auto" else device).type


def resolve(precision, device, key):
    """The precision a run uses: fp32, bf16 or fp16. `key` names the config key in errors and warnings."""
    if precision not in PRECISIONS:
        raise ConfigError(key, f"must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    kind = device_type(device)
    if precision == "auto":
        if kind == "cuda":
            return "bf16" if cuda_bf16_native() else "fp16"
        return "bf16" if cpu_bf16_native() else "fp32"
    if precision == "fp16" and kind != "cuda":
        raise ConfigError(key, "fp16 autocast needs a CUDA GPU; on a CPU use auto, fp32 or bf16")
    if precision == "bf16" and kind == "cpu" and not cpu_bf16_native():
        warn_emulated_bf16(key)
    return precision


def warn_emulated_bf16(key):
    """Once per key and process: an explicit bf16 on a CPU that can only emulate it."""
    if key in _warned or key in os.environ.get(WARNED_ENV, "").split(","):
        return
    _warned.add(key)
    warnings.warn(f"{key}: bf16 on this CPU ({cpu_name()}, torch capability {cpu_capability()}, no AMX or "
                  f"AVX512-BF16) is emulated and runs {EMULATED_BF16_SLOWDOWN} slower than fp32; "
                  f"set {key}: auto (fp32 here)", RuntimeWarning, stacklevel=3)


def autocast(device, precision):
    """Autocast for a resolved precision; fp32 is a no-op."""
    if precision in AUTOCAST_DTYPES:
        import torch

        return torch.autocast(device_type=device_type(device), dtype=getattr(torch, AUTOCAST_DTYPES[precision]))
    return contextlib.nullcontext()


def loss_dtype(tensor):
    """The dtype a loss is computed in: at least fp32 (bf16/fp16 logits under autocast are widened, since a
    softmax or KL in 8 mantissa bits is noisy), and fp64 stays fp64, so the loss follows a double model."""
    import torch

    return torch.promote_types(tensor.dtype, torch.float32)


def grad_scaler(device, precision):
    """A gradient scaler that is active for fp16 only (bf16 has fp32's exponent range and needs none)."""
    import torch

    return torch.amp.GradScaler(device_type(device), enabled=precision == "fp16")


def cpu_name():
    """The processor's model name, as the OS reports it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device="cpu"):
    """What a measurement ran on: CPU model, torch's CPU kernel level, native bf16, threads, GPU."""
    import torch

    out = {"cpu": cpu_name(), "cpu_capability": cpu_capability(), "cpu_bf16_native": cpu_bf16_native(),
           "threads": torch.get_num_threads(), "gpu": None}
    for var in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"):
        if os.environ.get(var):
            out[var] = os.environ[var]
    if device_type(device) == "cuda" and torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
    return out


def describe(precision=None, device="cpu"):
    """One line naming the machine (and the precision), printed first by the perf scripts."""
    m = machine(device)
    forced = "".join(f", {k}={m[k]}" for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if k in m)
    line = (f"machine: {m['cpu']} (torch capability {m['cpu_capability']}, native bf16 "
            f"{'yes' if m['cpu_bf16_native'] else 'no'}{forced}), {m['threads']} threads")
    if m["gpu"]:
        line += f", GPU {m['gpu']}"
    if precision is not None:
        line += f"; precision {precision}"
    return line


def config_precisions(config):
    """(dotted key, value, device) of every `precision` key in a workflow config.

    A key's device is its section's `device`, else train.device (compression steps train with it).
    """
    default_device = (config.get("train") or {}).get("device", "cpu")
    found = []

    def walk(node, path, device):
        if isinstance(node, dict):
            device = node.get("device", device) if isinstance(node.get("device"), str) else device
            for k, v in node.items():
                key = f"{path}.{k}" if path else str(k)
                if k == "precision" and isinstance(v, str):
                    found.append((key, v, device))
                else:
                    walk(v, key, device)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]", device)

    walk(config, "", default_device)
    return found


def check_config(config):
    """At workflow start: fp16 on a CPU fails naming the key, and an explicit bf16 that this CPU only
    emulates warns once. `auto` is resolved by each job, on the machine it runs on."""
    for key, value, device in config_precisions(config):
        if value != "auto":
            resolve(value, device, key)
    if _warned:
        os.environ[WARNED_ENV] = ",".join(sorted(_warned))
