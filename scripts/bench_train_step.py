"""Training throughput of train.py's own loop on real batches, against the fixed-shape step.

    python scripts/bench_train_step.py
    python scripts/bench_train_step.py --baseline_rev main --rounds 4 --steps 15
    python scripts/bench_train_step.py --pad_frames_to 32,16

At the demo size and with run.sh's demo flags until 2026-12-07 (3 x 192 LSTM, 16 filters,
4000 Hz, batch 8, speed perturbation, one DataLoader worker; run.sh trains 4 x 144 since, at the
same speed), in one process, alternating
round by round, it times:

* ``train.py``: :func:`gluon_ds2.training.train_one_epoch` as ``training.run`` calls it,
  on the real demo train set through the real Dataset, SortagradSampler (epoch 1: shuffled
  batches of similar lengths) and DataLoader; bookkeeping, host syncs and loader included;
  with ``--pad_frames_to 32,16``, once per padding multiple, each with a DataLoader of its
  own: the same utterances, with the same augmentation, in the same rounds;
* ``fixed``: the fixed-shape benchmark (``scripts/bench_model.py``'s training step: forward,
  CTC, backward, Adam, nothing else) on a batch of the same size whose length is the mean
  padded length of the real batches the (first) train.py loop trains on, in a model of its
  own that sees only that shape;
* with ``--baseline_rev REV``: ``train_one_epoch`` of this tree and of the package at git
  revision REV, on the same batches, preloaded from the same DataLoader (no loader in the
  timing), so the two differ by their step bookkeeping alone.

audio-s/s counts each utterance's own frames (10 ms each), padding excluded, as train.py's
metrics log does; ``padded s/s`` counts the padded frames, so ``train.py / fixed`` splits
into the padding's share and the rest. Per configuration it also reports the CPU seconds per
step of the main Python thread, of the other threads (MXNet's engine and OpenMP threads) and of
the DataLoader worker processes.

Writes ``<out>.json``, ``<out>.md`` (the table) and ``<out>.png`` (bar chart).
"""
import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_model  # noqa: E402  (its fixed-shape training step is the baseline)

# run.sh's demo training flags (data, model and augmentation; not the paths or epochs).
DEMO_FLAGS = ('--batch_size=8', '--rnn_hidden_size=192', '--rnn_hidden_layers=3',
              '--conv_filters=16', '--max_freq=4000', '--learning_rate=1e-3',
              '--batch_norm_decay=0.99', '--speed_perturb')
NO_AUGMENTATION = ('--freq_masks=0', '--time_masks=0', '--nospeed_perturb', '--noise_prob=0',
                   '--reverb_prob=0', '--band_limit_prob=0', '--gain_prob=0')


def cpu_seconds():
    """CPU seconds so far: ``{thread id: s}`` of this process; its descendants' total."""
    tick = os.sysconf('SC_CLK_TCK')

    def stat(path):
        with open(path) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return int(fields[1]), (int(fields[11]) + int(fields[12])) / tick  # ppid, utime + stime

    threads = {}
    for tid in os.listdir('/proc/self/task'):
        try:
            threads[int(tid)] = stat('/proc/self/task/%s/stat' % tid)[1]
        except OSError:  # the thread ended
            pass
    processes = {}  # pid: (ppid, CPU s)
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            processes[int(pid)] = stat('/proc/%s/stat' % pid)
        except OSError:
            continue
    # Descendants, not just children: DataLoader workers are the fork server's children.
    ours, children = {os.getpid()}, 0.0
    while True:
        found = {pid for pid, (ppid, _) in processes.items() if ppid in ours} - ours
        if not found:
            return threads, children
        children += sum(processes[pid][1] for pid in found)
        ours |= found


class Meter:
    """Wall time, audio and CPU of one timed call."""

    def __init__(self, main_thread):
        self.main_thread = main_thread

    def __enter__(self):
        self.threads, self.children = cpu_seconds()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        import mxnet as mx
        mx.nd.waitall()
        self.wall = time.perf_counter() - self.start
        threads, children = cpu_seconds()
        spent = {tid: s - self.threads.get(tid, 0.0) for tid, s in threads.items()}
        self.main_cpu = spent.get(self.main_thread, 0.0)
        self.other_cpu = sum(spent.values()) - self.main_cpu
        self.children_cpu = children - self.children


class CountingBatches:
    """``steps`` batches drawn from a running DataLoader iterator, counted as they pass."""

    def __init__(self, iterator, steps, stride_s):
        self.iterator, self.steps, self.stride_s = iterator, steps, stride_s
        self.audio_s = self.padded_s = 0.0

    def __len__(self):
        return self.steps

    def __iter__(self):
        for _ in range(self.steps):
            batch = next(self.iterator)
            self.audio_s += batch_audio_s(batch, self.stride_s)
            self.padded_s += padded_audio_s(batch, self.stride_s)
            yield batch


