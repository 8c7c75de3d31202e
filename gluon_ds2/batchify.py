"""Items -> padded batches, and the DataLoader that feeds training and evaluation.

DataLoader workers are processes started by a fork server (multiprocessing's
"forkserver" method), never forked from the process that trains. That process
runs MXNet's engine threads and, under Horovod, Horovod's background thread; a
child forked from it starts with copies of their locks and half-done work, and
MXNet has to stop and restart its engine around every fork. Those are the
conditions of MXNet's known intermittent "Segmentation fault: 11" crashes with
forked DataLoader workers (apache/mxnet#10042, #15629), and of one seen in this
project's two-rank Horovod tests. The fork server is a fresh Python process
that imports this module once; each worker is forked from it.

Batches are built in numpy and become NDArrays in the process that consumes
them: a worker runs no MXNet operator, and a batch reaches the trainer as
pickled bytes, not as a shared-memory NDArray.

Workers ignore SIGINT and SIGTERM: the training process handles them
(checkpoint, then exit, closing the pool), also when a terminal's Ctrl-C or a
scheduler's SIGTERM (systemd, SLURM) reaches the whole process group. A worker
killed while it held the pool's queue lock would make that exit hang.
"""
import atexit
import ctypes
import math
import multiprocessing
import multiprocessing.forkserver
import signal
import threading
import time
import weakref

import mxnet as mx
import numpy as np
from mxnet import gluon
from mxnet.gluon.data import dataloader as _gluon_dataloader
from mxnet.util import is_np_array, is_np_shape

from .dataset import SkippedUtterance

__all__ = ['SpeechBatchify', 'SpeechDataLoader', 'as_ndarrays', 'make_dataloader',
           'pad_arrays', 'worker_context']


def pad_arrays(arrays, pad_val, round_to=None):
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
        features, feature_lengths = pad_arrays([np.asarray(f) for f, _ in good], 0.0,
                                               self._round_to)
        labels, label_lengths = pad_arrays([np.asarray(y) for _, y in good], -1.0)
        # (N, T, bins) -> (N, 1, T, bins): one input channel for the convs.
        return features[:, None], feature_lengths, labels, label_lengths, skipped


def as_ndarrays(batch):
    """A :class:`SpeechBatchify` batch with its arrays as NDArrays on the CPU."""
    *arrays, skipped = batch
    return tuple(None if a is None else mx.nd.array(a, dtype=a.dtype) for a in arrays) + \
        (skipped,)


def worker_context():
    """The multiprocessing context DataLoader workers start in: a fork server
    that imports this module (so MXNet) once, before it forks any worker.

    Started from the main thread, the fork server ignores SIGINT and SIGTERM,
    as its workers do (see the module's note).
    """
    context = multiprocessing.get_context('forkserver')
    context.set_forkserver_preload([__name__])
    if threading.current_thread() is threading.main_thread():
        stops = (signal.SIGINT, signal.SIGTERM)
        previous = {stop: signal.signal(stop, signal.SIG_IGN) for stop in stops}
        try:
            multiprocessing.forkserver.ensure_running()  # inherits the ignored signals
        finally:
            for stop, handler in previous.items():
                signal.signal(stop, handler)
    return context


def _keep_freed_memory():
    """Let glibc's malloc reuse freed blocks of a few MB instead of unmapping them.

    By default an allocation over a threshold (128 kB at start, raised each time
    such a block is freed) is a fresh mmap whose pages fault in one by one. A
    worker allocates arrays of a few MB per utterance, growing along the sorted
    first epoch, so a fresh worker kept paying that; a worker forked from a busy
    process inherited a raised threshold instead.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 32 << 20)   # M_MMAP_THRESHOLD: glibc's maximum
        libc.mallopt(-1, 128 << 20)  # M_TRIM_THRESHOLD: keep freed memory for reuse
    except (OSError, AttributeError):  # not glibc
        pass


def _init_worker(dataset, np_shape, np_array):
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_IGN)
    _keep_freed_memory()
    _gluon_dataloader._worker_initializer(dataset, np_shape, np_array)


class SpeechDataLoader(gluon.data.DataLoader):
    """A Gluon DataLoader whose workers start from a fork server (see the module's
    note) and whose batches, built in numpy, arrive as NDArrays.

    :meth:`close` (also on garbage collection and at interpreter exit) lets the
    workers finish the batches in flight and exit; Gluon's own shutdown would
    send them SIGTERM, which they ignore.
    """

    def __init__(self, dataset, batch_sampler, num_workers=0, round_to=None):
        super().__init__(dataset, batch_sampler=batch_sampler,
                         batchify_fn=SpeechBatchify(round_to=round_to), num_workers=0)
        if num_workers > 0:
            # Gluon's own pool would be forked from this process.
            self._worker_pool = worker_context().Pool(
                num_workers, initializer=_init_worker,
                initargs=(dataset, is_np_shape(), is_np_array()))
            self._num_workers = num_workers
            self._prefetch = 2 * num_workers
            _open_loaders.add(self)

    def __iter__(self):
        for batch in super().__iter__():
            yield as_ndarrays(batch)

    def close(self):
        """Stop the worker processes, once the batches they are making are done."""
        pool, self._worker_pool = self._worker_pool, None
        if pool is None:
            return
        _open_loaders.discard(self)
        # Pool.terminate() alone relies on SIGTERM, which the workers ignore: one
        # waiting for the task queue's lock, which terminate() takes, would never exit.
        pool.close()  # each worker finishes its batch in flight, then gets an end marker
        deadline = time.monotonic() + self._timeout
        for worker in pool._pool:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.exitcode is None:
                worker.kill()
        pool.terminate()  # its threads

    def __del__(self):
        self.close()


# Loaders with workers; closed at exit before multiprocessing's own exit handler
# (registered earlier, so run later) would stop their pools without waiting.
_open_loaders = weakref.WeakSet()
atexit.register(lambda: [loader.close() for loader in list(_open_loaders)])


def make_dataloader(dataset, batch_sampler, num_workers=0, round_to=None):
    """DataLoader over ``dataset`` in ``batch_sampler``'s order (see the module's note)."""
    return SpeechDataLoader(dataset, batch_sampler, num_workers=num_workers, round_to=round_to)
