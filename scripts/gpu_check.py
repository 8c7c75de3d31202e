"""Self-check of the GPU training path; without a GPU, the same checks on CPU contexts.

    python scripts/gpu_check.py                 # about 2 minutes on a GPU machine
    python scripts/gpu_check.py --json out.json # also write the results as JSON

Prints a Markdown report to paste into a bug report, and exits 1 if a check
failed. The checks, each on this machine's devices (``gpu(0)``, ``gpu(1)``...;
with no GPU ``cpu(1)`` stands in for ``gpu(0)`` against ``cpu(0)``):

1. devices agree: a small DeepSpeech2 on a padded batch gives the same logits,
   CTC loss and gradients on the device as on the CPU, within 1e-3 relative;
2. local reduction: gradients of several devices of one process are summed
   exactly (:meth:`gluon_ds2.distributed.Distributed.allreduce_gradients`);
3. mixed precision: one float16 AMP training step on a GPU (bfloat16 on CPU)
   is finite and moves the weights (skipped on a CPU without AVX-512, where
   oneDNN 2.4.4 has no bfloat16 kernels);
4. Horovod: ``horovodrun -np 2`` averages a gradient across two processes, on
   two GPUs (NCCL when Horovod was built with it) or with Gloo on CPU;
5. throughput: training steps of the reference-size model (800 x 5
   bidirectional LSTM) on one device.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
from mxnet import autograd

from gluon_ds2.atomic import atomic_write_text
from gluon_ds2.config import Config, ModelConfig
from gluon_ds2.distributed import Distributed, setup
from gluon_ds2.loss import CTCLoss
from gluon_ds2.model import DeepSpeech2, output_length
from gluon_ds2.precision import cpu_runs_bfloat16, setup_precision
from gluon_ds2.training import hybridize_for_training, train_step

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 1e-3
NUM_CLASSES = 29
NUM_BINS = Config().audio.num_bins
SMALL_MODEL = ModelConfig(rnn_hidden_size=64, rnn_hidden_layers=2, conv_filters=8)


def run_command(command, timeout=60):
    """stdout of ``command``, or None if it cannot run."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def environment():
    """What the report's first table shows: software, build and GPUs."""
    features = mx.runtime.Features()
    build = [name for name in ('CUDA', 'CUDNN', 'NCCL', 'MKLDNN') if features.is_enabled(name)]
    query = 'index,name,driver_version,memory.total'
    smi = run_command(['nvidia-smi', '--query-gpu=%s,compute_cap' % query,
                       '--format=csv,noheader']) or \
        run_command(['nvidia-smi', '--query-gpu=' + query, '--format=csv,noheader'])
    info = {
        'gluon-ds2': run_command(['git', '-C', REPO_ROOT, 'describe', '--always', '--dirty'])
        or 'unknown',
        'python': platform.python_version(),
        'platform': platform.platform(),
        'mxnet': '%s (%s build; %s)' % (mx.__version__,
                                        'CUDA' if features.is_enabled('CUDA') else 'CPU',
                                        ', '.join(build) or 'no CUDA/cuDNN/NCCL/MKLDNN'),
        'GPUs MXNet sees': str(mx.context.num_gpus()),
        'nvidia-smi': smi.replace('\n', '; ') if smi else 'not found',
        'CUDA_VISIBLE_DEVICES': os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)'),
    }
    try:
        import horovod
        import horovod.mxnet as hvd
        operations = [name for name, built in (('NCCL', hvd.nccl_built()),
                                               ('Gloo', hvd.gloo_built()),
                                               ('MPI', hvd.mpi_built())) if built]
        info['horovod'] = '%s (%s)' % (horovod.__version__, ', '.join(operations) or 'none')
    except ImportError as err:
        info['horovod'] = 'not importable (%s)' % err
    return info


def devices():
    """(reference context, device under test, all devices for the multi-device checks)."""
    gpus = mx.context.num_gpus()
    if gpus:
        return mx.cpu(0), mx.gpu(0), [mx.gpu(i) for i in range(gpus)]
    return mx.cpu(0), mx.cpu(1), [mx.cpu(0), mx.cpu(1)]


