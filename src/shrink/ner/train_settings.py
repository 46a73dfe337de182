"""The trainer's settings (config section `train`), declared once: TrainConfig's fields and defaults, its
checks, the settings a recipe step may override and the reference table all come from here.

Torch-free: the workflow reads it when it starts (shrink.ner.recipes).
"""

from ..core.settings import Setting

TRAIN_SETTINGS = (
    Setting("epochs", int, 3, "passes over the train split", minimum=1),
    # a rate this small trains nothing and one this large diverges
    Setting("lr", float, 1e-4, "peak learning rate of AdamW", minimum=1e-6, maximum=1e-2),
    Setting("batch_size", int, 32, "sentences per batch, unless batch_tokens is set", minimum=1),
    Setting("batch_tokens", int, None, "with group_by_length, a budget of padded word pieces per batch instead "
            "of batch_size sentences", minimum=8),
    Setting("eval_batch_size", int, 64, "sentences per validation batch", minimum=1),
    Setting("warmup_ratio", float, 0.1, "share of the steps with a linear warmup", minimum=0.0, maximum=1.0),
    Setting("scheduler", str, "linear", "decay after warmup", choices=("linear", "cosine")),
    Setting("weight_decay", float, 0.01, "AdamW weight decay (not on biases and norms)", minimum=0.0),
    Setting("max_grad_norm", float, 1.0, "gradient clipping norm", minimum=0.0, exclusive_minimum=True),
    Setting("precision", str, "auto", "autocast of training and validation; auto: bf16 where the CPU or GPU "
            "runs it natively, else fp32 (CPU) or fp16 with a gradient scaler (CUDA)",
            choices=("auto", "fp32", "bf16", "fp16")),
    Setting("device", str, "cpu", "cuda also makes the rule request a GPU", choices=("cpu", "cuda", "auto")),
    Setting("group_by_length", bool, True, "length-grouped batches (else random)"),
    Setting("compile", bool, False, "torch.compile the model (inductor, dynamic shapes) for training and "
            "validation; perf/trainer_vs_hf.py measures what it gives"),
    # measured: 3.6% more word pieces/s for MiniLM on the AMX Xeon, same F1 (perf/trainer_vs_hf.py, ours-alloc)
    Setting("keep_freed_memory", bool, True, "glibc keeps freed memory for the next step instead of returning "
            "each large block to the system (no page faults on reuse; resident memory stays at its peak)"),
    Setting("log_every", int, 10, "optimizer steps between rows of the step log", minimum=1),
    Setting("seed", int, 42, "set from the top-level `seed`"),
    Setting("processes", int, 1, "data-parallel training processes (PyTorch DDP)", minimum=1),
)
# the same for every step of a run: a recipe step cannot override them (keep_freed_memory: a process-wide
# setting with no way back)
RUN_WIDE = {"device", "processes", "seed", "keep_freed_memory"}
# how fast a step runs, not what it computes: kept out of the rules' params (changing one reruns nothing; the
# job reads it from the config) and out of the checkpoint fingerprint (a killed run resumes across it)
SPEED_ONLY = {"keep_freed_memory"}
# the train settings a recipe step that trains may override (e.g. `finetune: {epochs: 1, lr: 3e-5}`)
STEP_TRAIN_SETTINGS = tuple(s for s in TRAIN_SETTINGS if s.name not in RUN_WIDE)
