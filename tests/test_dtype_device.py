"""Every training objective and compression method follows the model's dtype and device.

A model is moved with `.to(...)`; anything an objective or method holds or creates outside the module
tree (a live teacher, a fresh student, a cached-logit tensor, a loss computed in a fixed dtype) silently
stays behind. Here the model is float64, a dtype nothing in the project defaults to: every parameter and
buffer must be float64 afterwards, and every matrix product, normalisation, softmax and loss computed
during a training step (forward and backward) must take float64 inputs only. A float32 tensor anywhere in
that path (the TinyBERT teacher left behind, issue 16) shows up as a float32 op. The device half uses the
`meta` device, the one non-CPU device every machine has.
"""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from shrink.methods.distill import (
    Distillation,
    IntermediateDistillation,
    TeacherLogits,
    build_student,
    uniform_layer_map,
)
from shrink.methods.factorize import choose_ranks, factorize_embeddings, factorize_linears
from shrink.methods.feature_based import FeatureTagger
from shrink.methods.gate_training import HeadGateObjective
from shrink.methods.sharing import share_layers
from shrink.methods.sparsegpt import prune_encoder
from shrink.ner.train import TaskLoss

torch.set_num_threads(1)
DTYPE = torch.float64
# ops whose inputs carry the model's numbers (not index, shape or conversion ops)
COMPUTE_OPS = ("mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "_softmax", "_log_softmax",
               "native_layer_norm", "mse_loss", "nll_loss_forward", "nll_loss2d_forward", "kl_div",
               "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_attention_math",
               "gelu", "tanh", "sigmoid", "_thnn_fused_lstm_cell", "lstm", "mkldnn_rnn_layer")


class ComputeDtypes(TorchDispatchMode):
    """Records (op, dtype) for every floating tensor that enters a compute op."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in COMPUTE_OPS or name.startswith("_scaled_dot_product"):
            for a in list(args) + list((kwargs or {}).values()):
                for t in a if isinstance(a, (list, tuple)) else [a]:
                    if isinstance(t, torch.Tensor) and t.is_floating_point():
                        self.seen.append((name, t.dtype))
        return func(*args, **(kwargs or {}))


def assert_step_in_dtype(objective, batch, indices=(0, 1, 2)):
    """One forward and backward of `objective`; every compute op must see DTYPE only."""
    with ComputeDtypes() as probe:
        loss, _ = objective(batch, list(indices))
        loss.backward()
    assert probe.seen, "no compute op recorded: the probe is not looking at the step"
    wrong = sorted({(op, str(dt)) for op, dt in probe.seen if dt != DTYPE})
    assert not wrong, f"ops computed outside {DTYPE}: {wrong}"
    assert loss.dtype == DTYPE


def assert_module_in_dtype(*modules):
    for m in modules:
        for name, t in list(m.named_parameters()) + list(m.named_buffers()):
            if t.is_floating_point():
                assert t.dtype == DTYPE, f"{type(m).__name__}.{name} is {t.dtype}"


def cached_logits(model, batch):
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.float()
    lengths = batch["attention_mask"].sum(1).tolist()
    rows = [logits[i, :n] for i, n in enumerate(lengths)]
    return TeacherLogits(torch.cat(rows), torch.tensor([0] + lengths).cumsum(0))  # stored float32, as on disk


@pytest.fixture
def parts(tiny_bert, batch):
    teacher = tiny_bert(seed=1)
    return teacher, batch()


def objectives(teacher, b):
    """name -> (objective built on a float32 model, the modules it must keep in step)."""
    import copy

    cache = cached_logits(teacher, b)
    student = copy.deepcopy(teacher)
    out = {
        "task": TaskLoss(copy.deepcopy(teacher)),
        "kd_cached": Distillation(copy.deepcopy(teacher), cache=cache),
        "kd_live": Distillation(copy.deepcopy(teacher), teacher=copy.deepcopy(teacher)),
        "gates_task": HeadGateObjective(copy.deepcopy(teacher), lam=0.1),
        "gates_distill": HeadGateObjective(copy.deepcopy(teacher), lam=0.1, cache=cache),
        "feature_based": TaskLoss(FeatureTagger.wrap(copy.deepcopy(teacher), layers=2, head="bilstm",
                                                      head_hidden=8)),
    }
    small = build_student(student, {"layers": 2}, labels=list(range(5)), seed=0)
    layer_map = uniform_layer_map(2, teacher.config.num_hidden_layers)
    for mode in ("scores", "probabilities"):
        out[f"tinybert_{mode}"] = IntermediateDistillation(copy.deepcopy(small), copy.deepcopy(teacher), layer_map,
                                                           attention=mode)
    return out


OBJECTIVES = ("task", "kd_cached", "kd_live", "gates_task", "gates_distill", "feature_based", "tinybert_scores",
              "tinybert_probabilities")


@pytest.mark.parametrize("name", OBJECTIVES)
def test_objective_trains_in_the_model_dtype(parts, name):
    teacher, b = parts
    objective = objectives(teacher, b)[name].to(DTYPE)
    assert_module_in_dtype(objective, *[t for t in [getattr(objective, "teacher", None)] if t is not None])
    assert_step_in_dtype(objective, b)


@pytest.mark.parametrize("name", ("kd_live", "tinybert_scores"))
def test_live_teacher_follows_the_device(parts, name):
    teacher, b = parts
    objective = objectives(teacher, b)[name].to("meta")
    tensors = list(objective.parameters()) + list(objective.teacher.parameters())
    assert tensors and all(t.device.type == "meta" for t in tensors)


def test_probe_catches_a_teacher_left_behind(parts):
    """The check above can fail: a live teacher kept in float32 is reported as float32 ops."""
    teacher, b = parts
    objective = objectives(teacher, b)["kd_live"]
    objective.model.to(DTYPE)  # the student alone moves, as before issue 16's fix
    with pytest.raises(AssertionError, match="float32"):
        assert_step_in_dtype(objective, b)


def double(model):
    return model.to(DTYPE)


def run_forward(model, b):
    with ComputeDtypes() as probe:
        model(**{k: v for k, v in b.items() if k != "labels"})
    wrong = sorted({(op, str(dt)) for op, dt in probe.seen if dt != DTYPE})
    assert probe.seen and not wrong, wrong


METHODS = {
    "factorize_embeddings": lambda m, b: factorize_embeddings(m, 8),
    "low_rank": lambda m, b: factorize_linears(m, choose_ranks(m, ratio=0.5)),
    "share_layers": lambda m, b: share_layers(m, 1),
    "prune_sparsegpt": lambda m, b: prune_encoder(m, [b], "sparsegpt", 0.5, blocksize=16),
    "prune_magnitude": lambda m, b: prune_encoder(m, [b], "magnitude", 0.5),
    "prune_wanda_2of4": lambda m, b: prune_encoder(m, [b], "wanda", 0.5, pattern="2:4"),
    "student_random": None,  # a fresh student built from a float64 parent
}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_keeps_the_model_dtype(tiny_bert, batch, name):
    model, b = double(tiny_bert(seed=2)), batch()
    if name == "student_random":
        model = build_student(model, {"init": "random", "layers": 1, "hidden": 16, "heads": 2, "ffn": 32},
                              labels=list(range(5)), seed=0)
    else:
        METHODS[name](model, b)
    assert_module_in_dtype(model)
    run_forward(model, b)