def padded_batch(frames, label_lengths, seed=0):
    """Random (features (N, 1, T, bins), feature lengths, labels (N, L) -1-padded, lengths)."""
    rng = np.random.RandomState(seed)
    features = np.zeros((len(frames), 1, max(frames), NUM_BINS), dtype=np.float32)
    labels = -np.ones((len(frames), max(label_lengths)), dtype=np.float32)
    for i, (t, length) in enumerate(zip(frames, label_lengths)):
        features[i, 0, :t] = rng.randn(t, NUM_BINS)
        labels[i, :length] = rng.randint(0, NUM_CLASSES - 1, length)
    return (mx.nd.array(features), mx.nd.array(frames), mx.nd.array(labels),
            mx.nd.array(label_lengths))


def build(model_config, contexts):
    """A hybridized model, initialized on ``contexts`` (the same values on each)."""
    mx.random.seed(1)
    net = DeepSpeech2.from_config(model_config, NUM_CLASSES, NUM_BINS)
    net.initialize(ctx=contexts)
    hybridize_for_training(net)
    with autograd.train_mode():  # deferred initialization, as training does
        for ctx in contexts:
            net(mx.nd.zeros((1, 1, 64, NUM_BINS), ctx=ctx), mx.nd.array([64], ctx=ctx))
    return net