def batch_audio_s(batch, stride_s):
    return float(batch[1].asnumpy().sum()) * stride_s


def padded_audio_s(batch, stride_s):
    n, _, frames, _ = batch[0].shape  # (N, 1, T, bins)
    return n * frames * stride_s


def load_baseline(rev, directory):
    """The ``gluon_ds2`` package at git revision ``rev``, imported as ``gluon_ds2_baseline``."""
    import importlib
    archive = subprocess.run(['git', 'archive', rev, 'gluon_ds2'], check=True,
                             capture_output=True).stdout
    subprocess.run(['tar', '-x', '-C', directory], input=archive, check=True)
    os.rename(os.path.join(directory, 'gluon_ds2'), os.path.join(directory, 'gluon_ds2_baseline'))
    sys.path.insert(0, directory)
    return importlib.import_module('gluon_ds2_baseline.training')


def fixed_step_runner(cfg, num_classes, batch_size, frames):
    """The fixed-shape benchmark's training step on a (batch, 1, frames, bins) batch."""
    import mxnet as mx
    import numpy as np

    from gluon_ds2.distributed import Distributed
    from gluon_ds2.training import build_model

    net = build_model(cfg, num_classes, [mx.cpu()])
    trainer = Distributed.make_trainer(net.collect_params(), 'adam',
                                       {'learning_rate': cfg.train.learning_rate})
    rng = np.random.RandomState(0)
    features = mx.nd.array(rng.randn(batch_size, 1, frames, cfg.audio.num_bins))
    lengths = mx.nd.array([frames] * batch_size)
    targets = bench_model.ctc_targets(rng, batch_size, frames,
                                      frames * cfg.audio.stride_ms / 1000, num_classes)
    return bench_model.training_step(net, trainer, (features, lengths), targets, batch_size)


def summarize(name, rounds, steps):
    """Medians over rounds of one configuration's per-round figures."""
    def median(key, per_step=False):
        return statistics.median(r[key] / (steps if per_step else 1) for r in rounds)
    return dict(name=name, rounds=rounds,
                audio_s_per_s=statistics.median(r['audio_s'] / r['wall'] for r in rounds),
                padded_s_per_s=statistics.median(r['padded_s'] / r['wall'] for r in rounds),
                s_per_step=median('wall', True), main_cpu_per_step=median('main_cpu', True),
                other_cpu_per_step=median('other_cpu', True),
                loader_cpu_per_step=median('children_cpu', True))


def markdown(rows, ratios, info):
    lines = ['| configuration | audio s/s | padded s/s | s/step | CPU s/step: main thread | '
             'engine + OpenMP threads | loader workers |',
             '|---|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        lines.append('| %s | %.1f | %.1f | %.3f | %.3f | %.3f | %.3f |' % (
            r['label'], r['audio_s_per_s'], r['padded_s_per_s'], r['s_per_step'],
            r['main_cpu_per_step'], r['other_cpu_per_step'], r['loader_cpu_per_step']))
    lines.append('')
    for label, value in ratios:
        lines.append('- %s: **%.3f**' % (label, value))
    lines += ['', 'Median of %(rounds)d alternated rounds of %(steps)d steps each; batch '
              '%(batch_size)d; fixed shape %(fixed_frames)d frames (the mean padded length of '
              'the %(timed_batches)d batches the first train.py loop trains on in the timed '
              'rounds; they average %(mean_frames).0f frames of audio); %(threads)d OpenMP '
              'threads, %(num_workers)d DataLoader worker(s), augmentation: %(augment)s; '
              '%(cpus)d CPU cores.' % info]
    return '\n'.join(lines) + '\n'


