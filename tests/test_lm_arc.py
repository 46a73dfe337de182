"""ARC-Easy multiple choice: loader, option scoring, accuracy intervals and fine-tuning (stub models)."""

import json
import os
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_lm_sorting import TinyGRU

from conftest import missing_corpus
from shrink.core.errors import ConfigError, DataError
from shrink.lm.arc import (
    MCSettings,
    accuracy_with_ci,
    choose,
    evaluate_mc,
    finetune_mc,
    format_option,
    format_prompt,
    length_baselines,
    load_arc,
    option_logprobs,
    sample_items,
)

ARC_DIR = Path(os.environ.get("ARC_EASY_DIR", Path(__file__).resolve().parents[2] / "shared/data/arc_easy"))


def char_encode(text):
    return [ord(c) % 96 for c in text]


def record(question, texts, labels, key, id_="q"):
    return dict(id=id_, question=question, choices=dict(text=texts, label=labels), answerKey=key)


def write(tmp_path, records):
    path = tmp_path / "arc.json"
    path.write_text(json.dumps(records))
    return path


def test_loader_normalises_labels_and_choice_counts(tmp_path):
    path = write(tmp_path, [
        record("Which is hot?", ["ice", "fire", "snow", "rain"], ["A", "B", "C", "D"], "B", "letters"),
        record("Which is wet?", ["sand", "rock", "water", "dust"], ["1", "2", "3", "4"], "3", "digits"),
        record("Three?", ["x", "y", "z"], ["A", "B", "C"], "C", "three"),
        record("Five?", ["a", "b", "c", "d", "e"], ["A", "B", "C", "D", "E"], "E", "five"),
    ])
    items = load_arc(path)
    assert [it["id"] for it in items] == ["letters", "digits", "three", "five"]
    assert [it["answer"] for it in items] == [1, 2, 2, 4]
    assert [len(it["choices"]) for it in items] == [4, 4, 3, 5]
    assert items[1]["choices"][items[1]["answer"]] == "water"
    assert format_prompt(items[0]) == "Question: Which is hot?\nAnswer:"
    assert format_option("fire") == " fire"


def test_loader_names_the_item_with_a_bad_answer_key(tmp_path):
    good = record("Q?", ["a", "b", "c", "d"], ["A", "B", "C", "D"], "A")
    bad = record("Q?", ["a", "b", "c", "d"], ["1", "2", "3", "4"], "E", "bad")
    with pytest.raises(DataError, match=r"arc\.json:item 2: answerKey 'E' is not among"):
        load_arc(write(tmp_path, [good, good, bad]))
    with pytest.raises(DataError, match="item 0: missing field 'answerKey'"):
        load_arc(write(tmp_path, [{"question": "Q?", "choices": {"text": ["a"], "label": ["A"]}}]))


def hand_logprob(model, prompt, option, block_size):
    """Straightforward one-sequence version: crop the prompt from the left, sum the option's log-probs."""
    context = prompt[-(block_size + 1 - len(option)):]
    seq = torch.tensor([context + option])
    logp = F.log_softmax(model(seq[:, :-1]), -1)[0]
    return sum(logp[len(context) - 1 + j, tok].item() for j, tok in enumerate(option))


@pytest.mark.parametrize("block_size", [64, 24, 8])  # 24 crops the prompt; 8 also crops the longest option
def test_option_logprobs_match_a_hand_computation(block_size):
    items = [dict(id="a", question="Why is the sky blue?", choices=["light", "scattering of light", "no"], answer=1),
             dict(id="b", question="2+2?", choices=["4", "five", "22", "a fish", "x"], answer=0)]
    model = TinyGRU(96, block_size).eval()
    sums, counts = option_logprobs(model, char_encode, items, batch_size=3)
    assert [len(row) for row in sums] == [len(row) for row in counts] == [3, 5]
    for item, s_row, c_row in zip(items, sums, counts):
        prompt = char_encode(format_prompt(item))
        for choice, s, c in zip(item["choices"], s_row, c_row):
            option = char_encode(format_option(choice))[:block_size]  # an option longer than the context keeps its start
            assert c == len(option)
            assert s == pytest.approx(hand_logprob(model, prompt, option, block_size), abs=1e-4)
    sums1, counts1 = option_logprobs(model, char_encode, items, batch_size=1)  # batching changes nothing
    assert counts1 == counts
    for a, b in zip(sums1, sums):
        assert a == pytest.approx(b, abs=1e-4)


def test_choose_sum_versus_length_normalised():
    sums, counts = [[-4.0, -6.0]], [[1, 6]]
    assert choose(sums, counts, normalise=False) == [0]
    assert choose(sums, counts, normalise=True) == [1]


