"""Training-step speed of DeepSpeech2 sizes on this machine, and the effect of OpenMP threads.

    python scripts/bench_model.py
    python scripts/bench_model.py --threads 1,2 --batch_size 8 --seconds 5 \\
        --out scripts/results/model_speed

For each size (the demo's 3 x 256 LSTM on 81 bins with 16 conv filters, and the
reference's 5 x 800 LSTM on 161 bins with 32 filters) and each thread count,
a child process times full training steps (forward, CTC loss, backward, Adam
update) on a batch of ``--batch_size`` utterances of ``--seconds`` seconds
(noise: the arithmetic does not depend on what is said) with 14 label
characters per second, about the rate of read speech. Each child also
measures the machine's float32 sgemm rate with the same thread count, so the
step time is reported against the hardware in the same run: the ratio of the
model's arithmetic rate to sgemm tells how much of the machine a step uses.
Results go to JSON and a markdown table.
"""
import argparse
import json
import os
import subprocess
import sys
import time

SIZES = {
    'demo (3x256 LSTM, 16 filters, 81 bins)': dict(rnn_hidden_size=256, rnn_hidden_layers=3,
                                                    conv_filters=16, max_freq=4000),
    'reference (5x800 LSTM, 32 filters, 161 bins)': dict(rnn_hidden_size=800,
                                                          rnn_hidden_layers=5, conv_filters=32,
                                                          max_freq=None),
}


def child(size_name, batch_size, seconds, steps):
    """Runs in a process whose OMP_NUM_THREADS is already set; prints one JSON line."""
    import mxnet as mx
    import numpy as np
    from mxnet import autograd

    from gluon_ds2.config import AudioConfig, ModelConfig
    from gluon_ds2.featurizer import featurize
    from gluon_ds2.loss import CTCLoss
    from gluon_ds2.model import DeepSpeech2, output_length

    size = dict(SIZES[size_name])
    audio = AudioConfig(max_freq=size.pop('max_freq'))
    model_cfg = ModelConfig(**size)
    rng = np.random.RandomState(0)
    samples = rng.randn(int(seconds * audio.sample_rate)) * 0.1
    features = featurize(samples, audio)
    frames = features.shape[0]
    x = mx.nd.array(np.stack([features[None]] * batch_size))
    x_lengths = mx.nd.array([frames] * batch_size)
    label_length = int(seconds * 14)  # about 14 characters per second of read speech
    labels = mx.nd.array(rng.randint(0, 28, (batch_size, label_length)))
    label_lengths = mx.nd.array([label_length] * batch_size)
    out_lengths = mx.nd.array([output_length(frames)] * batch_size)

    net = DeepSpeech2.from_config(model_cfg, 29, audio.num_bins)
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True)
    trainer = mx.gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 1e-4})
    loss_fn = CTCLoss()

    def step():
        with autograd.record():
            loss = loss_fn(net(x, x_lengths), labels, out_lengths, label_lengths)
        loss.backward()
        trainer.step(batch_size)
        mx.nd.waitall()

    step()
    step()
    start = time.time()
    for _ in range(steps):
        step()
    step_seconds = (time.time() - start) / steps

    n = 1024
    a, b = mx.nd.random.uniform(shape=(n, n)), mx.nd.random.uniform(shape=(n, n))
    mx.nd.dot(a, b).wait_to_read()
    start = time.time()
    for _ in range(10):
        mx.nd.dot(a, b).wait_to_read()
    sgemm = 10 * 2 * n ** 3 / (time.time() - start)
    parameters = sum(p.data().size for name, p in net.collect_params().items()
                     if 'running' not in name)
    print(json.dumps(dict(step_seconds=step_seconds, audio_s_per_s=batch_size * seconds /
                          step_seconds, sgemm_gflops=sgemm / 1e9, parameters=parameters)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--threads', default='1,2')
    parser.add_argument('--batch_size', type=int, default=8)
    parser.add_argument('--seconds', type=float, default=5.0)
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--out', default='scripts/results/model_speed')
    parser.add_argument('--child', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.batch_size, args.seconds, args.steps)
        return 0
    print('command: python scripts/bench_model.py --threads %s --batch_size %d --seconds %s '
          '--steps %d --out %s' % (args.threads, args.batch_size, args.seconds, args.steps,
                                   args.out))
    rows = []
    for size_name in SIZES:
        for threads in [int(t) for t in args.threads.split(',')]:
            result = subprocess.run(
                [sys.executable, __file__, '--child', size_name, '--batch_size',
                 str(args.batch_size), '--seconds', str(args.seconds), '--steps',
                 str(args.steps)], capture_output=True, text=True, check=True,
                env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
            row = dict(json.loads(result.stdout.strip().splitlines()[-1]), size=size_name,
                       threads=threads)
            rows.append(row)
            print('%-46s %d thread(s): %.2f s/step, %.1f audio-s/s (sgemm %.0f GFLOP/s)'
                  % (size_name, threads, row['step_seconds'], row['audio_s_per_s'],
                     row['sgemm_gflops']), flush=True)
    lines = ['| size | parameters | threads | s / step | audio s / s | speed-up vs 1 thread | '
             'sgemm GFLOP/s (same threads) |', '|---|---:|---:|---:|---:|---:|---:|']
    for row in rows:
        base = next(r for r in rows if r['size'] == row['size'] and r['threads'] == rows[0][
            'threads'])
        lines.append('| %s | %.1f M | %d | %.2f | %.1f | %.2f | %.0f |' % (
            row['size'], row['parameters'] / 1e6, row['threads'], row['step_seconds'],
            row['audio_s_per_s'], base['step_seconds'] / row['step_seconds'],
            row['sgemm_gflops']))
    lines.append('')
    lines.append('Batch of %d utterances x %.0f s, %d timed steps after 2 warm-up steps, %d CPU '
                 'cores.' % (args.batch_size, args.seconds, args.steps, os.cpu_count()))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + '.json', 'w') as f:
        json.dump(dict(command=' '.join(sys.argv), rows=rows), f, indent=2)
    with open(args.out + '.md', 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