def bar_chart(rows, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from gluon_ds2.atomic import atomic_save_figure
    fig, ax = plt.subplots(figsize=(7, 3))
    positions = range(len(rows))
    ax.barh(list(positions), [r['audio_s_per_s'] for r in rows], label='audio')
    ax.barh(list(positions), [r['padded_s_per_s'] - r['audio_s_per_s'] for r in rows],
            left=[r['audio_s_per_s'] for r in rows], label='padding', alpha=0.5)
    ax.set_yticks(list(positions))
    ax.set_yticklabels([r['label'] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel('seconds of audio trained per second')
    ax.set_title('Demo-size training throughput')
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--train_data_dir', default='data/demo_data/train/LibriSpeech/train.csv')
    parser.add_argument('--rounds', type=int, default=4)
    parser.add_argument('--steps', type=int, default=15, help='steps per configuration and round')
    parser.add_argument('--baseline_rev', default='',
                        help='git revision whose train_one_epoch to compare with (optional)')
    parser.add_argument('--augment', choices=('demo', 'none'), default='demo',
                        help="run.sh's demo augmentation, or none")
    parser.add_argument('--num_workers', type=int, default=1)
    parser.add_argument('--pad_frames_to', default='',
                        help="padding multiples of the train.py loops, comma-separated; the "
                             "first sizes the fixed shape (default: train.py's)")
    parser.add_argument('--threads', type=int, default=int(os.environ.get(
        'OMP_NUM_THREADS', os.cpu_count())))
    parser.add_argument('--out', default='scripts/results/train_step_speed')
    args = parser.parse_args(argv)
    os.environ['OMP_NUM_THREADS'] = str(args.threads)  # before mxnet is imported
    command = ('OMP_NUM_THREADS=%d python scripts/bench_train_step.py --rounds %d --steps %d '
               '--augment %s --num_workers %d%s%s --out %s'
               % (args.threads, args.rounds, args.steps, args.augment, args.num_workers,
                  ' --pad_frames_to ' + args.pad_frames_to if args.pad_frames_to else '',
                  ' --baseline_rev ' + args.baseline_rev if args.baseline_rev else '', args.out))
    print('command:', command, flush=True)

    import mxnet as mx
    import numpy as np

    from gluon_ds2 import training
    from gluon_ds2.atomic import atomic_write_text
    from gluon_ds2.augment import WaveformAugment
    from gluon_ds2.config import add_arguments, from_args
    from gluon_ds2.dataset import load_entries
    from gluon_ds2.distributed import Distributed
    from gluon_ds2.loss import CTCLoss
    from gluon_ds2.model import output_length
    from gluon_ds2.vocab import Vocabulary

    flags = list(DEMO_FLAGS) + (list(NO_AUGMENTATION) if args.augment == 'none' else []) + [
        '--train_data_dir=' + args.train_data_dir, '--num_workers=%d' % args.num_workers,
        '--checkpoint_every=0']
    cfg = from_args(add_arguments(argparse.ArgumentParser()).parse_args(flags))
    baseline = load_baseline(args.baseline_rev, tempfile.mkdtemp()) if args.baseline_rev else None

    dist, contexts = Distributed(), [mx.cpu()]
    mx.random.seed(cfg.train.seed)
    np.random.seed(cfg.train.seed)
    vocab = Vocabulary.from_file(cfg.data.vocabulary_file)
    entries, _ = load_entries(cfg.data.train_data_dir, vocab, cfg.audio,
                              on_error=cfg.data.on_bad_input, output_length=output_length,
                              max_duration=cfg.data.max_duration, progress=False)
    waveform_augment = WaveformAugment.from_config(cfg.data)
    loops = {}  # config name -> (sampler, its running DataLoader iterator, padding multiple)
    paddings = args.pad_frames_to or str(training.PAD_FRAMES_TO)
    for index, round_to in enumerate(int(v) for v in paddings.split(',')):
        sampler, loader = training.make_train_loader(cfg, entries, waveform_augment, dist,
                                                     round_to=round_to)
        sampler.set_epoch(1)  # shuffled batches, as every epoch after the first
        needed = (args.rounds + 3) * args.steps
        if sampler.num_batches() < needed:
            raise ValueError('%s has %d batches of %d utterances; --rounds %d --steps %d need %d'
                             % (args.train_data_dir, sampler.num_batches(),
                                cfg.train.batch_size, args.rounds, args.steps, needed))
        if index == 0:
            # A first pass over the batches the timed rounds will train on (the epoch's
            # batches and their augmentation are seeded): the fixed shape takes their mean
            # padded length, so both sides train on as many frames per step.
            warm_up = 3 * args.steps  # the sample below, then round 0
            shapes = [(b[0].shape[2], b[1].asnumpy().mean()) for b in itertools.islice(
                loader, warm_up + args.rounds * args.steps)][warm_up:]
            fixed_frames = int(round(np.mean([padded for padded, _ in shapes])))
            mean_frames = np.mean([frames for _, frames in shapes])
            sampler.set_epoch(1)
        loops['train.py' if index == 0 else 'train.py, pad %d' % round_to] = (
            sampler, iter(loader), round_to)
    (sampler, batches, _), *other_loops = loops.values()
    net = training.build_model(cfg, vocab.num_classes, contexts)
    trainer = dist.make_trainer(net.collect_params(), 'adam',
                                {'learning_rate': cfg.train.learning_rate})
    stride_s = cfg.audio.stride_ms / 1000.0
    main_thread = threading.get_native_id()
    state = dict(epoch=1, batch_in_epoch=0, global_step=0, nonfinite_steps=0,
                 consecutive_nonfinite=0, skipped_files=0)

    def epoch_runner(module, source):
        """One round of ``module.train_one_epoch`` over ``source`` (a list or CountingBatches)."""
        def run_once():
            with Meter(main_thread) as meter:
                module.train_one_epoch(net, trainer, CTCLoss(), source, contexts, dist, cfg,
                                       state, lambda **record: None, lambda: None,
                                       types.SimpleNamespace(signal=None))
            return meter
        return run_once

    # Real batches to warm up on; with a baseline, both versions train on the first half.
    sample = [next(batches) for _ in range(2 * args.steps)]
    for _, others, _ in other_loops:  # the same utterances in every loop
        for _ in sample:
            next(others)
    shared = sample[:args.steps]
    configs = dict.fromkeys(loops)
    configs['fixed'] = fixed_step_runner(cfg, vocab.num_classes, cfg.train.batch_size,
                                         fixed_frames)
    if baseline:
        configs['baseline'] = epoch_runner(baseline, shared)
        configs['ours'] = epoch_runner(training, shared)
    epoch_runner(training, sample)()  # warm-up: most padded lengths meet the graph once

    results = {name: [] for name in configs}
    shared_audio = sum(batch_audio_s(b, stride_s) for b in shared)
    shared_padded = sum(padded_audio_s(b, stride_s) for b in shared)
    for round_index in range(args.rounds + 1):  # round 0 warms up
        order = list(configs) if round_index % 2 == 0 else list(reversed(configs))
        for name in order:
            if name in loops:
                source = CountingBatches(loops[name][1], args.steps, stride_s)
                meter = epoch_runner(training, source)()
                audio, padded = source.audio_s, source.padded_s
            elif name == 'fixed':
                with Meter(main_thread) as meter:
                    for _ in range(args.steps):
                        configs['fixed']()
                audio = padded = args.steps * cfg.train.batch_size * fixed_frames * stride_s
            else:
                meter = configs[name]()
                audio, padded = shared_audio, shared_padded
            if round_index:
                results[name].append(dict(wall=meter.wall, audio_s=audio, padded_s=padded,
                                          main_cpu=meter.main_cpu, other_cpu=meter.other_cpu,
                                          children_cpu=meter.children_cpu))
        if round_index:
            print('round %d: %s' % (round_index, ', '.join(
                '%s %.1f audio s/s' % (n, r[-1]['audio_s'] / r[-1]['wall'])
                for n, r in results.items())), flush=True)

    labels = {name: 'train.py loop, real batches padded to %d frames, loader included'
              % round_to for name, (_, _, round_to) in loops.items()}
    labels.update({'fixed': 'fixed-shape step (bench_model.py), %d x %d frames'
                       % (cfg.train.batch_size, fixed_frames),
              'baseline': 'train_one_epoch at %s, preloaded batches' % args.baseline_rev,
              'ours': 'train_one_epoch of this tree, preloaded batches'})
    rows = [dict(summarize(name, results[name], args.steps), label=labels[name])
            for name in configs]
    by_name = {r['name']: r for r in rows}
    ratios = []
    for name in loops:
        ratios += [('%s / fixed, audio s/s (the issue\'s target: >= 0.95)' % name,
                    by_name[name]['audio_s_per_s'] / by_name['fixed']['audio_s_per_s']),
                   ('%s / fixed, padded s/s (the padding\'s share left out)' % name,
                    by_name[name]['padded_s_per_s'] / by_name['fixed']['padded_s_per_s'])]
    if baseline:
        ratios.append(('this tree / %s, audio s/s on the same preloaded batches'
                       % args.baseline_rev,
                       by_name['ours']['audio_s_per_s'] / by_name['baseline']['audio_s_per_s']))
    info = dict(rounds=args.rounds, steps=args.steps, batch_size=cfg.train.batch_size,
                fixed_frames=fixed_frames, timed_batches=args.rounds * args.steps,
                mean_frames=mean_frames,
                threads=args.threads, num_workers=args.num_workers, augment=args.augment,
                cpus=os.cpu_count())
    table = markdown(rows, ratios, info)
    atomic_write_text(args.out + '.json', json.dumps(dict(
        command=command, mxnet=mx.__version__, info=info, rows=rows, ratios=dict(ratios)),
        indent=2) + '\n')
    atomic_write_text(args.out + '.md', table)
    bar_chart(rows, args.out + '.png')
    print(table)
    return 0


if __name__ == '__main__':
    sys.exit(main())
