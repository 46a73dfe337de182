"""Tests for shrink.core.batching: length-grouped batches."""

import random

import pytest
import torch

from shrink.core.batching import (
    length_grouped_batches,
    random_batches,
    sequential_batches,
)


def padding(batches, lengths):
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


def skewed_lengths(n=1000, seed=0):
    rng = random.Random(seed)
    # CoNLL-like: mostly short sentences, a long tail
    return [min(150, int(rng.lognormvariate(2.5, 0.8)) + 1) for _ in range(n)]


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("n, batch_size, mult", [(1000, 8, 50), (1000, 32, 3), (7, 3, 2), (1, 4, 50), (0, 4, 50)])
def test_every_index_exactly_once(n, batch_size, mult):
    lengths = skewed_lengths(n)
    batches = length_grouped_batches(lengths, batch_size, gen(0), megabatch_mult=mult)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(n))
    assert all(1 <= len(b) <= batch_size for b in batches)


def test_deterministic_for_seeded_generator():
    lengths = skewed_lengths()
    a = length_grouped_batches(lengths, 16, gen(123))
    b = length_grouped_batches(lengths, 16, gen(123))
    c = length_grouped_batches(lengths, 16, gen(124))
    assert a == b
    assert a != c


def test_batches_are_sorted_by_length_inside():
    lengths = skewed_lengths()
    for b in length_grouped_batches(lengths, 16, gen(5)):
        ls = [lengths[i] for i in b]
        assert ls == sorted(ls, reverse=True)


def test_less_padding_than_random_batches():
    lengths = skewed_lengths()
    grouped = length_grouped_batches(lengths, 16, gen(1))
    rand = random_batches(len(lengths), 16, gen(1))
    assert sorted(i for b in rand for i in b) == list(range(len(lengths)))
    pad_grouped, pad_random = padding(grouped, lengths), padding(rand, lengths)
    assert pad_random > 0
    assert pad_grouped < pad_random / 3  # grouping removes most of the padding


def test_padding_helper_on_hand_case():
    assert padding([[0, 1], [2]], [3, 5, 4]) == (5 * 2 - 8) + 0


def test_batches_are_shuffled_not_a_length_curriculum():
    lengths = list(range(1, 2001))  # strictly increasing
    batches = length_grouped_batches(lengths, 10, gen(2), megabatch_mult=5)
    maxes = [max(lengths[i] for i in b) for b in batches]
    assert maxes != sorted(maxes) and maxes != sorted(maxes, reverse=True)


def test_sequential_batches():
    lengths = [3, 9, 1, 7, 5]
    assert sequential_batches(lengths, 2) == [[1, 3], [4, 0], [2]]
    assert sequential_batches(lengths, 2, sort=False) == [[0, 1], [2, 3], [4]]


def test_token_budget_batches_cover_everything_within_budget():
    import random

    import torch

    from shrink.core.batching import token_budget_batches

    rng = random.Random(0)
    lengths = [rng.choice([3, 5, 8, 20, 45, 110]) for _ in range(3000)]
    batches = token_budget_batches(lengths, 640, torch.Generator().manual_seed(3))
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(lengths)))
    assert all(max(lengths[i] for i in b) * len(b) <= 640 for b in batches)
    # short sentences share a batch with many others, long ones with few: real tokens per step even out
    real = sorted(sum(lengths[i] for i in b) for b in batches)
    assert real[len(real) // 10] > 0.6 * 640
    again = token_budget_batches(lengths, 640, torch.Generator().manual_seed(3))
    assert again == batches


def test_token_budget_smaller_than_a_sentence_is_a_config_error():
    import pytest

    from shrink.core.errors import ConfigError
    from shrink.ner.train import TrainConfig, epoch_batches

    with pytest.raises(ConfigError, match="train.batch_tokens"):
        epoch_batches(TrainConfig(batch_tokens=16), [10, 30, 12], 1)
