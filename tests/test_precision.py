"""--dtype: the loss scaler's logic, the device checks, and a bfloat16 training step."""
import os
import subprocess
import sys

import mxnet as mx
import pytest

from conftest import needs_bfloat16
from gluon_ds2 import precision
from gluon_ds2.precision import LossScaler, cpu_runs_bfloat16, setup_precision


def test_overflow_halves_the_scale_and_skips_the_step():
    scaler = LossScaler(scale=1024.0, growth_interval=3)
    assert scaler.update(finite=True) is True
    assert scaler.update(finite=False) is False
    assert scaler.scale == 512.0
    assert scaler.update(finite=False) is False
    assert scaler.scale == 256.0


def test_scale_grows_after_enough_good_steps_in_a_row():
    scaler = LossScaler(scale=8.0, growth_interval=3)
    for _ in range(2):
        scaler.update(finite=True)
    assert scaler.scale == 8.0
    scaler.update(finite=False)  # the count starts again
    assert scaler.scale == 4.0
    for _ in range(2):
        scaler.update(finite=True)
    assert scaler.scale == 4.0
    scaler.update(finite=True)
    assert scaler.scale == 8.0
    for _ in range(3):
        scaler.update(finite=True)
    assert scaler.scale == 16.0


def test_scale_stops_at_its_floor():
    scaler = LossScaler(scale=4.0, growth_interval=10, min_scale=1.0)
    for _ in range(5):
        assert scaler.update(finite=False) is False
    assert scaler.scale == 1.0


def test_bad_scaler_settings():
    with pytest.raises(ValueError, match='growth_interval >= 1'):
        LossScaler(growth_interval=0)


@pytest.mark.parametrize('dtype, contexts, message', [
    ('float16', [mx.cpu()], '--dtype=float16 needs GPUs'),
    ('bfloat16', [mx.gpu(0)], '--dtype=bfloat16 runs on CPU only'),
    ('float64', [mx.cpu()], "--dtype must be one of float32, bfloat16, float16; got 'float64'"),
])
def test_dtype_the_devices_cannot_run_is_refused(dtype, contexts, message):
    with pytest.raises(ValueError, match=message):
        setup_precision(dtype, contexts)


def test_bfloat16_on_a_cpu_without_its_kernels_is_refused_before_amp(monkeypatch):
    monkeypatch.setattr(precision, 'cpu_runs_bfloat16', lambda: False)
    with pytest.raises(ValueError) as info:
        setup_precision('bfloat16', [mx.cpu()])
    assert str(info.value) == ('--dtype=bfloat16 needs a CPU with AVX-512: the oneDNN 2.4.4 '
                               'inside mxnet 1.9.1 has no bfloat16 kernels for this one; use '
                               '--dtype=float32')


@pytest.mark.skipif(not os.path.exists('/proc/cpuinfo') or 'DNNL_MAX_CPU_ISA' in os.environ,
                    reason='reads the CPU flags Linux reports')
def test_bfloat16_kernels_are_there_exactly_on_avx512_cpus():
    """oneDNN's bfloat16 kernels start at its avx512_core ISA: AVX-512 F, BW, VL and DQ."""
    flags = set()
    for line in open('/proc/cpuinfo'):
        if line.startswith('flags'):
            flags.update(line.split(':', 1)[1].split())
    avx512_core = {'avx512f', 'avx512bw', 'avx512vl', 'avx512dq'} <= flags
    assert cpu_runs_bfloat16() == avx512_core


def test_float32_changes_nothing():
    assert setup_precision('float32', [mx.cpu()]) is None


BFLOAT16_STEP = r'''
import numpy as np, mxnet as mx
from mxnet import autograd
from gluon_ds2.precision import setup_precision
assert setup_precision('bfloat16', [mx.cpu()]) is None
from gluon_ds2.loss import CTCLoss
from gluon_ds2.model import DeepSpeech2, output_length
mx.random.seed(0)
net = DeepSpeech2(29, num_bins=81, rnn_hidden_size=8, rnn_hidden_layers=2, conv_filters=4)
net.initialize()
net.hybridize(static_alloc=True)
rng = np.random.RandomState(0)
x = mx.nd.array(rng.randn(2, 1, 96, 81))
lengths = mx.nd.array([96, 70])
labels = mx.nd.array(rng.randint(0, 28, (2, 5)))
trainer = mx.gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 1e-3})
with autograd.record():
    loss = CTCLoss()(net(x, lengths), labels, output_length(lengths), mx.nd.array([5, 5]))
loss.backward()
trainer.step(2)
symbol = net._cached_graph[1].tojson(remove_amp_cast=False)
print('amp_cast' in symbol, float(loss.sum().asscalar()),
      all(np.isfinite(p.data().asnumpy()).all() for p in net.collect_params().values()))
'''


@needs_bfloat16
def test_bfloat16_training_step_casts_and_stays_finite():
    """In a fresh process (amp.init patches MXNet for the whole process)."""
    result = subprocess.run([sys.executable, '-c', BFLOAT16_STEP], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    cast, loss, finite = result.stdout.split()
    assert cast == 'True'  # AMP put casts around the reduced-precision layers
    assert float(loss) > 0 and finite == 'True'
