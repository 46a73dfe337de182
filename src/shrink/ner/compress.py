"""One compression step of a recipe: load the parent model, apply the method, save the result.

Each function takes a `StepContext` (paths and settings the rule passes) and writes the step's
model folder and `step.json` report; training steps also write their step and epoch logs.
"""

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..core.atomic import atomic_dir, write_json
from ..core.errors import ConfigError
from ..core.model_size import count_parameters
from ..methods.ops import record_op
from .models import build_token_classifier
from .recipes import split_train, step_settings
from .variants import load_variant, save_variant


@dataclass
class StepContext:
    method: str
    params: dict
    data: str                      # tokenized data folder
    out: dict                      # model, report and (training steps) steps, epochs, extra
    parent: str | None = None      # parent model folder; None: the pretrained encoder
    teacher: dict = field(default_factory=dict)   # teacher section of the config
    train_cfg: dict = field(default_factory=dict)  # train section of the config
    seed: int = 42
    checkpoints: str | None = None
    teacher_model: str | None = None
    teacher_logits: str | None = None
    key: str = "compress"          # config key of this step (compress.variants.<name>.recipe[i]), for errors
    student_budget: int | None = None  # compress.student_budget: the default parameter budget of a student

    def __post_init__(self):
        from .evaluate import load_tokenized

        self.dd, self.tok, self.labels = load_tokenized(self.data)
        self.overrides = split_train(self.params)[1]
        self.settings = step_settings(self.method, self.params)

    def load_parent(self):
        if self.parent is None:
            return build_token_classifier(self.teacher, self.labels, len(self.tok), self.seed)
        return load_variant(self.parent)

    def save(self, model, report):
        from .train import TRAINING_RECORD

        with atomic_dir(self.out["model"]) as tmp:
            save_variant(model, self.tok, tmp)
            # an untrained step keeps its parent's weights' training record (precision, machine)
            record = Path(self.parent or "", TRAINING_RECORD)
            if self.parent and record.is_file():
                shutil.copyfile(record, tmp / TRAINING_RECORD)
        write_json(self.out["report"], {"method": self.method, "params": self.params, **report})

    def write_report(self, report):
        """A training step's step.json. With several training processes (train.processes) every one
        finishes with the same model and report, and rank 0 writes it."""
        from ..core.distributed import is_main

        if is_main():
            write_json(self.out["report"], {"method": self.method, "params": self.params, **report})

    def train(self, model, objective=None, export=None, select="best"):
        """Train with the config's train settings updated by the step's own; returns the epoch rows."""
        from .train import TrainConfig, train_token_classifier

        cfg = TrainConfig.from_dict({**self.train_cfg, **self.overrides}, seed=self.seed)
        export = export or (lambda m: m)

        def save(m, folder):
            save_variant(export(m), self.tok, folder)

        return train_token_classifier(
            model, self.tok, self.dd["train"], self.dd["validation"], self.labels, cfg, self.out["model"],
            self.out["steps"], self.out["epochs"], self.checkpoints, model_cfg={"step": self.params},
            objective=objective, save=save, select=select, extra_csv=self.out.get("extra"))


def _sizes(params_before, after):
    return {"params_before": params_before, "params_after": count_parameters(after)["total"]}


def factorize_embeddings(ctx):
    from ..methods.factorize import factorize_embeddings

    model = ctx.load_parent()
    before = count_parameters(model)["total"]
    table = model.get_input_embeddings().weight.detach().clone()
    factorize_embeddings(model, ctx.settings["rank"])
    record_op(model, "factorize_embeddings", rank=ctx.settings["rank"])
    with torch.no_grad():
        err = (model.get_input_embeddings().weight - table).norm() / table.norm()
    ctx.save(model, {"relative_error": float(err), **_sizes(before, model)})


def low_rank(ctx):
    from ..methods.factorize import choose_ranks, factorize_linears

    s = ctx.settings  # exactly one of energy and ratio (checked with the recipe)
    model = ctx.load_parent()
    before = count_parameters(model)["total"]
    ranks = choose_ranks(model, energy=s.get("energy"), ratio=s.get("ratio"))
    factorize_linears(model, ranks)
    record_op(model, "low_rank", ranks=ranks)
    ctx.save(model, {"ranks": ranks, **_sizes(before, model)})


def share_layers(ctx):
    from ..methods.sharing import share_layers

    model = ctx.load_parent()
    before = count_parameters(model)["total"]
    share_layers(model, ctx.settings["groups"])
    record_op(model, "share_layers", groups=ctx.settings["groups"])
    ctx.save(model, _sizes(before, model))


def finetune(ctx):
    model = ctx.load_parent()
    rows = ctx.train(model)
    ctx.write_report({"epochs": rows})


def distill(ctx):
    from ..methods.distill import (
        Distillation,
        IntermediateDistillation,
        TeacherLogits,
        build_student,
        check_budget,
        uniform_layer_map,
    )

    s = ctx.settings
    parent = ctx.load_parent()
    student = build_student(parent, s["student"], ctx.labels, ctx.seed)
    budget_key = f"{ctx.key}.distill.budget" if "budget" in s else "compress.student_budget"
    n = check_budget(student, s.get("budget", ctx.student_budget), budget_key)
    alpha, temperature = s["alpha"], s["temperature"]
    inter = s.get("intermediate")
    if inter:
        teacher = load_variant(ctx.teacher_model)
        layer_map = uniform_layer_map(student.config.num_hidden_layers, teacher.config.num_hidden_layers)
        # `inter` carries every declared field of distill.intermediate (shrink.methods.registry.INTERMEDIATE)
        objective = IntermediateDistillation(student, teacher, layer_map, alpha, temperature, inter["hidden_weight"],
                                             inter["attention_weight"], seed=ctx.seed, attention=inter["attention"])
    else:
        objective = Distillation(student, alpha, temperature, cache=TeacherLogits.load(ctx.teacher_logits))
    print(f"student: {n:,} parameters ({student.config.num_hidden_layers} layers)", flush=True)
    rows = ctx.train(student, objective)
    ctx.write_report({"student_params": n, "epochs": rows})


