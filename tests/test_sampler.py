"""SortagradSampler: the reference's batch order, resume and data-parallel sharding."""
import numpy as np
import pytest

from gluon_ds2.sampler import SortagradSampler

# 23 utterances, batch 4: five full batches and a partial batch of 3.
LENGTHS = np.random.RandomState(7).randint(1000, 100000, size=23).tolist()
BATCH = 4


def expected_sorted_batches(lengths, batch_size):
    """Batches of the length-sorted order, written independently (ties by index)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def epoch(sampler, number, start_batch=0):
    sampler.set_epoch(number, start_batch=start_batch)
    return list(sampler)


def test_epoch_zero_with_sortagrad_is_sorted_with_partial_batch_last():
    batches = epoch(SortagradSampler(LENGTHS, BATCH, sortagrad=True, seed=3), 0)
    assert batches == expected_sorted_batches(LENGTHS, BATCH)
    assert [len(b) for b in batches] == [4, 4, 4, 4, 4, 3]
    flat = [LENGTHS[i] for b in batches for i in b]
    assert flat == sorted(LENGTHS)


def test_equal_lengths_keep_manifest_order():
    lengths = [5, 3, 5, 3, 5, 3, 1]
    batches = epoch(SortagradSampler(lengths, 3), 0)
    assert batches == [[6, 1, 3], [5, 0, 2], [4]]


def test_later_epochs_shuffle_whole_batches_and_keep_partial_last():
    sampler = SortagradSampler(LENGTHS, BATCH, sortagrad=True, seed=3)
    reference = expected_sorted_batches(LENGTHS, BATCH)
    orders = []
    for number in (1, 2, 3):
        batches = epoch(sampler, number)
        assert batches[-1] == reference[-1]
        assert sorted(batches[:-1]) == sorted(reference[:-1])
        orders.append(batches)
    assert orders[0] != orders[1] != orders[2]
    assert any(o != reference for o in orders)
    # Same seed and epoch: the same order, from a fresh sampler too.
    assert epoch(SortagradSampler(LENGTHS, BATCH, seed=3), 2) == orders[1]
    assert epoch(sampler, 2) == orders[1]
    assert epoch(SortagradSampler(LENGTHS, BATCH, seed=4), 2) != orders[1]


def test_without_sortagrad_epoch_zero_is_shuffled():
    batches = epoch(SortagradSampler(LENGTHS, BATCH, sortagrad=False, seed=3), 0)
    reference = expected_sorted_batches(LENGTHS, BATCH)
    assert batches != reference
    assert sorted(batches[:-1]) == sorted(reference[:-1])
    assert batches[-1] == reference[-1]


def test_exact_multiple_has_no_partial_batch():
    sampler = SortagradSampler(LENGTHS[:20], BATCH)
    for number in (0, 1):
        batches = epoch(sampler, number)
        assert len(batches) == len(sampler) == 5
        assert sorted(i for b in batches for i in b) == list(range(20))


@pytest.mark.parametrize('number', [0, 1, 5])
@pytest.mark.parametrize('start_batch', [0, 1, 4, 5, 6])
def test_set_epoch_start_batch_yields_the_tail(number, start_batch):
    sampler = SortagradSampler(LENGTHS, BATCH, seed=11)
    full = epoch(sampler, number)
    tail = epoch(sampler, number, start_batch=start_batch)
    assert tail == full[start_batch:]
    assert len(sampler) == len(tail)


@pytest.mark.parametrize('num_parts', [2, 3, 4])
@pytest.mark.parametrize('number', [0, 1, 2])
@pytest.mark.parametrize('num_utterances', [23, 24, 25])
def test_sharding_equals_single_process(num_parts, number, num_utterances):
    batch_size = 12
    lengths = LENGTHS[:num_utterances] + [50] * max(0, num_utterances - len(LENGTHS))
    single = epoch(SortagradSampler(lengths, batch_size, seed=5), number)
    parts = [epoch(SortagradSampler(lengths, batch_size, seed=5, num_parts=num_parts,
                                    part_index=p), number)
             for p in range(num_parts)]
    samplers = [SortagradSampler(lengths, batch_size, num_parts=num_parts, part_index=p)
                for p in range(num_parts)]
    counts = {len(part) for part in parts} | {len(s) for s in samplers}
    assert len(counts) == 1
    seen = [i for part in parts for batch in part for i in batch]
    assert len(seen) == len(set(seen))
    missing = set(range(len(lengths))) - set(seen)
    assert len(missing) <= num_parts - 1
    assert missing <= set(single[-1])
    for k, global_batch in enumerate(single[:len(parts[0])]):
        joined = [i for part in parts for i in part[k]]
        assert len({len(part[k]) for part in parts}) == 1
        # Full batches are split exactly; a partial batch loses at most num_parts - 1
        # utterances from its end.
        assert joined == global_batch[:len(global_batch) - len(global_batch) % num_parts]


def test_partial_batch_smaller_than_parts_is_dropped():
    lengths = list(range(9))   # batch 4: two full batches and one utterance
    parts = [epoch(SortagradSampler(lengths, 4, num_parts=2, part_index=p), 0) for p in (0, 1)]
    assert parts == [[[0, 1], [4, 5]], [[2, 3], [6, 7]]]


def test_batch_size_not_divisible_by_parts():
    with pytest.raises(ValueError) as info:
        SortagradSampler(LENGTHS, 10, num_parts=4)
    assert str(info.value) == ('batch_size 10 is not divisible by the number of processes 4: '
                               'use --batch_size=8 or --batch_size=12')
    with pytest.raises(ValueError) as info:
        SortagradSampler(LENGTHS, 3, num_parts=4)
    assert str(info.value) == ('batch_size 3 is not divisible by the number of processes 4: '
                               'use --batch_size=4')


def test_invalid_arguments():
    with pytest.raises(ValueError) as info:
        SortagradSampler(LENGTHS, 0)
    assert str(info.value) == 'batch_size must be positive, got 0'
    with pytest.raises(ValueError) as info:
        SortagradSampler(LENGTHS, 4, num_parts=2, part_index=2)
    assert str(info.value) == 'part_index 2 out of range for 2 parts'


def test_epoch_keyed_batches_carry_the_epoch_with_the_same_order():
    from gluon_ds2.sampler import EpochKeyedBatches
    sampler = SortagradSampler(list(range(23)), 4, seed=5)
    keyed = EpochKeyedBatches(sampler)
    for epoch in (0, 3):
        sampler.set_epoch(epoch, start_batch=1)
        plain = list(sampler)
        assert len(keyed) == len(plain)
        assert list(keyed) == [[(epoch, i) for i in batch] for batch in plain]


def test_epoch_lengths_sort_each_epoch_by_its_own_lengths():
    lengths_of = {e: np.random.RandomState(20 + e).randint(1000, 100000, size=23).tolist()
                  for e in range(3)}
    sampler = SortagradSampler(LENGTHS, BATCH, seed=3, epoch_lengths=lengths_of.__getitem__)
    plain = SortagradSampler(LENGTHS, BATCH, seed=3)
    # Epoch 0 (sortagrad): the sorted batches of epoch 0's lengths, not of LENGTHS.
    assert epoch(sampler, 0) == expected_sorted_batches(lengths_of[0], BATCH)
    # Later epochs: the same shuffle of whole batches, of that epoch's sorted order.
    for number in (1, 2):
        batches = expected_sorted_batches(lengths_of[number], BATCH)
        permutation = {tuple(b): i for i, b in enumerate(
            expected_sorted_batches(LENGTHS, BATCH))}
        order = [permutation[tuple(b)] for b in epoch(plain, number)]
        assert epoch(sampler, number) == [batches[i] for i in order]
    with pytest.raises(ValueError, match=r'epoch_lengths\(0\) gave 3 lengths for 23 utterances'):
        epoch(SortagradSampler(LENGTHS, BATCH, epoch_lengths=lambda e: [1, 2, 3]), 0)
