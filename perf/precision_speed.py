"""Training-step and inference time in fp32 and in bf16 autocast, side by side in ONE run, and what
`precision: auto` picks on this machine.

Token classifier (MiniLM-L6 by default, or any folder with --model): batch 32 x 20 word pieces,
a training step is forward, backward and a fused AdamW step. Language models (--lm): the four
architectures of config/lm.yaml at 1M parameters, 16 x 128 tokens. Times come from
torch.utils.benchmark (warm-up, then adaptive repeats), on fixed thread counts.

    python perf/precision_speed.py                       # MiniLM-L6 token classifier
    python perf/precision_speed.py --lm                  # the four LM architectures
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python perf/precision_speed.py   # an AVX2-only CPU
"""

import argparse

import torch
import torch.nn.functional as F
from torch.utils import benchmark

from shrink.core.precision import autocast, describe, resolve


def timed(fn, min_run_time):
    fn()  # warm-up outside the timer: first calls pick kernels and allocate
    return benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads()
                           ).blocked_autorange(min_run_time=min_run_time).median


def token_classifier_cases(args):
    from transformers import AutoModelForTokenClassification

    from shrink.core.encoders import minilm_path

    folder = args.model or str(minilm_path())
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(folder, num_labels=9)
    vocab = model.config.vocab_size
    batch = {"input_ids": torch.randint(1000, vocab, (32, 20)), "attention_mask": torch.ones(32, 20, dtype=torch.long),
             "labels": torch.randint(0, 9, (32, 20))}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)

    def train_step(precision):
        def step():
            with autocast("cpu", precision):
                loss = model(**batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return step

    def infer(precision):
        inputs = {k: v for k, v in batch.items() if k != "labels"}

        @torch.no_grad()
        def step():
            with autocast("cpu", precision):
                model(**inputs)
        return step

    name = folder.rstrip("/").split("/")[-1] if args.model else "MiniLM-L6"
    return [(f"{name} training step", train_step), (f"{name} inference", infer)]


def lm_cases(args):
    from shrink.lm.models import build, fit_width

    settings = {"transformer": {"n_layer": 4, "n_head": 4}, "gru": {"n_layer": 2},
                "bdh": {"n_layer": 4, "n_head": 4, "mlp_multiplier": 8}, "reflex": {"n_layer": 4, "n_head": 4}}
    cases = []
    for arch, st in settings.items():
        torch.manual_seed(0)
        model = build(arch, 4096, 128, fit_width(arch, 4096, 128, 1_000_000, st), st)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        x, y = torch.randint(0, 4096, (16, 128)), torch.randint(0, 4096, (16, 128))

        def train_step(precision, model=model, opt=opt, x=x, y=y):
            def step():
                with autocast("cpu", precision):
                    loss = F.cross_entropy(model(x).flatten(0, 1).float(), y.flatten())
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            return step
        cases.append((f"LM {arch} training step", train_step))
    return cases


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a token-classifier folder (default: the packaged MiniLM-L6)")
    p.add_argument("--lm", action="store_true", help="the four language-model architectures instead")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--min-run-time", type=float, default=2.0, help="seconds of repeats per measurement")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(describe())
    print(f"precision: auto resolves to {resolve('auto', 'cpu', 'precision')} here")
    print(f"{'case':36} {'fp32 s':>9} {'bf16 s':>9} {'bf16/fp32':>10}")
    for name, make in (lm_cases(args) if args.lm else token_classifier_cases(args)):
        fp32 = timed(make("fp32"), args.min_run_time)
        bf16 = timed(make("bf16"), args.min_run_time)
        print(f"{name:36} {fp32:9.4f} {bf16:9.4f} {bf16 / fp32:9.2f}x", flush=True)


if __name__ == "__main__":
    main()
