"""Knowledge distillation: the loss against a hand computation, the T^2 gradient scale, the teacher-logit
cache, intermediate-layer losses and student construction."""

import copy
import math

import pytest
import torch

from shrink.core.errors import ConfigError
from shrink.methods.distill import (
    Distillation,
    IntermediateDistillation,
    QueryKeyRecorder,
    TeacherLogits,
    build_student,
    check_budget,
    kd_loss,
    uniform_layer_map,
)

torch.set_num_threads(1)


def test_kd_loss_equals_a_hand_computed_value():
    s = torch.tensor([[[1.0, 0.0, -1.0], [0.5, 0.5, 0.0], [9.0, 9.0, 9.0]]])
    t = torch.tensor([[[0.0, 1.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    labels = torch.tensor([[0, -100, -100]])
    mask = torch.tensor([[1, 1, 0]])  # the third position is padding
    T, alpha = 2.0, 0.3

    def softmax(v):
        e = [math.exp(x / T) for x in v]
        return [x / sum(e) for x in e]

    kl = 0.0
    for i in range(2):  # real tokens only, averaged over them (batchmean on the flattened tokens)
        p, q = softmax(t[0, i].tolist()), softmax(s[0, i].tolist())
        kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    soft = kl / 2 * T * T
    z = s[0, 0].tolist()
    hard = -(z[0] - math.log(sum(math.exp(x) for x in z)))  # CE on the only labelled token
    loss, parts = kd_loss(s, t, labels, mask, alpha=alpha, temperature=T)
    assert float(parts["kd"]) == pytest.approx(soft, rel=1e-5)
    assert float(parts["ce"]) == pytest.approx(hard, rel=1e-5)
    assert float(loss) == pytest.approx(alpha * hard + (1 - alpha) * soft, rel=1e-5)


def test_soft_gradient_keeps_its_scale_across_temperatures():
    """d(T^2 KL)/ds -> (s - t)/N for large T (the logit-matching limit), so the gradient does not vanish."""
    torch.manual_seed(0)
    t = torch.randn(1, 4, 6)
    s = torch.randn(1, 4, 6)
    s, t = s - s.mean(-1, keepdim=True), t - t.mean(-1, keepdim=True)  # zero-mean logits, as in Hinton's limit
    mask, labels = torch.ones(1, 4), torch.full((1, 4), -100)
    grads = {}
    for T in (10.0, 100.0, 1000.0):
        x = s.clone().requires_grad_(True)
        kd_loss(x, t, labels, mask, alpha=0.0, temperature=T)[0].backward()
        grads[T] = x.grad
    # per token, d(T^2 KL)/ds = T (softmax(s/T) - softmax(t/T)) -> (s - t) / C as T grows; batchmean adds 1/N
    limit = (s - t) / (4 * 6)
    assert torch.allclose(grads[1000.0], limit, rtol=0.01, atol=1e-5)
    # without the T^2 factor the gradient would shrink by 100x between T=10 and T=100; with it, it barely moves
    ratio = grads[10.0].norm() / grads[100.0].norm()
    assert 0.9 < float(ratio) < 1.1


def test_teacher_logit_cache_round_trip_and_padding(tmp_path, tiny_bert):
    from datasets import Dataset

    model = tiny_bert()
    rows = [[5, 6, 7], [8, 9], [10, 11, 12, 13]]
    ds = Dataset.from_dict({"input_ids": rows, "attention_mask": [[1] * len(r) for r in rows],
                            "labels": [[0] * len(r) for r in rows], "length": [len(r) for r in rows]})
    from transformers import BertTokenizerFast

    from shrink.core.encoders import minilm_path

    tok = BertTokenizerFast.from_pretrained(minilm_path())
    cache = TeacherLogits.compute(model, ds, tok, batch_size=2)
    assert cache.flat.shape == (9, 5)
    cache.save(tmp_path / "l.safetensors")
    again = TeacherLogits.load(tmp_path / "l.safetensors")
    batch = again.batch([2, 1], seq_len=4)
    with torch.no_grad():
        direct = model(input_ids=torch.tensor([rows[2]])).logits[0]
        direct1 = model(input_ids=torch.tensor([rows[1]])).logits[0]
    assert torch.allclose(batch[0], direct, atol=1e-5)
    assert torch.allclose(batch[1, :2], direct1, atol=1e-5) and batch[1, 2:].abs().sum() == 0


def test_distillation_objective_trains_only_the_student(tiny_bert, batch):
    teacher, student = tiny_bert(seed=1), tiny_bert(seed=2, layers=2)
    objective = Distillation(student, teacher=teacher)
    names = {n for n, _ in objective.named_parameters()}
    assert names and all(n.startswith("model.") for n in names)  # the teacher is not a submodule
    loss, parts = objective(batch(), [0, 1, 2])
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert set(parts) == {"ce", "kd"}


def test_intermediate_losses_vanish_for_a_copy_of_the_teacher(tiny_bert, batch):
    teacher = tiny_bert(seed=1)
    import copy

    student = copy.deepcopy(teacher)
    objective = IntermediateDistillation(student, teacher, uniform_layer_map(4, 4))
    with torch.no_grad():
        for proj in objective.project:  # identity projections: the student's states are the teacher's
            proj.weight.copy_(torch.eye(32))
    _, parts = objective(batch(), [0, 1, 2])
    assert float(parts["hidden"]) < 1e-10 and float(parts["attention"]) < 1e-12 and float(parts["kd"]) < 1e-6


@pytest.mark.parametrize("attention", ["scores", "probabilities"])
def test_intermediate_attention_loss_of_each_kind_vanishes_only_for_a_copy(tiny_bert, batch, attention):
    teacher = tiny_bert(seed=1)
    other = tiny_bert(seed=2)
    b = batch()
    losses = []
    for student in (copy.deepcopy(teacher), other):
        objective = IntermediateDistillation(student, teacher, uniform_layer_map(4, 4), attention=attention)
        losses.append(float(objective(b, [0, 1, 2])[1]["attention"]))
    assert losses[0] < 1e-12 < losses[1]


def test_recorded_scores_are_the_pre_softmax_attention(tiny_bert, batch):
    """The scores TinyBERT's loss compares, softmaxed over real keys, are the eager kernel's attention
    probabilities: the recorder reproduces the matrix the paper calls A, before the softmax."""
    model = tiny_bert(seed=3)
    model.set_attn_implementation("eager")
    b = batch()
    recorder = QueryKeyRecorder(model.bert.encoder.layer)
    try:
        out = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], output_attentions=True)
    finally:
        recorder.remove()
    keys = b["attention_mask"].bool()[:, None, None, :]
    for i, probs in enumerate(out.attentions):
        scores = recorder.scores(i)
        assert scores.shape == probs.shape
        mine = torch.softmax(scores.masked_fill(~keys, float("-inf")), -1)
        torch.testing.assert_close(mine, probs, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(scores.masked_fill(~keys, 0), probs.masked_fill(~keys, 0))  # not probabilities


def test_uniform_layer_map_is_tinyberts():
    assert uniform_layer_map(2, 6) == [0, 3, 6]
    assert uniform_layer_map(4, 12) == [0, 3, 6, 9, 12]


def test_student_from_parent_keeps_the_mapped_layers(tiny_bert, batch):
    parent = tiny_bert()
    student = build_student(parent, {"layers": 2}, list("abcde"), seed=0)
    assert student.config.num_hidden_layers == 2 and len(student.bert.encoder.layer) == 2
    # layers 2 and 4 (1-based) of the parent, i.e. indices 1 and 3
    for mine, theirs in zip(student.bert.encoder.layer, [parent.bert.encoder.layer[1], parent.bert.encoder.layer[3]]):
        assert torch.equal(mine.output.dense.weight, theirs.output.dense.weight)
        assert mine is not theirs
    with pytest.raises(ConfigError, match="student.hidden"):
        build_student(parent, {"hidden": 16}, list("abcde"), seed=0)


def test_random_student_shape_and_budget(tiny_bert):
    parent = tiny_bert()
    student = build_student(parent, {"init": "random", "hidden": 16, "layers": 1, "heads": 2, "ffn": 32,
                                     "embedding_rank": 4}, list("abcde"), seed=0)
    assert student.config.hidden_size == 16 and student.config.shrink_ops[0]["rank"] == 4
    n = check_budget(student, 10**6, "key")
    with pytest.raises(ConfigError, match="over the budget"):
        check_budget(student, n - 1, "compress.variants.kd.recipe[1].distill.budget")


def test_intermediate_projections_follow_the_seed_not_the_process_rng(tiny_bert):
    """torch's global RNG starts from a random state in every process: the TinyBERT projections must not
    depend on it (they did, and a fresh run of the same config trained a different student)."""
    teacher = tiny_bert(seed=1)

    def projections(global_seed, seed):
        torch.manual_seed(global_seed)
        objective = IntermediateDistillation(copy.deepcopy(teacher), teacher, uniform_layer_map(4, 4), seed=seed)
        return torch.cat([p.weight.flatten() for p in objective.project])

    same = projections(1, seed=3)
    assert torch.equal(same, projections(2, seed=3))
    assert not torch.equal(same, projections(1, seed=4))
    bound = 1 / math.sqrt(teacher.config.hidden_size)  # nn.Linear's default range
    assert same.abs().max() <= bound and same.std() > bound / 4
