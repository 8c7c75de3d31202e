"""Speed of the DeepSpeech2 step against its own baselines, measured in one run.

    python scripts/bench_model.py
    python scripts/bench_model.py --sizes reference --rounds 3 --out /tmp/model_speed

For the demo size (3 x 192 LSTM, 16 conv filters, 81 bins: run.sh's demo model until
2026-12-07, which trains 4 x 144 at the same speed since; the README's tables are this size)
and the reference size (5 x 800 LSTM, 32 filters, 161 bins) it times, alternating the models
round by round:

* ``ours``: :class:`gluon_ds2.model.DeepSpeech2`, exact on padded batches,
  hybridized as ``train.py`` hybridizes it for the training step, and as
  ``evaluate.py``, ``transcribe.py`` and exports do for inference
  (:func:`gluon_ds2.export.hybridize_for_inference`);
* ``plain``: the plain Gluon model written below as the baseline: the same convs
  and BatchNorms, one fused ``rnn.LSTM(bidirectional=True)`` per layer, no
  masking (padding leaks into every utterance), ``static_shape=True``;

each in three modes: a training step (forward, CTC, backward, Adam) on 8
utterances, and inference (forward only) on 1 and on 8 utterances, all of
``--seconds`` seconds of noise (the arithmetic does not depend on what is said),
with 14 label characters per second, about the rate of read speech.

It also measures the float32 sgemm rate in the same process (once per round),
through oneDNN as the model's kernels run (until 2026-12-07 it was OpenBLAS's
``mx.nd.dot``, which no model operator uses and which runs SSE3 kernels on CPUs
newer than its OpenBLAS: :func:`openblas_core`; both are recorded), and counts
each configuration's model FLOPs (:func:`gluon_ds2.model.forward_flops`; a training
step counts 3 x forward). ``ours / plain`` is the time ratio, and ``of sgemm`` is
model FLOPs / time / sgemm rate: how much of the machine a step uses.

Writes ``<out>.json``, ``<out>.md`` (the table), ``<out>.png`` (bar chart) and
``<out>_profile.txt``: for each size, the share of operator time of each operator
(forward and backward together) and MXNet's profiler per-operator table, over
``--profile_steps`` training steps of ``ours``. OMP_NUM_THREADS defaults to the host's
cores (``--threads``).
"""
import argparse
import gc
import json
import os
import statistics
import sys
import time

SIZES = {
    'demo': dict(rnn_hidden_size=192, rnn_hidden_layers=3, conv_filters=16, max_freq=4000),
    'reference': dict(rnn_hidden_size=800, rnn_hidden_layers=5, conv_filters=32, max_freq=None),
}
MODES = (('train', 8), ('infer', 1), ('infer', 8))
CHARACTERS_PER_SECOND = 14
NUM_CLASSES = 29


def plain_model(model_cfg, num_bins):
    """The baseline: fused bidirectional LSTMs, no masking, time-major RNN stack."""
    from mxnet import gluon
    from mxnet.gluon import nn, rnn

    from gluon_ds2.model import CONV_LAYERS

    class PlainDeepSpeech2(gluon.HybridBlock):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            m = model_cfg
            with self.name_scope():
                self.body = nn.HybridSequential()
                for layer in CONV_LAYERS:
                    self.body.add(nn.Conv2D(m.conv_filters, use_bias=False, **layer),
                                  nn.HybridLambda(lambda F, x: F.clip(x, 0, 6)),
                                  nn.BatchNorm(axis=1))
                self.rnns = nn.HybridSequential()
                for index in range(m.rnn_hidden_layers):
                    if index > 0:
                        self.rnns.add(nn.BatchNorm(axis=2))
                    self.rnns.add(rnn.LSTM(m.rnn_hidden_size, bidirectional=True, layout='TNC'))
                self.output_norm = nn.BatchNorm(axis=2)
                self.output = nn.Dense(NUM_CLASSES, flatten=False)

        def hybrid_forward(self, F, features):
            # (N, 1, T, F) -> (N, C, T', F') -> (T', N, C * F') -> (N, T', classes)
            x = self.body(features).transpose((2, 0, 1, 3)).reshape((0, 0, -1))
            x = self.output(self.output_norm(self.rnns(x)))
            return x.swapaxes(0, 1)

    return PlainDeepSpeech2()


def ours_model(model_cfg, num_bins):
    from gluon_ds2.model import DeepSpeech2
    return DeepSpeech2.from_config(model_cfg, NUM_CLASSES, num_bins)