def relative(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def check_devices_agree(reference, device):
    """Logits, loss and gradients of one padded batch on ``device`` vs ``reference``."""
    net = build(SMALL_MODEL, [reference, device])
    features, lengths, labels, label_lengths = padded_batch([240, 170, 96], [20, 14, 6])
    out_lengths = output_length(lengths.asnumpy().astype(np.int64))
    results = {}
    for ctx in (reference, device):
        with autograd.record():
            logits = net(features.as_in_context(ctx), lengths.as_in_context(ctx))
            loss = CTCLoss()(logits, labels.as_in_context(ctx),
                             mx.nd.array(out_lengths, ctx=ctx), label_lengths.as_in_context(ctx))
        loss.backward()
        valid = [logits[i, :n].asnumpy() for i, n in enumerate(out_lengths)]
        grads = {name: p.grad(ctx).asnumpy() for name, p in net.collect_params().items()
                 if p.grad_req != 'null'}
        results[ctx] = (np.concatenate([v.ravel() for v in valid]), loss.asnumpy(), grads)
    (ref_logits, ref_loss, ref_grads), (logits, loss, grads) = results[reference], results[device]
    worst = max(ref_grads, key=lambda name: relative(grads[name], ref_grads[name]))
    figures = dict(logits=relative(logits, ref_logits), loss=relative(loss, ref_loss),
                   gradient=relative(grads[worst], ref_grads[worst]))
    ok = all(np.isfinite(v) and v <= TOLERANCE for v in figures.values())
    detail = ('%s vs %s, padded batch of 3 (240/170/96 frames): relative difference of logits '
              '%.1e, loss %.1e, worst gradient %.1e (%s); limit %g'
              % (device, reference, figures['logits'], figures['loss'], figures['gradient'],
                 worst, TOLERANCE))
    return ok, detail, figures


def check_local_reduction(contexts):
    """Each device's gradient differs; after the reduction every device holds their sum."""
    dense = mx.gluon.nn.Dense(4, in_units=3)
    dense.initialize(ctx=contexts)
    inputs = [mx.nd.full((2, 3), i + 1, ctx=ctx) for i, ctx in enumerate(contexts)]
    with autograd.record():
        outputs = [dense(x).sum() for x in inputs]
    autograd.backward(outputs)
    expected = sum(dense.weight.grad(ctx).asnumpy() for ctx in contexts)
    Distributed().allreduce_gradients(dense.collect_params().values())
    error = max(relative(dense.weight.grad(ctx).asnumpy(), expected) for ctx in contexts)
    ok = error <= 1e-6
    return ok, 'summed over %s: largest relative error %.1e' % (
        ', '.join(str(c) for c in contexts), error), dict(error=error)


def mixed_precision_step(device):
    """One AMP training step on ``device`` (run in its own process: AMP patches MXNet)."""
    dtype = 'float16' if device.device_type == 'gpu' else 'bfloat16'
    scaler = setup_precision(dtype, [device])
    net = build(SMALL_MODEL, [device])
    before = {name: p.data(device).asnumpy() for name, p in net.collect_params().items()}
    trainer = Distributed.make_trainer(net.collect_params(), 'adam', {'learning_rate': 1e-3})
    loss, norm, finite = train_step(net, trainer, CTCLoss(), padded_batch([240, 170, 96],
                                                                         [20, 14, 6]) + ([],),
                                    [device], Distributed(), 400.0,
                                    scaler.scale if scaler else 1.0)
    moved = sum(not np.array_equal(p.data(device).asnumpy(), before[name])
                for name, p in net.collect_params().items() if p.grad_req != 'null')
    return dict(dtype=dtype, loss=loss, norm=norm, finite=finite, moved=moved,
                params=sum(1 for p in net.collect_params().values() if p.grad_req != 'null'))


def check_mixed_precision(device):
    if device.device_type == 'cpu' and not cpu_runs_bfloat16():
        return None, ('this CPU has no bfloat16 kernels in oneDNN 2.4.4 (they need AVX-512): '
                      'not run'), {}
    result = child_json([sys.executable, os.path.abspath(__file__), '--child', 'amp',
                         '--device', '%s:%d' % (device.device_type, device.device_id)])
    if 'error' in result:
        return False, result['error'], result
    ok = result['finite'] and np.isfinite(result['loss']) and result['moved'] == result['params']
    return ok, ('%s AMP step on %s: loss %.3f, gradient norm %.3f, %d/%d parameters moved'
                % (result['dtype'], device, result['loss'], result['norm'], result['moved'],
                   result['params'])), result


def allreduce_rank():
    """One rank of the Horovod check: gradient rank + 1 on its device, averaged."""
    dist = setup()
    ctx = mx.gpu(dist.local_rank) if mx.context.num_gpus() >= 2 else mx.cpu()
    dense = mx.gluon.nn.Dense(1000, in_units=1, use_bias=False)
    dense.initialize(ctx=ctx)
    dense.weight.grad(ctx)[:] = dist.rank + 1
    dist.allreduce_gradients(dense.collect_params().values())
    values = dense.weight.grad(ctx).asnumpy()
    return dict(rank=dist.rank, device=str(ctx), min=float(values.min()),
                max=float(values.max()), horovod=dist.describe())


def check_horovod(gpus):
    horovodrun = os.path.join(os.path.dirname(sys.executable), 'horovodrun')
    if not os.path.exists(horovodrun):
        horovodrun = shutil.which('horovodrun')
    if not horovodrun:
        return None, 'horovodrun not found', {}
    command = [horovodrun, '-np', '2', '-H', 'localhost:2'] + ([] if gpus >= 2 else ['--gloo'])
    command += [sys.executable, os.path.abspath(__file__), '--child', 'allreduce']
    try:
        output = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return False, '%s did not finish in 120 s' % ' '.join(command), {}
    ranks = [json.loads(line[line.index('{'):]) for line in output.stdout.splitlines()
             if '{"rank"' in line]
    if output.returncode or len(ranks) != 2:
        return False, 'horovodrun failed (exit %d): %s' % (
            output.returncode, (output.stdout + output.stderr)[-1500:]), {}
    ok = all(r['min'] == r['max'] == 1.5 for r in ranks)
    where = 'GPUs' if gpus >= 2 else 'CPU (Gloo; fewer than 2 GPUs)'
    return ok, ('horovodrun -np 2 on %s: gradients 1 and 2 averaged to %s on %s; %s' % (
        where, sorted({r['min'] for r in ranks} | {r['max'] for r in ranks}),
        ', '.join(r['device'] for r in ranks), ranks[0]['horovod'])), dict(ranks=ranks)


def check_throughput(device, batch_size, seconds, steps):
    """Steps per second of the reference-size model on one device, after one warm-up step."""
    frames = int(seconds * 100)
    net = build(Config().model, [device])
    trainer = Distributed.make_trainer(net.collect_params(), 'adam', {'learning_rate': 1e-4})
    label_length = min(int(seconds * 15), output_length(frames) // 2)
    batch = padded_batch([frames] * batch_size, [label_length] * batch_size) + ([],)
    timings = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        train_step(net, trainer, CTCLoss(), batch, [device], Distributed(), 400.0)
        mx.nd.waitall()
        timings.append(time.perf_counter() - start)
    step = float(np.median(timings[1:]))
    figures = dict(batch_size=batch_size, utterance_seconds=seconds, step_s=step,
                   utterances_per_s=batch_size / step, audio_s_per_s=batch_size * seconds / step,
                   warmup_s=timings[0])
    return True, ('reference model (800x5 bi-LSTM, 32 filters) on %s, batch %d x %g s: %.2f s '
                  'per step (median of %d, first step %.1f s), %.1f utterances/s, %.0f s of '
                  'audio per s' % (device, batch_size, seconds, step, steps, timings[0],
                                   figures['utterances_per_s'], figures['audio_s_per_s'])), figures


def child_json(command):
    """The last JSON line a child process prints, or {'error': ...}."""
    try:
        output = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return dict(error='%s did not finish in 300 s' % ' '.join(command))
    lines = [line for line in output.stdout.splitlines() if line.startswith('{')]
    if output.returncode or not lines:
        return dict(error='exit %d: %s' % (output.returncode, output.stderr[-1500:]))
    return json.loads(lines[-1])


def guarded(check, *args):
    """``check(*args)``, or a failed result naming the exception (e.g. no kernel image)."""
    try:
        return check(*args)
    except Exception as err:  # the report must still come out
        return False, 'error: %s: %s' % (type(err).__name__, str(err).splitlines()[0][:300]), {}


def report(info, checks, gpus):
    command = ' '.join(['python scripts/gpu_check.py'] + sys.argv[1:])
    lines = ['## gluon-ds2 gpu_check', '', '    ' + command, '', '| | |', '|---|---|']
    lines += ['| %s | %s |' % (key, value) for key, value in info.items()]
    lines += ['', '| check | result | detail |', '|---|---|---|']
    for name, (ok, detail, _) in checks.items():
        result = 'SKIP' if ok is None else 'PASS' if ok else 'FAIL'
        lines.append('| %s | %s | %s |' % (name, result, detail.replace('|', '/')))
    lines.append('')
    if not gpus:
        lines.append('No GPU was found: the checks ran on CPU contexts (cpu(1) in place of '
                     'gpu(0)). On a GPU machine they compare gpu(0) with the CPU.')
    lines.append('mxnet-cu112 1.9.1 carries GPU kernels for compute capabilities 5.0, 6.0, 7.0, '
                 '8.0 and 8.6 (no PTX): Maxwell to Ampere and Ada run, Hopper (9.0) and later '
                 'fail with "no kernel image is available".')
    failed = [name for name, (ok, _, _) in checks.items() if ok is False]
    lines.append('Result: %s' % ('FAILED: ' + ', '.join(failed) if failed else
                                 'all checks passed'))
    return '\n'.join(lines), not failed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--batch_size', type=int, default=None,
                        help='throughput batch (default: 32 on a GPU, 2 on CPU)')
    parser.add_argument('--utterance_seconds', type=float, default=None,
                        help='throughput utterance length (default: 10 on a GPU, 2 on CPU)')
    parser.add_argument('--steps', type=int, default=None,
                        help='timed throughput steps (default: 5 on a GPU, 1 on CPU)')
    parser.add_argument('--json', default=None, help='also write the results to this file')
    parser.add_argument('--child', choices=('amp', 'allreduce'), help=argparse.SUPPRESS)
    parser.add_argument('--device', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == 'amp':
        kind, index = args.device.split(':')
        print(json.dumps(mixed_precision_step(mx.Context(kind, int(index)))))
        return 0
    if args.child == 'allreduce':
        print(json.dumps(allreduce_rank()))
        return 0

    info = environment()
    gpus = mx.context.num_gpus()
    reference, device, all_devices = devices()
    checks = {}
    checks['devices agree'] = guarded(check_devices_agree, reference, device)
    checks['local gradient reduction'] = guarded(check_local_reduction, all_devices)
    checks['mixed precision step'] = guarded(check_mixed_precision, device)
    checks['horovodrun -np 2 allreduce'] = guarded(check_horovod, gpus)
    checks['throughput'] = guarded(
        check_throughput, device if gpus else reference, args.batch_size or (32 if gpus else 2),
        args.utterance_seconds or (10.0 if gpus else 2.0), args.steps or (5 if gpus else 1))
    text, passed = report(info, checks, gpus)
    print(text)
    if args.json:
        atomic_write_text(args.json, json.dumps(dict(
            environment=info, gpus=gpus, passed=passed,
            checks={name: dict(ok=ok, detail=detail, figures=figures)
                    for name, (ok, detail, figures) in checks.items()}), indent=2) + '\n')
    return 0 if passed else 1


if __name__ == '__main__':
    sys.exit(main())
