"""How many OpenMP threads train fastest on this CPU: measured, not assumed.

More threads are not always faster. On some 2-core virtual machines oneDNN's LSTM
runs each time step's small matrix products three times slower on two threads than on
one (the threads synchronise at every step), while the convolutions scale: a demo-size
training step took 0.45 s on two threads and 0.27 s on one there, and a reference-size
one 3.5 s on two and 6.1 s on one. On other CPUs two threads win at both sizes.

So when nobody chose a thread count (no ``--num_threads``, no ``OMP_NUM_THREADS``) and a
lone process trains on the CPU, ``train.py`` times the run's own model for a few
training steps on a synthetic batch, in one child process per candidate count: the
default share (:func:`gluon_ds2.threads.default_threads`), then half of it, down to one.
A smaller count is taken only when it is at least ``MARGIN`` faster, so a close call
keeps the default, and the thread count (which changes how float32 sums round) does not
flip between runs. The result is kept in ``<model_dir>/threads.json``: a resumed run
reuses it (same count, same arithmetic) on the same CPU and model.

The parent side (:func:`choose_threads`) imports nothing heavy: MXNet reads
``OMP_NUM_THREADS`` once, when imported, so each count is timed in its own process
(``python -m gluon_ds2.thread_probe``), and the parent decides before it imports MXNet.
"""
import dataclasses
import json
import logging
import os
import statistics
import subprocess
import sys
import time

from gluon_ds2.atomic import atomic_write_text

__all__ = ['choose_threads', 'pick_threads', 'candidate_counts', 'cpu_name', 'MARGIN',
           'RECORD']

logger = logging.getLogger(__name__)

MARGIN = 0.9       # a smaller count must take at most this share of the best time so far
RECORD = 'threads.json'
SECONDS = 5        # synthetic utterances of 5 s
WARMUP, TIMED = 2, 3


def candidate_counts(share):
    """``share``, then halved down to 1: 8 -> [8, 4, 2, 1]."""
    counts = [share]
    while counts[-1] > 1:
        counts.append(counts[-1] // 2)
    return counts


def pick_threads(times):
    """The count to train with, from ``{count: seconds per step}`` (largest count first).

    Starts at the largest count and moves to a smaller one only when that one takes at
    most ``MARGIN`` of the current choice's time.
    """
    counts = sorted(times, reverse=True)
    best = counts[0]
    for count in counts[1:]:
        if times[count] <= MARGIN * times[best]:
            best = count
    return best


def cpu_name():
    """The CPU's model name (``/proc/cpuinfo``), or the platform's word for it."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def _probe_spec(cfg):
    """What the child needs to rebuild the run's model and batch (plain JSON)."""
    return dict(model=dataclasses.asdict(cfg.model), num_bins=cfg.audio.num_bins,
                batch_size=cfg.train.batch_size, devices=cfg.train.devices,
                num_gpus=cfg.train.num_gpus)


def _time_in_child(spec, threads, timeout):
    """Seconds per training step with ``threads`` OpenMP threads, or 'gpu', from a child."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    result = subprocess.run([sys.executable, '-m', 'gluon_ds2.thread_probe', json.dumps(spec)],
                            capture_output=True, text=True, env=env, timeout=timeout)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ['no output'])[-1]
        raise RuntimeError('the probe with %d threads failed: %s' % (threads, last))
    return json.loads(result.stdout.strip().splitlines()[-1])['seconds']


def choose_threads(cfg, share, timeout=600):
    """The OpenMP thread count for this run: measured once, then read back.

    ``share`` is the default count (:func:`gluon_ds2.threads.default_threads`). Returns
    ``share`` when it is 1, when the run trains on a GPU, or when a probe fails (logged).
    """
    if share <= 1:
        return share
    spec = _probe_spec(cfg)
    key = dict(spec, cpu=cpu_name(), share=share)
    path = os.path.join(cfg.train.model_dir, RECORD)
    try:
        with open(path) as f:
            record = json.load(f)
        if record.get('key') == key:
            logger.info('OpenMP threads: %d, as measured for this run (%s)',
                        record['threads'], path)
            return record['threads']
    except (OSError, ValueError, KeyError, TypeError):
        pass
    times = {}
    started = time.time()
    try:
        for count in candidate_counts(share):
            seconds = _time_in_child(spec, count, timeout)
            if seconds == 'gpu':
                return share
            times[count] = seconds
            if len(times) > 1 and seconds > times[pick_threads(times)]:
                break  # slower than the choice so far: fewer threads will not win
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as err:
        logger.warning('OpenMP threads: %d (the default; timing the choices failed: %s)',
                       share, err)
        return share
    threads = pick_threads(times)
    logger.info('OpenMP threads: %d, the fastest training step of this model here (%s; %.0f s '
                'to measure)', threads, ', '.join('%d: %.3f s' % (count, times[count])
                                                 for count in sorted(times, reverse=True)),
                time.time() - started)
    try:
        os.makedirs(cfg.train.model_dir, exist_ok=True)
        atomic_write_text(path, json.dumps(dict(key=key, threads=threads, seconds={
            str(count): seconds for count, seconds in times.items()}), indent=2, sort_keys=True))
    except OSError as err:  # training reports an unwritable model_dir itself
        logger.warning('could not record the thread count in %s: %s', path, err)
    return threads


def _time_training_step(spec):
    """In the child: median seconds of a training step of the run's model, or 'gpu'."""
    import numpy as np
    import mxnet as mx
    from mxnet import autograd

    from gluon_ds2.config import ModelConfig
    from gluon_ds2.devices import select_devices
    from gluon_ds2.loss import CTCLoss
    from gluon_ds2.model import DeepSpeech2, output_length
    from gluon_ds2.training import hybridize_for_training

    contexts = select_devices(spec['devices'], spec['num_gpus'])
    if any(c.device_type == 'gpu' for c in contexts):
        return 'gpu'
    batch, frames = spec['batch_size'], SECONDS * 100
    rng = np.random.RandomState(0)
    features = mx.nd.array(rng.randn(batch, 1, frames, spec['num_bins']))
    lengths = mx.nd.array([frames] * batch)
    label_length = SECONDS * 14  # about the rate of read speech
    labels = mx.nd.array(rng.randint(0, 28, (batch, label_length)))
    label_lengths = mx.nd.array([label_length] * batch)
    out_lengths = mx.nd.array([output_length(frames)] * batch)
    net = DeepSpeech2.from_config(ModelConfig(**spec['model']), 29, spec['num_bins'])
    net.initialize()
    hybridize_for_training(net)
    trainer = mx.gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 1e-6})
    loss_fn = CTCLoss()
    times = []
    for step in range(WARMUP + TIMED):
        started = time.perf_counter()
        with autograd.record():
            loss = loss_fn(net(features, lengths), labels, out_lengths, label_lengths)
        loss.backward()
        trainer.step(batch)
        mx.nd.waitall()
        if step >= WARMUP:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


if __name__ == '__main__':
    print(json.dumps({'seconds': _time_training_step(json.loads(sys.argv[1]))}))
