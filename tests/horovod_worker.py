"""What ``tests/test_distributed.py`` starts under ``horovodrun``, once per rank.

    horovodrun -np 2 -H localhost:2 --gloo python tests/horovod_worker.py train [train.py flags]
    horovodrun -np 2 -H localhost:2 --gloo python tests/horovod_worker.py train_step OUT_PREFIX

``train`` runs ``train.py`` as a user would, with test hooks patched in from
outside the package (the package has no test switches):

* ``GLUON_DS2_TEST_PARAMS=PREFIX``: each rank saves its parameters before its
  first train step to ``PREFIX.rank<r>.initial.params``, and when training
  returns to ``PREFIX.rank<r>.params``.
* ``GLUON_DS2_TEST_FAULT=RANK:STEP:HOW``: rank RANK, on entering its STEP-th
  train step (1-based), raises ``RuntimeError`` (HOW=raise) or SIGKILLs itself
  (HOW=kill), while the other ranks go on into that step's allreduce.

``train_step`` runs :func:`gluon_ds2.training.train_step` on a linear model
whose gradients the test recomputes in float64: each rank takes its slice of a
fixed global batch (rank 1's slice is empty in the last case), on one device
and on two, and writes what it saw to ``OUT_PREFIX.rank<r>.json``.
"""
import json
import os
import runpy
import signal
import sys
from pathlib import Path

import mxnet as mx
import numpy as np

from gluon_ds2 import training
from gluon_ds2.distributed import setup

REPO_ROOT = Path(__file__).resolve().parent.parent

# train_step case: a global batch of 4 inputs of 3 features, targets, initial weights.
INPUTS = np.array([[1.0, 2.0, -1.0], [0.5, -1.0, 2.0], [-2.0, 1.0, 0.5], [1.5, 0.5, 1.0]])
TARGETS = np.array([1.0, -2.0, 0.5, 3.0])
WEIGHTS = np.array([0.2, -0.1, 0.3])
# (name, clip_gradient, rank 1's slice is empty): clip off, clip active, an empty slice.
CASES = (('no_clip', 0.0, False), ('clip', 0.5, False), ('empty_slice', 0.0, True))
# Devices per rank: one, and two (cpu(0), cpu(1)) whose gradients are summed first.
DEVICE_COUNTS = (1, 2)


def _rank():
    return int(os.environ.get('HOROVOD_RANK', 0))


def run_train(argv):
    """train.py with the hooks of the module docstring."""
    seen = {'steps': 0}
    fault = os.environ.get('GLUON_DS2_TEST_FAULT')
    params_prefix = os.environ.get('GLUON_DS2_TEST_PARAMS')
    original_step, original_run = training.train_step, training.run

    def train_step(net, *args, **kwargs):
        seen['net'] = net
        seen['steps'] += 1
        if params_prefix and seen['steps'] == 1:
            net.save_parameters('%s.rank%d.initial.params' % (params_prefix, _rank()))
        if fault:
            rank, step, how = fault.split(':')
            if _rank() == int(rank) and seen['steps'] == int(step):
                if how == 'kill':
                    os.kill(os.getpid(), signal.SIGKILL)
                raise RuntimeError('injected fault at step %d' % seen['steps'])
        return original_step(net, *args, **kwargs)

    def run(cfg):
        state = original_run(cfg)
        if params_prefix:
            seen['net'].save_parameters('%s.rank%d.params' % (params_prefix, _rank()))
        return state

    training.train_step, training.run = train_step, run
    sys.argv = [str(REPO_ROOT / 'train.py')] + argv
    runpy.run_path(sys.argv[0], run_name='__main__')


class LinearModel(mx.gluon.Block):
    """``features (N, 3) -> (N,)``; takes (and ignores) lengths like DeepSpeech2."""

    def __init__(self):
        super().__init__()
        with self.name_scope():
            self.dense = mx.gluon.nn.Dense(1, in_units=3, use_bias=False)

    def forward(self, features, feature_lengths):
        return self.dense(features).reshape((-1,))


def squared_error(predictions, targets, output_lengths, target_lengths):
    return 0.5 * (predictions - targets) ** 2


def run_train_step(out_prefix):
    """One train_step per case and device count on this rank's slice; writes norms and weights.

    With two devices (``cpu(0)``, ``cpu(1)``) each gets half of the rank's
    slice, or, for an empty slice, nothing.
    """
    dist = setup()
    per_rank = len(INPUTS) // dist.size
    results = {}
    for devices in DEVICE_COUNTS:
        contexts = [mx.cpu(i) for i in range(devices)]
        for name, clip_gradient, rank1_empty in CASES:
            net = LinearModel()
            net.initialize(ctx=contexts)
            net.dense.weight.set_data(mx.nd.array(WEIGHTS.reshape(1, 3)))
            trainer = dist.make_trainer(net.collect_params(), 'sgd', {'learning_rate': 1.0})
            rows = slice(dist.rank * per_rank, (dist.rank + 1) * per_rank)
            if rank1_empty and dist.rank == 1:
                batch = (None, None, None, None, [])
            else:
                x = mx.nd.array(INPUTS[rows])
                lengths = mx.nd.array([100] * len(x))
                batch = (x, lengths, mx.nd.array(TARGETS[rows]), lengths, [])
            loss, norm, finite = training.train_step(net, trainer, squared_error, batch,
                                                     contexts, dist, clip_gradient)
            results['%s.%d' % (name, devices)] = dict(
                norm=norm, finite=finite,
                weights=[net.dense.weight.data(ctx).asnumpy().ravel().tolist()
                         for ctx in contexts])
    with open('%s.rank%d.json' % (out_prefix, dist.rank), 'w') as f:
        json.dump(dict(size=dist.size, per_rank=per_rank, results=results), f)


if __name__ == '__main__':
    if sys.argv[1] == 'train':
        run_train(sys.argv[2:])
    else:
        run_train_step(sys.argv[2])