def hybridize_as(mode, net):
    """``ours`` hybridized exactly as the ``mode`` ('train' or 'infer') hybridizes it."""
    from gluon_ds2.export import hybridize_for_inference
    from gluon_ds2.training import hybridize_for_training
    (hybridize_for_training if mode == 'train' else hybridize_for_inference)(net)


def ctc_targets(rng, batch_size, frames, seconds, num_classes):
    """Random transcripts for a batch of ``frames`` frames (``seconds`` of audio each).

    ``CHARACTERS_PER_SECOND`` labels per utterance, drawn from ``rng`` (numpy
    RandomState). Returns NDArrays (labels, label lengths, model output lengths).
    """
    import mxnet as mx

    from gluon_ds2.model import output_length

    label_length = int(seconds * CHARACTERS_PER_SECOND)
    labels = mx.nd.array(rng.randint(0, num_classes - 1, (batch_size, label_length)))
    return (labels, mx.nd.array([label_length] * batch_size),
            mx.nd.array([output_length(frames)] * batch_size))


def training_step(net, trainer, inputs, targets, batch_size):
    """``run_once()``: the timed training step on one fixed batch.

    Forward on ``inputs``, CTC against ``targets`` (:func:`ctc_targets`),
    backward, the optimizer's update, and a wait for all of it.
    """
    import mxnet as mx
    from mxnet import autograd

    from gluon_ds2.loss import CTCLoss

    loss_fn = CTCLoss()
    labels, label_lengths, out_lengths = targets

    def run_once():
        with autograd.record():
            loss = loss_fn(net(*inputs), labels, out_lengths, label_lengths)
        loss.backward()
        trainer.step(batch_size)
        mx.nd.waitall()
    return run_once


def make_runner(model_name, size_name, mode, batch_size, seconds):
    """Build one configuration; returns (run_once, flops, parameters)."""
    import mxnet as mx
    import numpy as np

    from gluon_ds2.config import AudioConfig, ModelConfig
    from gluon_ds2.featurizer import featurize
    from gluon_ds2.model import forward_flops

    size = dict(SIZES[size_name])
    audio = AudioConfig(max_freq=size.pop('max_freq'))
    model_cfg = ModelConfig(**size)
    rng = np.random.RandomState(0)
    features = featurize(rng.randn(int(seconds * audio.sample_rate)) * 0.1, audio)
    frames = features.shape[0]
    x = mx.nd.array(np.stack([features[None]] * batch_size))
    x_lengths = mx.nd.array([frames] * batch_size)
    targets = ctc_targets(rng, batch_size, frames, seconds, NUM_CLASSES)

    mx.random.seed(0)
    if model_name == 'ours':
        net = ours_model(model_cfg, audio.num_bins)
        net.initialize(mx.init.Xavier())
        hybridize_as(mode, net)
        inputs = (x, x_lengths)
    else:
        net = plain_model(model_cfg, audio.num_bins)
        net.initialize(mx.init.Xavier())
        net.hybridize(static_alloc=True, static_shape=True)
        inputs = (x,)  # the plain model ignores lengths
    trainer = mx.gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 1e-5})
    forward = forward_flops(model_cfg, audio.num_bins, frames, batch_size, NUM_CLASSES)

    if mode == 'train':
        run_once = training_step(net, trainer, inputs, targets, batch_size)
        flops = 3 * forward
    else:
        def run_once():
            net(*inputs).wait_to_read()
        flops = forward
    for _ in range(2):  # builds the graph, allocates, and the optimizer state
        run_once()
    parameters = sum(p.data().size for p in net.collect_params().values()
                     if p.grad_req != 'null')
    return run_once, flops, parameters


def sgemm_rate(n=1024, repeats=10, library='onednn'):
    """float32 GFLOP/s of an n x n matrix product with this process's threads.

    ``library``: ``'onednn'``, through ``FullyConnected``, the GEMM the model's dense, conv and
    RNN kernels run on (the yardstick of the ``of sgemm`` columns); ``'openblas'``, through
    ``mx.nd.dot``, MXNet's bundled OpenBLAS, which no operator of the model uses. On a CPU
    newer than that OpenBLAS the two differ by up to five times (:func:`openblas_core`).
    """
    import mxnet as mx
    a, b = mx.nd.random.uniform(shape=(n, n)), mx.nd.random.uniform(shape=(n, n))
    if library == 'onednn':
        def product():
            return mx.nd.FullyConnected(a, b, num_hidden=n, no_bias=True)
    elif library == 'openblas':
        def product():
            return mx.nd.dot(a, b)
    else:
        raise ValueError('library must be onednn or openblas, got %r' % (library,))
    product().wait_to_read()
    start = time.perf_counter()
    for _ in range(repeats):
        product().wait_to_read()
    return repeats * 2 * n ** 3 / (time.perf_counter() - start) / 1e9