def test_wilson_interval_known_values():
    r = accuracy_with_ci([True] * 25 + [False] * 75, [4] * 100)
    assert r["accuracy"] == 0.25 and r["n"] == 100 and r["chance"] == 0.25
    assert r["ci_low"] == pytest.approx(0.1754, abs=1e-4) and r["ci_high"] == pytest.approx(0.3430, abs=1e-4)
    assert not r["above_chance"]
    r = accuracy_with_ci([True] * 40 + [False] * 60, [4] * 100)
    assert r["ci_low"] == pytest.approx(0.3094, abs=1e-4) and r["above_chance"]
    r = accuracy_with_ci([False] * 10, [4] * 10)
    assert r["ci_low"] == 0.0 and r["ci_high"] == pytest.approx(0.2775, abs=1e-4)
    # chance is the mean of 1/k over the items, so 3- and 5-choice items count as what they are
    r = accuracy_with_ci([True, False, True], [3, 4, 5])
    assert r["chance"] == pytest.approx((1 / 3 + 1 / 4 + 1 / 5) / 3)


def toy_mc(n, seed):
    """Question word -> its answer word; choices are the four answer words in a random order."""
    rng = random.Random(seed)
    pairs = {"red": "apple", "blue": "sky", "green": "grass", "white": "snow"}
    items = []
    for i in range(n):
        q = rng.choice(sorted(pairs))
        choices = sorted(pairs.values())
        rng.shuffle(choices)
        items.append(dict(id=str(i), question=q, choices=choices, answer=choices.index(pairs[q])))
    return items


WORDS = ["Question:", "Answer:", "red", "blue", "green", "white", "apple", "sky", "grass", "snow"]


def word_encode(text):
    return [WORDS.index(w) for w in text.split()]


def test_finetune_learns_a_toy_ranking_and_keeps_the_best_state():
    train, val = toy_mc(64, 0), toy_mc(32, 1)
    settings = dict(steps=60, batch_size=8, lr=2e-2, eval_every=20, log_every=10, seed=0)
    model = TinyGRU(len(WORDS), 16)
    before = evaluate_mc(model, word_encode, val)["accuracy"]
    rows, best = finetune_mc(model, word_encode, train, val, settings, progress=False)
    assert rows[0]["step"] == 0 and rows[0]["val_accuracy"] == before
    assert [r["step"] for r in rows if r["val_accuracy"] is not None] == [0, 20, 40, 60]
    assert best >= 0.9 > before
    assert best == max(r["val_accuracy"] for r in rows if r["val_accuracy"] is not None)
    after = evaluate_mc(model, word_encode, val)
    assert after["accuracy"] == best and after["above_chance"]  # the model holds its best-validation state
    # same seed, same run
    rows2, best2 = finetune_mc(TinyGRU(len(WORDS), 16), word_encode, train, val, settings, progress=False)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(rows2) == strip(rows) and best2 == best


def test_finetune_that_only_hurts_leaves_the_model_unchanged():
    # training labels point at the wrong answer, so validation accuracy falls below the untuned model's
    train = [dict(it, answer=(it["answer"] + 1) % 4) for it in toy_mc(64, 0)]
    val = toy_mc(32, 1)
    model = TinyGRU(len(WORDS), 16)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    rows, best = finetune_mc(model, word_encode, train, val, dict(steps=40, batch_size=8, lr=2e-2, eval_every=20),
                             progress=False)
    vals = [r["val_accuracy"] for r in rows if r["val_accuracy"] is not None]
    assert max(vals[1:]) < vals[0] == best
    assert all(torch.equal(v, initial[k]) for k, v in model.state_dict().items())


def test_length_baselines_pick_by_characters():
    items = [dict(choices=["a", "bbb", "cc"], answer=0), dict(choices=["aaaa", "b", "cc"], answer=0),
             dict(choices=["xx", "y", "zzz", "w", "vvvvv"], answer=4)]  # a 5-choice item; "y" wins the tie
    out = length_baselines(items)
    assert out["shortest"]["accuracy"] == pytest.approx(1 / 3) and out["longest"]["accuracy"] == pytest.approx(2 / 3)
    assert out["shortest"]["chance"] == pytest.approx((1 / 3 + 1 / 3 + 1 / 5) / 3)


def test_sample_items_is_seeded_ordered_and_never_pads():
    items = [dict(id=str(i)) for i in range(50)]
    a, b, c = sample_items(items, 10, 0), sample_items(items, 10, 0), sample_items(items, 10, 1)
    assert a == b and a != c and len(a) == 10 and len({it["id"] for it in a}) == 10
    ids = [int(it["id"]) for it in a]
    assert ids == sorted(ids) and ids != list(range(10))  # original order kept, not simply the first 10
    assert sample_items(items, 80, 0) == items


def test_mc_settings_reject_unknown_keys():
    with pytest.raises(ConfigError, match="lm.arc.epochs"):
        MCSettings.from_dict({"epochs": 3})


def test_real_arc_files_load():
    if not ARC_DIR.is_dir():
        missing_corpus("ARC-Easy is not in ARC_EASY_DIR or ../shared/data")
    for split in ("train", "validation", "test"):
        items = load_arc(ARC_DIR / f"ARC-Easy-{split}.json")
        assert len(items) > 500
        assert {len(it["choices"]) for it in items} <= {3, 4, 5}
        assert all(0 <= it["answer"] < len(it["choices"]) for it in items)
