"""Horovod, or a single process: the only module that imports horovod.

``setup()`` detects a ``horovodrun`` launch from its environment variables and
initializes Horovod; otherwise it returns a single-process stand-in with the
same interface, so the training loop has one code path.

Under Horovod every process drives one device (its local-rank GPU, or the
CPU), takes an equal slice of each global batch, and the gradients are summed
across processes by ``hvd.DistributedTrainer`` before clipping and the update.
"""
import os
import sys

import mxnet as mx
import numpy as np
from mxnet import gluon

__all__ = ['Distributed', 'setup', 'launched_by_horovod']


def launched_by_horovod():
    """True inside a process started by ``horovodrun`` (Gloo or MPI)."""
    return any(name in os.environ for name in ('HOROVOD_RANK', 'OMPI_COMM_WORLD_RANK',
                                                'PMI_RANK'))


class Distributed:
    """Rank information and the collectives training needs.

    ``rank``/``size`` are 0/1 and the collectives are identities unless
    Horovod was initialized.
    """

    def __init__(self, hvd=None):
        self.hvd = hvd
        self.rank = hvd.rank() if hvd else 0
        self.size = hvd.size() if hvd else 1
        self.local_rank = hvd.local_rank() if hvd else 0
        self.local_size = hvd.local_size() if hvd else 1

    def contexts(self, num_gpus=None):
        """Devices of this process: its own GPU under Horovod, ``num_gpus`` GPUs, or the CPU.

        ``num_gpus`` None means the reference's default (1 if a GPU is visible,
        else 0); -1 means all visible GPUs (under Horovod: this process's one).
        """
        available = mx.context.num_gpus()
        if num_gpus is None:
            num_gpus = 1 if available else 0
        if num_gpus == -1:
            num_gpus = available
        if num_gpus > available:
            raise ValueError('--num_gpus=%d but %d GPU(s) are visible' % (num_gpus, available))
        if num_gpus == 0:
            return [mx.cpu()]
        if self.size > 1:
            if self.local_rank >= available:
                raise ValueError('process %d on this host (local rank) has no GPU of its own: '
                                 '%d visible. Start at most %d processes per host (horovodrun '
                                 '-np / -H host:%d), or pass --num_gpus=0 to train on CPUs.'
                                 % (self.local_rank, available, available, available))
            return [mx.gpu(self.local_rank)]
        return [mx.gpu(i) for i in range(num_gpus)]

    @property
    def is_root(self):
        """Rank 0 writes checkpoints, logs and plots."""
        return self.rank == 0

    def make_trainer(self, params, optimizer, optimizer_params):
        """A trainer whose ``allreduce_grads`` reduces over devices and processes.

        The single-process trainer's kvstore sums device gradients. Horovod
        0.28's ``DistributedTrainer`` sums across ranks and leaves the division
        by the number of ranks to ``update()`` (its ``_scale``) when the
        allreduce cannot average in place (Gloo/CPU, NCCL before 2.10); with a
        newer NCCL the allreduce averages. :meth:`gradient_sum_factor` says which.
        """
        if self.hvd:
            return self.hvd.DistributedTrainer(params, optimizer, optimizer_params)
        return gluon.Trainer(params, optimizer, optimizer_params, update_on_kvstore=False)

    @staticmethod
    def gradient_sum_factor(trainer):
        """How many times the gradient the optimizer applies the reduced gradients are.

        ``update()`` multiplies the reduced gradients by ``trainer._scale`` (and by
        1 / the batch size it is given): 1 for a plain trainer and for an
        averaging allreduce, 1 / size for Horovod's summing allreduce. Clipping
        acts on the reduced gradients, so its threshold is scaled by this factor.
        """
        return 1.0 / trainer._scale

    def broadcast_parameters(self, params):
        """Every rank takes rank 0's parameter values."""
        if self.hvd:
            self.hvd.broadcast_parameters(params, root_rank=0)

    def average_running_statistics(self, params):
        """Average the parameters no gradient trains (BatchNorm running mean/var) over ranks.

        In training mode each rank's BatchNorm running statistics follow its own
        slices of the batches, so they drift apart; the optimizer never sees
        them. Averaged before evaluation and before a checkpoint, every rank
        evaluates, and rank 0 saves, the same model: the mean of the ranks'
        statistics, close to what one process on the whole batches would keep.
        """
        if not self.hvd:
            return
        statistics = [(name, param.data()) for name, param in sorted(params.items())
                      if param.grad_req == 'null']
        for name, data in statistics:
            self.hvd.allreduce_(data, op=self.hvd.Average, name='running_statistics.' + name)
        # allreduce_ only enqueues: a rank that went on and exited would shut
        # Horovod down under the others' pending allreduce.
        for _, data in statistics:
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
