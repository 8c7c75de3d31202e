"""Which devices a process computes on: ``--devices``, ``--num_gpus``, ``CUDA_VISIBLE_DEVICES``.

A process drives one or more devices. Alone it takes what the flags ask for;
under Horovod (``local_size`` processes on this host) each process takes its
own share of the host's GPUs, by local rank, unless the scheduler already
pinned each process to its own GPU(s) through ``CUDA_VISIBLE_DEVICES`` (SLURM,
Kubernetes): then every process sees its own devices as ``gpu(0)``,
``gpu(1)``... and uses those.

``--devices=cpu:0,cpu:1`` gives one process two CPU contexts: MXNet keeps
their arrays apart like two GPUs', which is how the multi-device path is
tested on machines without one.
"""
import os

import mxnet as mx

__all__ = ['parse_devices', 'select_devices', 'describe_devices', 'ctc_label_limit',
           'GPU_CTC_MAX_LABELS']


def parse_devices(text):
    """``'gpu:0,gpu:1'`` or ``'cpu:0,cpu:1'`` (or ``'gpu'``, ``'cpu'``) -> list of mx.Context."""
    devices = []
    for item in str(text).split(','):
        kind, _, index = item.strip().lower().partition(':')
        if kind not in ('cpu', 'gpu') or (index and not index.isdigit()):
            raise ValueError('--devices=%s: %r is not a device; write e.g. gpu:0,gpu:1 or '
                             'cpu:0,cpu:1' % (text, item))
        devices.append(mx.Context(kind, int(index or 0)))
    if len(set(devices)) != len(devices):
        raise ValueError('--devices=%s names a device twice' % text)
    return devices


# MXNet 1.9's GPU CTC (its copy of warp-ctc, ctc_include/detail/gpu_ctc.h) keeps a label
# and its blanks, 2 L + 1 values, in one thread block of at most 128 threads x 10 values:
# L <= 639. A longer label fails the step (CTC_STATUS_UNKNOWN_ERROR). The CPU kernel has no
# such ceiling.
GPU_CTC_MAX_LABELS = 639


def ctc_label_limit(contexts):
    """The most labels one transcript may have on ``contexts`` (None: no limit)."""
    return GPU_CTC_MAX_LABELS if any(c.device_type == 'gpu' for c in contexts) else None


def _pinned(environ):
    """True when the scheduler set which GPUs this process sees."""
    return bool(environ.get('CUDA_VISIBLE_DEVICES', '').strip())


def select_devices(devices=None, num_gpus=None, local_rank=0, local_size=1, visible=None,
                   environ=None):
    """This process's devices.

    Parameters
    ----------
    devices : str or None
        ``--devices``; overrides ``num_gpus``.
    num_gpus : int or None
        ``--num_gpus``: None = 1 if a GPU is visible, else 0 (the reference's
        default); -1 = all of this process's GPUs (the CPU if there are none); 0 = the CPU.
    local_rank, local_size : int
        This process's place among the processes of this host (Horovod).
    visible : int or None
        GPUs this process sees (default: ``mx.context.num_gpus()``).
    environ : mapping or None
        Where ``CUDA_VISIBLE_DEVICES`` is read (default ``os.environ``).

    Returns
    -------
    list of mx.Context
    """
    visible = mx.context.num_gpus() if visible is None else visible
    environ = os.environ if environ is None else environ
    if devices:
        chosen = parse_devices(devices)
        gpus = [d.device_id for d in chosen if d.device_type == 'gpu']
        if gpus and max(gpus) >= visible:
            raise ValueError('--devices=%s but %d GPU(s) are visible' % (devices, visible))
        if gpus and local_size > 1 and not _pinned(environ):
            raise ValueError('--devices=%s names GPUs that all %d processes on this host would '
                             'share; use --num_gpus=%d (each process takes its own) or pin '
                             'GPUs per process with CUDA_VISIBLE_DEVICES'
                             % (devices, local_size, len(gpus)))
        return chosen
    if num_gpus is None or (num_gpus == -1 and not visible):
        # The reference's default, and "all GPUs" on a host that has none: the CPU.
        num_gpus = 1 if visible else 0
    if num_gpus == 0:
        return [mx.cpu()]
    pinned = local_size > 1 and _pinned(environ) and visible < local_size * max(num_gpus, 1)
    if local_size == 1 or pinned:
        num_gpus = visible if num_gpus == -1 else num_gpus
        if num_gpus > visible:
            raise ValueError('--num_gpus=%d but %d GPU(s) are visible' % (num_gpus, visible))
        return [mx.gpu(i) for i in range(num_gpus)]
    per_process = visible // local_size if num_gpus == -1 else num_gpus
    first = local_rank * per_process
    if per_process == 0 or first + per_process > visible:
        raise ValueError('process %d on this host (local rank) has no GPU of its own: %d '
                         'visible, %d wanted by each of %d processes. Start at most %d processes '
                         'per host (horovodrun -np / -H host:N), pin one GPU per process with '
                         'CUDA_VISIBLE_DEVICES, or pass --num_gpus=0 to train on CPUs.'
                         % (local_rank, visible, max(per_process, 1), local_size,
                            visible // max(per_process, 1)))
    return [mx.gpu(i) for i in range(first, first + per_process)]


def describe_devices(contexts):
    """One line for the log: the devices and the MXNet build that drives them."""
    features = mx.runtime.Features()
    build = 'CUDA build' if features.is_enabled('CUDA') else 'CPU build'
    if features.is_enabled('CUDNN'):
        build += ' with cuDNN'
    return 'MXNet %s (%s), devices %s' % (mx.__version__, build,
                                           ', '.join(str(c) for c in contexts))
