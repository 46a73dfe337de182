"""The four language-model architectures of shrink.lm.models: shapes, causality, parameter budgets,
generation, settings errors and a training sanity check. Tiny models only: the file runs in seconds."""

import math

import pytest
import torch
import torch.nn.functional as F

from shrink.core.errors import ConfigError, ShrinkError
from shrink.lm.models import ARCHS, build, count_params, fit_width

VOCAB, BLOCK, WIDTH = 64, 32, 16
TINY = {
    "transformer": {"n_layer": 2, "n_head": 2},
    "gru": {"n_layer": 2},
    "bdh": {"n_layer": 2, "n_head": 2, "mlp_multiplier": 4},
    "reflex": {"n_layer": 3, "n_head": 2},
}
# every architecture, plus reflex attending to only the most recent earlier layer
VARIANTS = [(arch, {}) for arch in ARCHS] + [("reflex", {"sources": 1})]


def tiny(arch, seed=0, **overrides):
    torch.manual_seed(seed)
    return build(arch, VOCAB, BLOCK, WIDTH, {**TINY[arch], **overrides}).eval()


def tokens(seed=0, batch=2, length=16):
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_gives_logits_per_position_and_starts_near_uniform(arch):
    model = tiny(arch)
    idx = tokens()
    with torch.no_grad():
        logits = model(idx)
    assert logits.shape == (2, 16, VOCAB) and logits.dtype == torch.float32
    assert model.vocab_size == VOCAB and model.block_size == BLOCK
    # nanoGPT-style init: small tied embeddings, so the loss on random targets starts near ln(vocab)
    loss = F.cross_entropy(logits.reshape(-1, VOCAB), tokens(seed=1).reshape(-1))
    assert abs(loss.item() - math.log(VOCAB)) < 0.2


@pytest.mark.parametrize("arch,extra", VARIANTS)
def test_logits_depend_only_on_the_past(arch, extra):
    model, t = tiny(arch, **extra), 7
    idx = tokens()
    future_changed = idx.clone()
    future_changed[:, t + 1:] = (idx[:, t + 1:] + 1 + tokens(seed=2)[:, t + 1:] % (VOCAB - 1)) % VOCAB
    present_changed = idx.clone()
    present_changed[:, t] = (idx[:, t] + 1) % VOCAB
    with torch.no_grad():
        base, future, present = model(idx), model(future_changed), model(present_changed)
    assert torch.allclose(base[:, :t + 1], future[:, :t + 1], atol=1e-5)
    assert not torch.allclose(base[:, t + 1:], future[:, t + 1:], atol=1e-4)  # the change did reach the model
    assert torch.allclose(base[:, :t], present[:, :t], atol=1e-5)
    # a token does influence the positions after it (the mask is not hiding everything)
    assert (base[:, t + 1:] - present[:, t + 1:]).abs().max() > 1e-4


BUDGET_SETTINGS = {
    "transformer": {"n_layer": 2, "n_head": 2},
    "gru": {"n_layer": 2},
    "bdh": {"n_layer": 2, "n_head": 2, "mlp_multiplier": 8},
    "reflex": {"n_layer": 2, "n_head": 2},
}


def _unique_storage_count(model):
    """Parameters counted by storage, so a tensor shared under two names is counted once."""
    return sum(p.numel() for p in {p.data_ptr(): p for _, p in model.named_parameters(remove_duplicate=False)}.values())


@pytest.mark.parametrize("arch", ARCHS)
def test_fit_width_lands_near_the_budget_and_is_the_closest_width(arch):
    budget, vocab, settings = 200_000, 512, BUDGET_SETTINGS[arch]
    width = fit_width(arch, vocab, 64, budget, settings)
    torch.manual_seed(5)
    before = torch.rand(3)
    torch.manual_seed(5)
    assert width == fit_width(arch, vocab, 64, float(budget), settings)  # deterministic
    assert torch.equal(torch.rand(3), before)  # and leaves the caller's random state alone
    step = 2 * settings.get("n_head", 1)
    assert width % step == 0
    model = build(arch, vocab, 64, width, settings)
    n = count_params(model)
    assert n == _unique_storage_count(model)
    assert abs(n - budget) <= 0.1 * budget
    for neighbour in (width - step, width + step):
        assert abs(count_params(build(arch, vocab, 64, neighbour, settings)) - budget) >= abs(n - budget)
    # the head is tied: only one parameter tensor has a vocabulary-sized dimension
    assert sum(vocab in p.shape for p in model.parameters()) == 1


def test_count_params_counts_a_tied_weight_once():
    emb, head = torch.nn.Embedding(10, 4), torch.nn.Linear(4, 10, bias=False)
    head.weight = emb.weight
    assert count_params(torch.nn.ModuleList([emb, head])) == 40


def test_bdh_shares_one_set_of_weights_across_layers():
    counts = {count_params(build("bdh", VOCAB, BLOCK, WIDTH, {"n_layer": n, "n_head": 2})) for n in (1, 6)}
    assert len(counts) == 1


