"""Horovod, or a single process: the only module that imports horovod.

``setup()`` detects a ``horovodrun`` launch from its environment variables and
initializes Horovod; otherwise it returns a single-process stand-in with the
same interface, so the training loop has one code path.
"""
import os

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
        else 0); -1 means all visible GPUs.
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
            return [mx.gpu(self.local_rank)]
        return [mx.gpu(i) for i in range(num_gpus)]

    @property
    def is_root(self):
        """Rank 0 writes checkpoints, logs and plots."""
        return self.rank == 0

    def make_trainer(self, params, optimizer, optimizer_params):
        """A trainer whose ``allreduce_grads`` sums over devices and processes.

        Both kinds leave the averaging to ``update``: the single-process
        trainer's kvstore sums device gradients, Horovod's sums across ranks and
        scales ``rescale_grad`` by ``1 / size``.
        """
        if self.hvd:
            return self.hvd.DistributedTrainer(params, optimizer, optimizer_params)
        return gluon.Trainer(params, optimizer, optimizer_params, update_on_kvstore=False)

    @property
    def gradient_sum_factor(self):
        """How many times the true mean gradient the reduced gradients are."""
        return self.size

    def broadcast_parameters(self, params):
        """Every rank takes rank 0's parameter values."""
        if self.hvd:
            self.hvd.broadcast_parameters(params, root_rank=0)

    def allreduce_sum(self, vector, name):
        """Element-wise sum of a float64 numpy vector over ranks."""
        if not self.hvd:
            return np.asarray(vector, dtype=np.float64)
        summed = self.hvd.allreduce(mx.nd.array(vector, dtype='float64'), average=False,
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


def setup():
    """Initialize Horovod when launched by ``horovodrun``; else single process."""
    if not launched_by_horovod():
        return Distributed()
    import horovod.mxnet as hvd
    hvd.init()
    return Distributed(hvd)
