"""Horovod, or a single process: the only module that imports horovod.

``setup()`` detects a ``horovodrun`` launch from its environment variables and
initializes Horovod; otherwise it returns a single-process stand-in with the
same interface, so the training loop has one code path.

Each process drives one or more devices (:mod:`gluon_ds2.devices` chooses
them) and takes an equal slice of each global batch. Gradients are summed over
the process's devices, then averaged over the processes by Horovod, and copied
back to every device before clipping and the update; the optimizer then makes
the same step on every device of every process.
"""
import os
import sys

import mxnet as mx
import numpy as np
from mxnet import gluon

from .threads import launched_by_horovod  # an environment check, shared with the thread policy

__all__ = ['Distributed', 'setup', 'launched_by_horovod']


class Distributed:
    """Rank information and the collectives training needs.

    ``rank``/``size`` are 0/1 and the collectives act on this process's
    devices alone unless Horovod was initialized.
    """

    def __init__(self, hvd=None):
        self.hvd = hvd
        self.rank = hvd.rank() if hvd else 0
        self.size = hvd.size() if hvd else 1
        self.local_rank = hvd.local_rank() if hvd else 0
        self.local_size = hvd.local_size() if hvd else 1

    @property
    def is_root(self):
        """Rank 0 writes checkpoints, logs and plots."""
        return self.rank == 0

    def describe(self):
        """One line for the log: processes and the Horovod operations in use."""
        if not self.hvd:
            return 'one process (no Horovod)'
        operations = [name for name, built in (('NCCL', self.hvd.nccl_built()),
                                               ('Gloo', self.hvd.gloo_enabled()),
                                               ('MPI', self.hvd.mpi_enabled())) if built]
        return 'Horovod %d processes (%d on this host), operations: %s' % (
            self.size, self.local_size, ', '.join(operations) or 'none')

    @staticmethod
    def make_trainer(params, optimizer, optimizer_params):
        """A plain trainer: :meth:`allreduce_gradients` reduces, ``update()`` steps.

        No kvstore, and not Horovod's ``DistributedTrainer``, which reduces the
        first device's gradients only.
        """
        return gluon.Trainer(params, optimizer, optimizer_params, kvstore=None,
                             update_on_kvstore=False)

    def allreduce_gradients(self, params):
        """Sum each gradient over this process's devices, average it over the processes.

        Every device's gradient then holds the result. Each process's gradient
        is the mean over its slice, so the result is the global batch's mean
        gradient (the slices are equal).
        """
        params = [p for p in params if p.grad_req != 'null']
        for index, param in enumerate(params):
            grads = param.list_grad()
            total = grads[0]
            if len(grads) > 1:
                total = mx.nd.add_n(*[g.as_in_context(total.context) for g in grads])
            if self.hvd and self.size > 1:
                self.hvd.allreduce_(total, op=self.hvd.Sum, name='gradient.%d' % index,
                                    priority=-index, postscale_factor=1.0 / self.size)
            for grad in grads:
                if grad is not total:
                    total.copyto(grad)

    def broadcast_parameters(self, params):
        """Every device of every rank takes rank 0's first device's values."""
        params = [params[name] for name in sorted(params)]
        if self.hvd and self.size > 1:
            for param in params:
                self.hvd.broadcast_(param.list_data()[0], root_rank=0,
                                    name='parameter.' + param.name)
        for param in params:
            first, *others = param.list_data()
            for data in others:
                first.copyto(data)

    def average_running_statistics(self, params):
        """Average the parameters no gradient trains (BatchNorm running mean/var).

        In training mode each device's BatchNorm running statistics follow its
        own slices of the batches, so they drift apart; the optimizer never
        sees them. Averaged over devices and ranks before evaluation and before
        a checkpoint, every device evaluates, and rank 0 saves, the same model:
        the mean of the slices' statistics, close to what one device on the
        whole batches would keep.
        """
        statistics = [(name, param.list_data()) for name, param in sorted(params.items())
                      if param.grad_req == 'null']
        for name, copies in statistics:
            mean = copies[0]
            if len(copies) > 1:
                mean = mx.nd.add_n(*[c.as_in_context(mean.context) for c in copies]) / len(copies)
            if self.hvd and self.size > 1:
                self.hvd.allreduce_(mean, op=self.hvd.Average,
                                    name='running_statistics.' + name)
            for data in copies:
                if data is not mean:
                    mean.copyto(data)
        # allreduce_ only enqueues: a rank that went on and exited would shut
        # Horovod down under the others' pending allreduce.
        for _, copies in statistics:
            for data in copies:
                data.wait_to_read()

    def allreduce_sum(self, vector, name):
        """Element-wise sum of a float64 numpy vector over ranks."""
        if not self.hvd:
            return np.asarray(vector, dtype=np.float64)
        summed = self.hvd.allreduce(mx.nd.array(vector, dtype='float64'), op=self.hvd.Sum,
                                    name=name)
        return summed.asnumpy()

    def any(self, flag):
        """True on every rank if ``flag`` is true on any rank."""
        if not self.hvd:
            return bool(flag)
        return bool(self.allreduce_sum([float(flag)], name='any_flag')[0] > 0)

    def broadcast_object(self, obj, name):
        """Rank 0's Python object, on every rank."""
        if not self.hvd:
            return obj
        return self.hvd.broadcast_object(obj, root_rank=0, name=name)


def _exit_at_once(kind, value, tb):
    """``sys.excepthook`` under Horovod: print the traceback, then end the process.

    A normal exit would first shut Horovod down, which fails the other ranks'
    pending allreduce; they could exit before this rank and horovodrun would
    name one of them as the first to fail. ``os._exit`` skips that: the
    others see the closed connection and stop after this rank.
    """
    sys.__excepthook__(kind, value, tb)
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(1)


def setup():
    """Initialize Horovod when launched by ``horovodrun``; else single process."""
    if not launched_by_horovod():
        return Distributed()
    import horovod.mxnet as hvd
    hvd.init()
    sys.excepthook = _exit_at_once
    return Distributed(hvd)