def openblas_core():
    """The kernel family MXNet's bundled OpenBLAS chose for this CPU (e.g. 'Haswell'), or None.

    The OpenBLAS in the mxnet 1.9.1 wheel has no Sapphire Rapids kernels: on a Xeon of family
    6, model 207 it falls back to 'Prescott' (SSE3) kernels, whatever AVX-512 the CPU has.
    """
    import ctypes

    import mxnet as mx
    path = os.path.join(os.path.dirname(mx.__file__), 'libopenblas.so.0')
    try:
        corename = ctypes.CDLL(path).openblas_get_corename
    except (OSError, AttributeError):
        return None
    corename.restype = ctypes.c_char_p
    return corename().decode()


def operator_shares(stats_json):
    """Each operator's share of all operator time, forward and backward together.

    ``stats_json`` is ``mx.profiler.dumps(format='json')``; returns ``[(name, ms, share)]``,
    largest first, where ``name`` is the forward operator's (``_backward_RNN`` counts
    under ``RNN``).
    """
    ops = json.loads(stats_json)['Time'].get('operator', {})
    grouped = {}
    for name, stats in ops.items():
        key = name[len('_backward_'):] if name.startswith('_backward_') else name
        grouped[key] = grouped.get(key, 0.0) + stats['Total']
    total = sum(grouped.values())
    return sorted(((name, ms, ms / total) for name, ms in grouped.items()),
                  key=lambda row: -row[1])


def profile(run_once, steps, size_name):
    """One size's section of the profile: shares, then MXNet's aggregate table."""
    import mxnet as mx

    # Free the earlier rows' models first, or their deletion is profiled with the step.
    gc.collect()
    mx.nd.waitall()
    mx.profiler.set_state('run')
    for _ in range(steps):
        run_once()
    mx.profiler.set_state('stop')
    shares = operator_shares(mx.profiler.dumps(format='json'))
    table = mx.profiler.dumps(reset=True, format='table', sort_by='total', ascending=False)
    lines = ['%d training steps of ours, %s size' % (steps, size_name), '',
             'share of operator time, forward + backward:']
    lines += ['  %-24s %10.1f ms %6.1f %%' % (name, ms, 100 * share)
              for name, ms, share in shares if share >= 0.001]
    return '\n'.join(lines) + '\n\n' + table


def markdown(rows, sgemm, args, openblas=None, core=None):
    lines = ['| size | mode | batch | ours s | plain s | ours / plain | ours audio s/s | '
             'model GFLOP | ours of sgemm | plain of sgemm | sgemm GFLOP/s |',
             '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        lines.append('| %s | %s | %d | %.3f | %.3f | **%.2f** | %.1f | %.1f | %.0f%% | %.0f%% | %.0f |'
                     % (r['size'], r['mode'], r['batch'], r['ours_s'], r['plain_s'],
                        r['ours_over_plain'], r['ours_audio_s_per_s'], r['gflop'],
                        100 * r['ours_of_sgemm'], 100 * r['plain_of_sgemm'], r['sgemm_gflops']))
    lines += ['', 'Median of %d alternated rounds after two warm-up calls each; %.0f s utterances; '
              'sgemm (oneDNN, FullyConnected 1024^3) measured in every round (median %.0f '
              'GFLOP/s, %d threads); %d CPU cores.'
              % (args.rounds, args.seconds, sgemm, args.threads, os.cpu_count())]
    if openblas is not None:
        lines.append("MXNet's OpenBLAS (mx.nd.dot, not used by the model): median %.0f "
                     'GFLOP/s, kernels %s.' % (openblas, core or 'unknown'))
    return '\n'.join(lines) + '\n'


