"""Sortagrad batch order, as the reference's ``batch_wise_dataset_shuffle``.

Utterances are sorted by length once. With sortagrad on, epoch 0 walks the
batches in that sorted order (short utterances first, which steadies early CTC
training); every other epoch shuffles whole batches and keeps the last, partial
batch last. The sampler sees lengths only.

For data parallelism each global batch is split into ``num_parts`` equal
slices and part ``part_index`` takes its slice, so all parts step through the
same global order together and N parts with global batch B see exactly the
utterances one process with batch B sees.
"""
import numpy as np

__all__ = ['SortagradSampler', 'EpochKeyedBatches', 'sorted_batches']


class SortagradSampler:
    """Batch sampler yielding lists of dataset indices.

    Parameters
    ----------
    lengths : sequence of int
        One length per utterance (the reference sorts by WAV file size).
    batch_size : int
        Global batch size; must be divisible by ``num_parts``.
    sortagrad : bool
        Sorted batches in epoch 0 (True), or shuffled batches from epoch 0 on.
    seed : int
        Base seed; epoch ``e`` shuffles with ``seed + e``, so every part (and a
        resumed run) draws the same order.
    epoch_lengths : callable or None
        ``epoch -> lengths``: sort keys that replace ``lengths`` in that epoch
        (speed perturbation changes the lengths every epoch). Deterministic, so
        every part sorts alike.
    num_parts, part_index : int
        Data-parallel sharding (Horovod size and rank).
    """

    def __init__(self, lengths, batch_size, sortagrad=True, seed=1, num_parts=1, part_index=0,
                 epoch_lengths=None):
        if batch_size < 1:
            raise ValueError('batch_size must be positive, got %d' % batch_size)
        if batch_size % num_parts:
            lower = batch_size - batch_size % num_parts
            valid = [size for size in (lower, lower + num_parts) if size > 0]
            raise ValueError('batch_size %d is not divisible by the number of processes %d: '
                             'use %s' % (batch_size, num_parts,
                                         ' or '.join('--batch_size=%d' % size for size in valid)))
        if not 0 <= part_index < num_parts:
            raise ValueError('part_index %d out of range for %d parts' % (part_index, num_parts))
        self.batch_size = batch_size
        self.sortagrad = sortagrad
        self.seed = seed
        self.num_parts = num_parts
        self.part_index = part_index
        # Stable sort: equal lengths keep manifest order, so the order is reproducible.
        self.sorted_indices = np.argsort(np.asarray(lengths), kind='mergesort')
        self.epoch_lengths = epoch_lengths
        self._epoch_order = (None, None)  # (epoch, its sorted indices)
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch, start_batch=0):
        """Choose the epoch's order; ``start_batch`` skips batches already trained (resume)."""
        self.epoch = epoch
        self.start_batch = start_batch

    def sorted_order(self, epoch):
        """Utterance indices sorted by length, by ``epoch``'s lengths when they vary."""
        if self.epoch_lengths is None:
            return self.sorted_indices
        if self._epoch_order[0] != epoch:
            order = np.argsort(np.asarray(self.epoch_lengths(epoch)), kind='mergesort')
            if len(order) != len(self.sorted_indices):
                raise ValueError('epoch_lengths(%d) gave %d lengths for %d utterances'
                                 % (epoch, len(order), len(self.sorted_indices)))
            self._epoch_order = (epoch, order)
        return self._epoch_order[1]

    def global_batches(self, epoch):
        """The epoch's global batches (before sharding), as index arrays."""
        order = self.sorted_order(epoch)
        full = len(order) // self.batch_size
        batches = [order[i * self.batch_size:(i + 1) * self.batch_size] for i in range(full)]
        if not (epoch == 0 and self.sortagrad):
            rng = np.random.RandomState(self.seed + epoch)
            batches = [batches[i] for i in rng.permutation(full)]
        if len(order) > full * self.batch_size:
            batches.append(order[full * self.batch_size:])
        return batches

    def _part(self, batch):
        """This part's slice of a global batch; None if the batch cannot be split evenly."""
        per_part = len(batch) // self.num_parts
        if per_part == 0:
            return None
        start = self.part_index * per_part
        return batch[start:start + per_part].tolist()

    def num_batches(self):
        """Batches per epoch for this part (all parts have the same number)."""
        full, rest = divmod(len(self.sorted_indices), self.batch_size)
        return full + (1 if rest >= self.num_parts else 0)

    def __len__(self):
        return self.num_batches() - self.start_batch

    def __iter__(self):
        batches = self.global_batches(self.epoch)[self.start_batch:]
        for batch in batches:
            part = self._part(batch)
            if part is not None:
                yield part


class EpochKeyedBatches:
    """A SortagradSampler's batches as ``[(epoch, index), ...]``.

    Dataset items are fetched in DataLoader worker processes, which never
    see ``set_epoch``; carrying the epoch in each key lets per-epoch
    augmentation be seeded the same in any process.
    """

    def __init__(self, sampler):
        self.sampler = sampler

    def __len__(self):
        return len(self.sampler)

    def __iter__(self):
        for batch in self.sampler:
            yield [(self.sampler.epoch, index) for index in batch]


def sorted_batches(lengths, batch_size, num_parts=1, part_index=0):
    """Evaluation order: part ``part_index`` of the length-sorted utterances, batched.

    Parts take every ``num_parts``-th utterance, so nothing is dropped and the
    parts' batch counts differ by at most one (evaluation needs no lock-step).
    """
    order = np.argsort(np.asarray(lengths), kind='mergesort')[part_index::num_parts]
    return [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]
