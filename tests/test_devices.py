"""Device selection: flags, Horovod's local rank, and GPUs pinned by the scheduler."""
import mxnet as mx
import pytest

from gluon_ds2.devices import (GPU_CTC_MAX_LABELS, ctc_label_limit, describe_devices,
                               parse_devices, select_devices)


def test_parse_devices():
    assert parse_devices('gpu:0,gpu:1') == [mx.gpu(0), mx.gpu(1)]
    assert parse_devices(' CPU:0 , cpu:1') == [mx.cpu(0), mx.cpu(1)]
    assert parse_devices('cpu') == [mx.cpu(0)]


@pytest.mark.parametrize('text, message', [
    ('tpu:0', "--devices=tpu:0: 'tpu:0' is not a device; write e.g. gpu:0,gpu:1 or cpu:0,cpu:1"),
    ('gpu:x', "--devices=gpu:x: 'gpu:x' is not a device"),
    ('cpu:0,cpu:0', '--devices=cpu:0,cpu:0 names a device twice'),
])
def test_parse_devices_rejects(text, message):
    with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)')):
        parse_devices(text)


NO_PIN = {}
PINNED = {'CUDA_VISIBLE_DEVICES': '3'}


@pytest.mark.parametrize('devices, num_gpus, local_rank, local_size, visible, environ, expected', [
    (None, None, 0, 1, 0, NO_PIN, [mx.cpu()]),                # no GPU: the CPU
    (None, None, 0, 1, 4, NO_PIN, [mx.gpu(0)]),               # the reference's default: one GPU
    (None, -1, 0, 1, 3, NO_PIN, [mx.gpu(0), mx.gpu(1), mx.gpu(2)]),
    (None, -1, 0, 1, 0, NO_PIN, [mx.cpu()]),                  # "all" of no GPU: the CPU
    (None, -1, 1, 2, 0, NO_PIN, [mx.cpu()]),                  # ... under Horovod too
    (None, 0, 0, 1, 2, NO_PIN, [mx.cpu()]),                   # --num_gpus=0 forces the CPU
    ('cpu:0,cpu:1', 2, 0, 1, 2, NO_PIN, [mx.cpu(0), mx.cpu(1)]),  # --devices wins
    (None, None, 1, 2, 2, NO_PIN, [mx.gpu(1)]),               # Horovod: one GPU by local rank
    (None, -1, 0, 2, 2, NO_PIN, [mx.gpu(0)]),                 # "all": its own share
    (None, 2, 1, 2, 4, NO_PIN, [mx.gpu(2), mx.gpu(3)]),       # two GPUs per process
    (None, -1, 1, 2, 4, NO_PIN, [mx.gpu(2), mx.gpu(3)]),
    (None, None, 5, 8, 1, PINNED, [mx.gpu(0)]),               # pinned: its one visible GPU
    (None, -1, 5, 8, 2, PINNED, [mx.gpu(0), mx.gpu(1)]),
    ('gpu:0', None, 5, 8, 1, PINNED, [mx.gpu(0)]),
    ('cpu:0,cpu:1', None, 1, 2, 0, NO_PIN, [mx.cpu(0), mx.cpu(1)]),
])
def test_select_devices(devices, num_gpus, local_rank, local_size, visible, environ, expected):
    assert select_devices(devices, num_gpus, local_rank, local_size, visible=visible,
                          environ=environ) == expected


@pytest.mark.parametrize('devices, num_gpus, local_rank, local_size, visible, environ, message', [
    (None, 2, 0, 1, 1, NO_PIN, '--num_gpus=2 but 1 GPU(s) are visible'),
    ('gpu:1', None, 0, 1, 1, NO_PIN, '--devices=gpu:1 but 1 GPU(s) are visible'),
    (None, None, 2, 4, 2, NO_PIN,
     'process 2 on this host (local rank) has no GPU of its own: 2 visible, 1 wanted by each of '
     '4 processes. Start at most 2 processes per host'),
    (None, None, 1, 2, 1, NO_PIN, 'process 1 on this host (local rank) has no GPU of its own'),
    ('gpu:0,gpu:1', None, 0, 2, 2, NO_PIN,
     '--devices=gpu:0,gpu:1 names GPUs that all 2 processes on this host would share; use '
     '--num_gpus=2'),
])
def test_select_devices_errors(devices, num_gpus, local_rank, local_size, visible, environ,
                               message):
    with pytest.raises(ValueError) as error:
        select_devices(devices, num_gpus, local_rank, local_size, visible=visible,
                       environ=environ)
    assert message in str(error.value)


def test_describe_devices_names_the_build():
    line = describe_devices([mx.cpu(0), mx.cpu(1)])
    assert line.startswith('MXNet %s (' % mx.__version__)
    assert 'cpu(0), cpu(1)' in line
    cuda = mx.runtime.Features().is_enabled('CUDA')
    assert ('CUDA build' in line) == cuda and ('CPU build' in line) != cuda


def test_ctc_label_limit_applies_to_gpus_only():
    assert ctc_label_limit([mx.cpu(0), mx.cpu(1)]) is None
    assert ctc_label_limit([mx.gpu(0)]) == GPU_CTC_MAX_LABELS == 639