def calibration_batches(ctx, n, batch_size=16):
    """`n` train sentences chosen with the seed, padded in batches: the calibration set of a pruning step."""
    from ..core.batching import Padder

    g = torch.Generator().manual_seed(ctx.seed)
    train = ctx.dd["train"]
    idx = torch.randperm(len(train), generator=g)[:n].tolist()
    pad = Padder(ctx.tok)
    batches = []
    for lo in range(0, len(idx), batch_size):
        b = pad(train, idx[lo: lo + batch_size])
        b.pop("labels", None)
        batches.append(b)
    return batches


def prune(ctx):
    from ..methods.sparsegpt import prune_encoder

    s = ctx.settings
    method = s["method"]
    model = ctx.load_parent().eval()
    batches = calibration_batches(ctx, s["calibration_sentences"])
    t0 = time.perf_counter()
    report = prune_encoder(model, batches, method=method, sparsity=s["sparsity"], pattern=s["pattern"],
                          blocksize=s["blocksize"], percdamp=s["percdamp"], mask_selection=s["mask_selection"])
    seconds = time.perf_counter() - t0
    print(f"{method}: pruned in {seconds:.1f} s", flush=True)
    ctx.save(model, {"seconds": seconds, "layers": report})


def gate_heads(ctx):
    from ..methods.attention_heads import heads_kept
    from ..methods.distill import TeacherLogits
    from ..methods.gate_training import HeadGateObjective

    s = ctx.settings
    model = ctx.load_parent()
    if any(op["op"] == "prune_heads" for op in getattr(model.config, "shrink_ops", None) or []):
        raise ConfigError(f"{ctx.key}.gate_heads", "gate an unpruned model: its parent already had heads removed")
    cache = TeacherLogits.load(ctx.teacher_logits) if s["loss"] == "distill" else None
    objective = HeadGateObjective(model, s["lambda"], s["init_open"], s["gate_lr"], s["freeze"], cache, s["alpha"],
                                  s["temperature"])
    torch.manual_seed(ctx.seed)
    rows = ctx.train(model, objective, export=objective.export, select=s["select"])
    keep = heads_kept(objective.gates)
    total = objective.gates.log_alpha.numel()
    kept = sum(map(len, keep.values()))
    print(f"heads kept: {kept} of {total}: {keep}", flush=True)
    ctx.write_report({"heads_total": total, "heads_kept": kept, "keep": keep, "epochs": rows,
                      "params_pruned": count_parameters(objective.export(model))["total"]})


def quantize(ctx):
    from ..methods.quantize import quantize_int8

    model = quantize_int8(ctx.load_parent().eval())
    record_op(model, "quantize_int8")
    ctx.save(model, {})


def feature_based(ctx):
    from ..methods.feature_based import FeatureTagger

    s = ctx.settings
    tagger = FeatureTagger.wrap(ctx.load_parent(), s["layers"], s["head"], s["head_hidden"])
    rows = ctx.train(tagger)
    ctx.write_report({"epochs": rows})


STEPS = {f.__name__: f for f in (factorize_embeddings, low_rank, share_layers, finetune, distill, prune,
                                 gate_heads, quantize, feature_based)}


def supported_methods(ctx):
    """The architecture-dependent methods the step runs: its own, and TinyBERT's score loss if it uses it."""
    methods = [ctx.method]
    inter = ctx.settings.get("intermediate") if ctx.method == "distill" else None
    if inter and inter.get("attention_weight") and inter.get("attention") == "scores":
        methods.append("distill:attention_scores")
    return methods


def check_architecture(ctx):
    """Fail at step start, naming the recipe key, the method and the model type, when the parent's family
    does not support the method (shrink.methods.architectures.check_supported)."""
    from transformers import AutoConfig

    from ..core.encoders import resolve_source
    from ..methods.architectures import UnsupportedArchitecture, check_supported

    source = ctx.parent if ctx.parent is not None else resolve_source(ctx.teacher)[0]
    try:
        kind = "bert" if source is None else AutoConfig.from_pretrained(source).model_type  # tiny: a BERT
    except OSError:  # config not readable here (offline hub name): loading the parent will say why
        return
    for method in supported_methods(ctx):
        try:
            check_supported(method, kind)
        except UnsupportedArchitecture as e:
            raise ConfigError(ctx.key, str(e)) from None


def run_step(ctx):
    t0 = time.perf_counter()
    check_architecture(ctx)
    STEPS[ctx.method](ctx)
    print(f"{ctx.method}: done in {time.perf_counter() - t0:.1f} s", flush=True)


def cache_teacher_logits(model_dir, data_dir, out_path, batch_size=64):
    from ..core.atomic import atomic_path
    from ..methods.distill import TeacherLogits
    from .evaluate import load_tokenized

    dd, tok, _ = load_tokenized(data_dir)
    cache = TeacherLogits.compute(load_variant(model_dir), dd["train"], tok, batch_size)
    with atomic_path(out_path) as tmp:
        cache.save(tmp)
    print(f"teacher logits: {tuple(cache.flat.shape)} for {len(dd['train'])} train sentences", flush=True)
