"""Reduced-precision training: ``--dtype`` and dynamic loss scaling.

``float32`` is the default. ``bfloat16`` (CPU, oneDNN) and ``float16`` (GPU) go
through ``mxnet.contrib.amp``, which must patch MXNet's operators before the
model is built: convolutions and dense layers then run in the reduced type,
while MXNet 1.9.1 keeps the RNN operator in float32 (it has no bfloat16 kernel:
``mx.nd.RNN`` on bfloat16 inputs fails with "Unknown type enum 12"; see the
README). Parameters and the optimizer stay float32.

float16 gradients underflow without loss scaling: :class:`LossScaler` multiplies
the loss by a scale, and the training step divides it out of the gradients. A
step whose gradients overflow is skipped and halves the scale; the scale doubles
again after ``growth_interval`` good steps in a row. Checkpoints keep the scale
(:meth:`LossScaler.state_dict`), so a resumed run neither starts again at 2 ** 16
nor overflows its way back down.
"""
import functools
import logging
import subprocess
import sys

from .config import DTYPES

__all__ = ['LossScaler', 'setup_precision', 'add_dtype_argument', 'cpu_runs_bfloat16']

logger = logging.getLogger(__name__)


class LossScaler:
    """Dynamic loss scale for float16 training.

    Parameters
    ----------
    scale : float
        Initial scale (2 ** 16, as MXNet's and PyTorch's scalers).
    growth_interval : int
        Good steps in a row after which the scale doubles.
    factor : float
        What an overflow divides the scale by, and growth multiplies it by.
    min_scale : float
        The scale never drops below this.
    """

    def __init__(self, scale=2.0 ** 16, growth_interval=2000, factor=2.0, min_scale=1.0):
        if growth_interval < 1 or factor <= 1 or scale < min_scale:
            raise ValueError('LossScaler needs growth_interval >= 1, factor > 1 and '
                             'scale >= min_scale; got %r, %r, %r, %r'
                             % (growth_interval, factor, scale, min_scale))
        self.scale = float(scale)
        self.growth_interval = growth_interval
        self.factor = factor
        self.min_scale = min_scale
        self.good_steps = 0

    def update(self, finite):
        """Record one step's outcome; returns True if the step's update may be applied.

        An overflow (``finite`` False) means the update must be skipped: the
        scale is divided by ``factor`` and the count of good steps restarts.
        """
        if not finite:
            self.scale = max(self.scale / self.factor, self.min_scale)
            self.good_steps = 0
            logger.debug('gradient overflow: loss scale now %g', self.scale)
            return False
        self.good_steps += 1
        if self.good_steps >= self.growth_interval:
            self.scale *= self.factor
            self.good_steps = 0
        return True

    def state_dict(self):
        """What a checkpoint keeps: the scale and the good steps since it last changed."""
        return dict(scale=self.scale, good_steps=self.good_steps)

    def load_state_dict(self, state):
        """Continue from :meth:`state_dict` (a resumed run keeps its scale)."""
        self.scale = float(state['scale'])
        self.good_steps = int(state['good_steps'])


# One bfloat16 convolution; exits non-zero where oneDNN has no kernel for it.
_BFLOAT16_PROBE = """
import mxnet as mx, numpy as np
bfloat16 = np.dtype([('bfloat16', np.uint16)])
x = mx.nd.amp_cast(mx.nd.ones((1, 1, 4, 4)), dtype=bfloat16)
w = mx.nd.amp_cast(mx.nd.ones((1, 1, 3, 3)), dtype=bfloat16)
mx.nd.Convolution(x, w, kernel=(3, 3), num_filter=1, no_bias=True).wait_to_read()
"""


@functools.lru_cache(maxsize=None)
def cpu_runs_bfloat16():
    """Whether this CPU's oneDNN has bfloat16 kernels.

    oneDNN 2.4.4 (inside mxnet 1.9.1) has them for AVX-512 CPUs only; on an AVX2 one
    (e.g. AMD Zen 3) every bfloat16 convolution fails with "could not create a
    primitive descriptor iterator", which names neither the type nor the CPU. Tried
    in a child process, so that this one's log stays clean.
    """
    probe = subprocess.run([sys.executable, '-c', _BFLOAT16_PROBE], capture_output=True,
                           timeout=120)
    return probe.returncode == 0


def setup_precision(dtype, contexts):
    """Prepare ``dtype`` training on ``contexts``; call before the model is built.

    Returns a :class:`LossScaler` for float16, else None. Raises ValueError for a
    dtype the devices cannot run (bfloat16 is MXNet's oneDNN CPU path, on AVX-512
    CPUs only; float16 its GPU path).
    """
    if dtype not in DTYPES:
        raise ValueError('--dtype must be one of %s; got %r' % (', '.join(DTYPES), dtype))
    if dtype == 'float32':
        return None
    on_gpu = {c.device_type for c in contexts} == {'gpu'}
    if dtype == 'float16' and not on_gpu:
        raise ValueError('--dtype=float16 needs GPUs (MXNet has no float16 CPU kernels for '
                         'these layers); on CPU use --dtype=bfloat16')
    if dtype == 'bfloat16' and on_gpu:
        raise ValueError('--dtype=bfloat16 runs on CPU only in MXNet 1.9 (oneDNN); on GPUs '
                         'use --dtype=float16')
    if dtype == 'bfloat16' and not cpu_runs_bfloat16():
        raise ValueError('--dtype=bfloat16 needs a CPU with AVX-512: the oneDNN 2.4.4 inside '
                         'mxnet 1.9.1 has no bfloat16 kernels for this one; use '
                         '--dtype=float32')
    from mxnet.contrib import amp
    amp.init(target_dtype=dtype)
    logger.info('%s: convolutions and dense layers in %s, RNN and parameters in float32',
                dtype, dtype)
    return LossScaler() if dtype == 'float16' else None


def add_dtype_argument(parser):
    """``--dtype`` for the inference entry points (training has it in its config)."""
    parser.add_argument('--dtype', choices=DTYPES, default='float32',
                        help='arithmetic type of the convolutions and the dense layer: '
                             'bfloat16 on CPU, float16 on GPU; the RNNs stay float32')
    return parser