def bar_chart(rows, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from gluon_ds2.atomic import atomic_save_figure
    labels = ['%s\n%s b%d' % (r['size'], r['mode'], r['batch']) for r in rows]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    positions = range(len(rows))
    width = 0.4
    ax.bar([p - width / 2 for p in positions], [100 * r['ours_of_sgemm'] for r in rows], width,
           label='ours')
    ax.bar([p + width / 2 for p in positions], [100 * r['plain_of_sgemm'] for r in rows], width,
           label='plain fused baseline')
    for p, r in zip(positions, rows):
        ax.text(p, 100 * max(r['ours_of_sgemm'], r['plain_of_sgemm']) + 1,
                '%.2fx' % r['ours_over_plain'], ha='center', fontsize=8)
    ax.set_xticks(list(positions))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel('model FLOP rate, % of sgemm')
    ax.set_title('DeepSpeech2 step speed (label: ours / plain time)')
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rounds', type=int, default=5, help='timed calls per configuration')
    parser.add_argument('--seconds', type=float, default=5.0, help='utterance length')
    parser.add_argument('--sizes', default='demo,reference')
    parser.add_argument('--threads', type=int, default=int(os.environ.get(
        'OMP_NUM_THREADS', os.cpu_count())))
    parser.add_argument('--profile_steps', type=int, default=2)
    parser.add_argument('--out', default='scripts/results/model_speed')
    args = parser.parse_args(argv)
    os.environ['OMP_NUM_THREADS'] = str(args.threads)  # before mxnet is imported
    import mxnet as mx

    from gluon_ds2.atomic import atomic_write_text
    print('command: OMP_NUM_THREADS=%d python scripts/bench_model.py --rounds %d --seconds %s '
          '--sizes %s --out %s' % (args.threads, args.rounds, args.seconds, args.sizes, args.out),
          flush=True)
    sgemm_rates = []  # measured in every round, so they share the rounds' load
    openblas_rates = []
    rows = []
    for size_name in args.sizes.split(','):
        for mode, batch_size in MODES:
            runners = {name: make_runner(name, size_name, mode, batch_size, args.seconds)
                       for name in ('ours', 'plain')}
            times = {name: [] for name in runners}
            row_sgemm = []
            for _ in range(args.rounds):
                row_sgemm.append(sgemm_rate())
                openblas_rates.append(sgemm_rate(library='openblas'))
                for name, (run_once, _, _) in runners.items():
                    start = time.perf_counter()
                    run_once()
                    times[name].append(time.perf_counter() - start)
            row = dict(size=size_name, mode=mode, batch=batch_size,
                       gflop=runners['ours'][1] / 1e9, parameters=runners['ours'][2],
                       times=times, sgemm_gflops=statistics.median(row_sgemm))
            sgemm_rates += row_sgemm
            for name in runners:
                row[name + '_s'] = statistics.median(times[name])
            row['ours_over_plain'] = row['ours_s'] / row['plain_s']
            row['ours_audio_s_per_s'] = batch_size * args.seconds / row['ours_s']
            rows.append(row)
            print('%-9s %-5s b%d: ours %.3f s, plain %.3f s, ours/plain %.2f'
                  % (size_name, mode, batch_size, row['ours_s'], row['plain_s'],
                     row['ours_over_plain']), flush=True)
            del runners
    if args.profile_steps:
        # Last: the profiler slows every operator while it records.
        trace = args.out + '_profile.trace.json'
        mx.profiler.set_config(profile_all=True, aggregate_stats=True, filename=trace)
        sections = [profile(make_runner('ours', size_name, 'train', 8, args.seconds)[0],
                            args.profile_steps, size_name)
                    for size_name in args.sizes.split(',')]
        # MXNet writes its trace at exit unless it was dumped and finished; only the
        # aggregate tables are kept.
        mx.profiler.dump(finished=True)
        if os.path.exists(trace):
            os.remove(trace)
        atomic_write_text(args.out + '_profile.txt', '\n\n'.join(sections))
    sgemm = statistics.median(sgemm_rates)
    for row in rows:
        for name in ('ours', 'plain'):
            row[name + '_of_sgemm'] = row['gflop'] / row[name + '_s'] / row['sgemm_gflops']
    table = markdown(rows, sgemm, args, statistics.median(openblas_rates), openblas_core())
    atomic_write_text(args.out + '.json', json.dumps(dict(
        command=' '.join(['python'] + sys.argv), threads=args.threads, mxnet=mx.__version__,
        sgemm_gflops=sgemm_rates, openblas_dot_gflops=openblas_rates,
        openblas_core=openblas_core(), rows=rows), indent=2) + '\n')
    atomic_write_text(args.out + '.md', table)
    bar_chart(rows, args.out + '.png')
    print(table)
    return 0


if __name__ == '__main__':
    sys.exit(main())
