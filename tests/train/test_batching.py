"""Batching: every example once per epoch, a seeded order that changes per epoch, little
padding, and exact padded tensors (hand-computed values; no model)."""
import random

import pytest

from emergent.train.batching import collate, epoch_batches, pack_step, padding_fraction, schedule

MODES = ["length_grouped", "shuffled"]


def lengths_of(n, seed=0):
    rng = random.Random(seed)
    return [rng.randint(5, 500) for _ in range(n)]


def flat(batches):
    return [i for b in batches for i in b]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n,batch_size,mega", [(1, 4, 64), (7, 3, 64), (100, 4, 64),
                                               (300, 4, 8), (257, 5, 2)])
def test_an_epoch_covers_every_example_exactly_once(mode, n, batch_size, mega):
    lengths = lengths_of(n)
    for epoch in (0, 1, 5):
        batches = epoch_batches(lengths, batch_size, seed=3, epoch=epoch, mode=mode, mega=mega)
        assert sorted(flat(batches)) == list(range(n))
        assert all(1 <= len(b) <= batch_size for b in batches)
        # only the last slice of each shuffled block / mega-chunk can be short
        chunk = n if mode == "shuffled" else batch_size * mega
        n_short = sum(len(b) < batch_size for b in batches)
        assert n_short <= -(-n // chunk)
        assert len(batches) == (-(-n // batch_size) if mode == "shuffled" else sum(
            -(-min(chunk, n - c) // batch_size) for c in range(0, n, chunk)))


@pytest.mark.parametrize("mode", MODES)
def test_order_is_seeded_and_reshuffled_every_epoch(mode):
    lengths = lengths_of(200)
    e0 = epoch_batches(lengths, 4, seed=0, epoch=0, mode=mode)
    assert epoch_batches(lengths, 4, seed=0, epoch=0, mode=mode) == e0  # a pure function
    e1 = epoch_batches(lengths, 4, seed=0, epoch=1, mode=mode)
    other_seed = epoch_batches(lengths, 4, seed=1, epoch=0, mode=mode)
    assert e1 != e0 and other_seed != e0
    # not just the same batches in another order: the examples are regrouped
    assert {tuple(sorted(b)) for b in e1} != {tuple(sorted(b)) for b in e0}
    assert {tuple(sorted(b)) for b in other_seed} != {tuple(sorted(b)) for b in e0}
    assert flat(e0) != list(range(200))  # shuffled, not file order


def test_shuffled_mode_is_consecutive_slices_of_a_permutation():
    lengths = lengths_of(50)
    batches = epoch_batches(lengths, 8, seed=2, epoch=0, mode="shuffled")
    assert [len(b) for b in batches] == [8] * 6 + [2]
    order = flat(batches)
    assert order != sorted(order) and sorted(order) == list(range(50))
    # no length grouping: far more padding than the length-grouped mode
    grouped = epoch_batches(lengths, 8, seed=2, epoch=0)
    pad = lambda bs: padding_fraction([[lengths[i] for i in b] for b in bs])  # noqa: E731
    assert pad(grouped) < pad(batches) / 3


def test_length_grouped_batches_hold_similar_lengths_in_a_shuffled_order():
    lengths = list(range(10, 266))  # distinct lengths, 256 examples
    for seed in range(3):
        batches = epoch_batches(lengths, 4, seed=seed, epoch=0)  # one mega-chunk of 256
        # each batch is 4 consecutive lengths of the sorted chunk, longest first
        for b in batches:
            ls = [lengths[i] for i in b]
            assert ls == sorted(ls, reverse=True) and ls[0] - ls[-1] == 3
        assert padding_fraction([[lengths[i] for i in b] for b in batches]) < 0.02
        maxes = [max(lengths[i] for i in b) for b in batches]
        assert maxes != sorted(maxes, reverse=True) and maxes != sorted(maxes)  # batches shuffled


def test_mega_chunks_are_drawn_from_a_shuffled_order():
    lengths = list(range(100, 164))  # 64 examples, chunks of 16 (batch 4 x mega 4)
    batches = epoch_batches(lengths, 4, seed=0, epoch=0, mega=4)
    # without the initial shuffle each batch would come from one block of 16 file positions
    assert any(len({i // 16 for i in b}) > 1 for b in batches)
    # and each chunk is sorted on its own: batches are not globally consecutive lengths
    assert any(max(lengths[i] for i in b) - min(lengths[i] for i in b) > 3 for b in batches)


@pytest.mark.parametrize("mode", MODES)
def test_schedule_is_epochs_of_epoch_batches_in_grad_accum_steps(mode):
    lengths = lengths_of(30)
    per = [epoch_batches(lengths, 4, 7, e, mode) for e in range(4)]  # 8 micro-batches each
    steps = schedule(lengths, 4, 3, seed=7, epochs=2, max_steps=None, mode=mode)
    assert len(steps) == 2 * 3  # ceil(8 / 3) steps per epoch
    assert [len(s) for s in steps] == [3, 3, 2] * 2
    assert [mb for s in steps[:3] for mb in s] == per[0]
    assert [mb for s in steps[3:] for mb in s] == per[1]  # epoch 1 reshuffled
    # every example once per epoch
    assert sorted(flat(mb for s in steps[:3] for mb in s)) == list(range(30))
    # fractional epochs, max_steps, and never fewer than one step
    half = schedule(lengths, 4, 3, 7, 1.5, None, mode)
    assert half == steps[:5]  # ceil(1.5 * 3)
    capped = schedule(lengths, 4, 3, 7, 2, 4, mode)
    assert capped == steps[:4]
    long = schedule(lengths, 4, 3, 7, 1, 8, mode)  # max_steps beyond an epoch: next epochs
    assert [mb for s in long for mb in s] == per[0] + per[1] + per[2][:6]
    assert len(schedule(lengths, 4, 3, 7, 0.01, None, mode)) == 1
    assert len(schedule(lengths, 4, 3, 7, 0, None, mode)) == 1
    assert len(schedule(lengths, 4, 1, 7, 1, None, mode)) == 8


def test_schedule_many_epochs_each_cover_every_example():
    lengths = lengths_of(12)
    steps = schedule(lengths, 2, 2, seed=0, epochs=3, max_steps=None, mode="length_grouped")
    assert len(steps) == 9
    epochs = [flat(mb for s in steps[3 * e:3 * e + 3] for mb in s) for e in range(3)]
    assert all(sorted(e) == list(range(12)) for e in epochs)
    assert epochs[0] != epochs[1] != epochs[2]


def test_pack_step_fills_micro_batches_up_to_the_token_budget():
    lengths = [10, 10, 10, 10, 7]
    # 2 x 10 = 20 tokens fit a budget of exactly 20
    assert pack_step([0, 1, 2, 3], lengths, max_tokens=20) == [[0, 1], [2, 3]]
    assert pack_step([0, 1, 2, 3], lengths, max_tokens=19) == [[0], [1], [2], [3]]
    assert pack_step([4, 0, 1], lengths, max_tokens=30) == [[0, 1, 4]]
    assert pack_step([4, 0, 1], lengths, max_tokens=40, rows_per_example=2) == [[0, 1], [4]]
    # the longest example of a micro-batch sets its width
    assert pack_step([4, 0], lengths, max_tokens=19) == [[0], [4]]
    assert pack_step([0, 1, 2], [10, 8, 8], max_tokens=27) == [[0, 1], [2]]  # 3 x 10 > 27
    assert pack_step([2, 1, 0], [8, 8, 10], max_tokens=30) == [[2, 1, 0]]
    assert pack_step([], lengths, max_tokens=10) == []


def test_collate_right_pads_masks_and_labels():
    ids, attn, labels = collate([([5, 6, 7], [0, 1, 1]), ([8], [1]), ([9, 4], [0, 0])],
                                pad_id=3)
    assert ids.tolist() == [[5, 6, 7], [8, 3, 3], [9, 4, 3]]
    assert attn.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert labels.tolist() == [[-100, 6, 7], [8, -100, -100], [-100, -100, -100]]
    assert str(ids.dtype) == str(attn.dtype) == str(labels.dtype) == "torch.int64"


def test_padding_fraction_is_the_share_of_padded_tokens():
    assert padding_fraction([[3, 1]]) == pytest.approx(1 / 3)  # 4 real of 6
    assert padding_fraction([[3, 1], [2, 2, 2]]) == pytest.approx(2 / 12)
    assert padding_fraction([[5], [4, 4]]) == 0.0
    assert padding_fraction([[1]]) == 0.0
    assert padding_fraction([]) == 0.0 and padding_fraction([[]]) == 0.0
    assert padding_fraction([[10, 1, 1, 1]]) == pytest.approx(0.675)
