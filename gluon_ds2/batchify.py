"""Items -> padded batches, and the DataLoader that feeds training and evaluation.

Batches are built in numpy and become NDArrays in the process that consumes
them. A DataLoader worker is a forked child of a process whose MXNet engine
(and, under Horovod, whose background thread) is running; if the worker made
NDArrays, MXNet would run its engine in that child and hand each batch over
as a shared-memory NDArray, the path of MXNet's known intermittent
"Segmentation fault: 11" crashes (apache/mxnet#10042: in
MXNDArrayCreateFromSharedMem, on a speech training job). With numpy, the
worker runs no MXNet code, and the batch reaches the parent as pickled bytes.
"""
import math

import mxnet as mx
import numpy as np
from mxnet import gluon

from .dataset import SkippedUtterance

__all__ = ['SpeechBatchify', 'SpeechDataLoader', 'as_ndarrays', 'make_dataloader']


def _pad(arrays, pad_val, round_to=None):
    """Stack arrays along a new axis 0, padding axis 0 of each; and their lengths."""
    lengths = np.array([len(a) for a in arrays], dtype=np.int32)
    width = int(lengths.max())
    if round_to:
        width = round_to * math.ceil(width / round_to)
    out = np.full((len(arrays), width) + arrays[0].shape[1:], pad_val, dtype=np.float32)
    for row, array in zip(out, arrays):
        row[:len(array)] = array
    return out, lengths


class SpeechBatchify:
    """Pad a list of (features, labels) into one batch, in numpy.

    Returns
    -------
    tuple
        ``features`` (N, 1, T, bins) float32 zero-padded; ``feature_lengths`` (N,)
        int32 frames; ``labels`` (N, L) float32 padded with -1, as ``CTCLoss``
        wants; ``label_lengths`` (N,) int32; ``skipped``, a list of
        :class:`SkippedUtterance` dropped from this batch. :func:`as_ndarrays`
        turns the arrays into NDArrays.
    """

    def __init__(self, round_to=None):
        # round_to pads T up to a multiple, so fewer distinct shapes reach the
        # hybridized graph (each new shape costs oneDNN a fresh primitive).
        self._round_to = round_to

    def __call__(self, items):
        skipped = [item for item in items if isinstance(item, SkippedUtterance)]
        good = [item for item in items if not isinstance(item, SkippedUtterance)]
        if not good:
            return None, None, None, None, skipped
        features, feature_lengths = _pad([np.asarray(f) for f, _ in good], 0.0, self._round_to)
        labels, label_lengths = _pad([np.asarray(y) for _, y in good], -1.0)
        # (N, T, bins) -> (N, 1, T, bins): one input channel for the convs.
        return features[:, None], feature_lengths, labels, label_lengths, skipped


def as_ndarrays(batch):
    """A :class:`SpeechBatchify` batch with its arrays as NDArrays on the CPU."""
    *arrays, skipped = batch
    return tuple(None if a is None else mx.nd.array(a, dtype=a.dtype) for a in arrays) + \
        (skipped,)


class SpeechDataLoader(gluon.data.DataLoader):
    """A Gluon DataLoader whose batches, built in numpy, arrive as NDArrays."""

    def __iter__(self):
        for batch in super().__iter__():
            yield as_ndarrays(batch)


def make_dataloader(dataset, batch_sampler, num_workers=0, round_to=None):
    """DataLoader over ``dataset`` in ``batch_sampler``'s order (see the module's note)."""
    return SpeechDataLoader(dataset, batch_sampler=batch_sampler,
                            batchify_fn=SpeechBatchify(round_to=round_to),
                            num_workers=num_workers, thread_pool=False)