def test_bdh_attention_is_strictly_causal():
    # position 0 has no earlier token to attend to: its attention output is 0, so each layer only
    # re-normalises it (v = LN(v + 0)) and its logits come from the tied embedding alone
    model, idx = tiny("bdh"), tokens()

    def attention_free(token):  # LN once for the input, once per layer (2 layers)
        v = model.embed.weight[token]
        for _ in range(3):
            v = F.layer_norm(v, (WIDTH,))
        return F.linear(v, model.embed.weight)

    with torch.no_grad():
        logits = model(idx)
        assert torch.allclose(logits[:, 0], attention_free(idx[:, 0]), atol=1e-5)
        assert not torch.allclose(logits[:, 1], attention_free(idx[:, 1]), atol=1e-3)  # position 1 attends to 0


@pytest.mark.parametrize("arch", ARCHS)
def test_generate_shape_and_seeded_determinism(arch):
    model, prompt = tiny(arch), tokens(length=5)

    def sample(seed, new=20):
        return model.generate(prompt, new, generator=torch.Generator().manual_seed(seed))

    out = sample(0)
    assert out.shape == (2, 25) and out.dtype == torch.long
    assert torch.equal(out[:, :5], prompt) and int(out.max()) < VOCAB
    assert torch.equal(out, sample(0))
    assert not torch.equal(out, sample(1))  # the generator drives sampling (near-uniform model, 40 draws)
    long = model.generate(tokens(length=BLOCK), 3, top_k=5, generator=torch.Generator().manual_seed(0))
    assert long.shape == (2, BLOCK + 3)  # past block_size the context is cropped (GRU: carried state)


def test_gru_incremental_generation_matches_full_recomputation():
    model, prompt = tiny("gru", seed=3), tokens(length=4)
    out = model.generate(prompt, 12, top_k=1)
    ref = prompt
    with torch.no_grad():
        for _ in range(12):  # greedy decoding re-running the whole sequence each step
            ref = torch.cat([ref, model(ref)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, ref)
    assert len(set(out[0, 4:].tolist())) > 1  # not a degenerate constant continuation


def test_sequence_length_limits():
    with pytest.raises(ShrinkError, match="block_size"):
        tiny("transformer")(tokens(length=BLOCK + 1))
    assert tiny("gru")(tokens(length=BLOCK + 8)).shape == (2, BLOCK + 8, VOCAB)  # a GRU has no limit


def test_reflex_is_the_transformer_plus_attention_to_earlier_layers():
    plain = tiny("transformer", n_layer=3)
    idx = tokens()

    def reflex(sources):
        model = tiny("reflex", sources=sources)
        model.load_state_dict(plain.state_dict())  # same parameters: only the attention pattern differs
        with torch.no_grad():
            return model(idx)

    with torch.no_grad():
        expected = plain(idx)
    assert torch.allclose(reflex(0), expected, atol=1e-5)
    everything, recent = reflex(None), reflex(1)
    assert not torch.allclose(everything, expected, atol=1e-4)
    assert not torch.allclose(everything, recent, atol=1e-4)  # layer 2 also reads h0 only when sources=None


@pytest.mark.parametrize("arch", ARCHS)
def test_bad_settings_raise_config_errors_naming_the_key(arch):
    with pytest.raises(ConfigError, match=rf"lm\.archs\.{arch}\.n_layers"):
        build(arch, VOCAB, BLOCK, WIDTH, {**TINY[arch], "n_layers": 2})
    with pytest.raises(ConfigError, match=rf"lm\.archs\.{arch}\.n_layers"):
        fit_width(arch, VOCAB, BLOCK, 10_000, {"n_layers": 2})
    with pytest.raises(ConfigError, match=rf"lm\.archs\.{arch}\.dropout"):
        build(arch, VOCAB, BLOCK, WIDTH, {**TINY[arch], "dropout": 1.5})


def test_bad_values_and_widths_are_rejected():
    with pytest.raises(ConfigError, match=r"lm\.archs\.transformer\.n_head"):
        build("transformer", VOCAB, BLOCK, WIDTH, {"n_head": 0})
    with pytest.raises(ConfigError, match=r"lm\.archs\.bdh\.n_head"):
        build("bdh", VOCAB, BLOCK, 12, {"n_head": 4})  # 12 is not a multiple of 2 * 4
    with pytest.raises(ConfigError, match=r"lm\.archs\.reflex\.sources"):
        build("reflex", VOCAB, BLOCK, WIDTH, {"sources": -1})
    with pytest.raises(ConfigError, match="lstm"):
        build("lstm", VOCAB, BLOCK, WIDTH, {})


@pytest.mark.parametrize("arch", ARCHS)
def test_a_few_training_steps_learn_a_repeated_sequence(arch):
    model = tiny(arch).train()
    seq = torch.arange(8).repeat(5)[:BLOCK + 1].expand(2, -1)  # 0..7 repeated: next token is predictable
    x, y = seq[:, :-1], seq[:, 1:]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
