"""
    python scripts/bench_horovod.py
    python scripts/bench_horovod.py --steps 30 --batch_size 16 --repeats 2 \\
        --out scripts/results/horovod_scaling

Training throughput of one host's cores used as OpenMP threads or as Horovod
processes. Each configuration runs ``train.py`` with the same model, global
batch and data order (``--sortagrad=false``, fixed seed, so every run trains on
the same shuffled batches):

    1 process  x 2 threads   python train.py --num_threads=2
    1 process  x 1 thread    python train.py --num_threads=1
    2 processes x 1 thread   horovodrun -np 2 -H localhost:2 --gloo python train.py --num_threads=1

(the counts follow ``--processes`` and ``--threads``). Throughput is audio
seconds trained per second of wall time, summed over the metrics log's windows
after ``--warmup`` steps (hybridization and first allocations excluded).
Speed-ups are ratios within this one run: against 1 x 1, and Horovod against
threads on the same cores. Scaling efficiency is the speed-up over 1 x 1
divided by the number of cores used (processes x threads). DataLoader workers are off
(``--num_workers=0``): feature extraction runs in the training process and is
part of every configuration's step time.

Writes ``OUT.json`` (every window, the load average before and after) and
``OUT.md`` (the table for the README). On a machine shared with other jobs
the figures move from run to run: ``--repeats`` runs the configurations in
turn and reports the median.
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
HOROVODRUN = os.path.join(os.path.dirname(sys.executable), 'horovodrun')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--train_data_dir',
                        default='data/demo_data/train/LibriSpeech/train.csv',
                        help='training manifest (enough utterances for warmup + steps batches, '
                             'so that no epoch ends inside the measurement)')
    parser.add_argument('--eval_data_dir', default='data/demo_data/dev/LibriSpeech/dev.csv',
                        help='train.py checks it at start; no evaluation runs')
    parser.add_argument('--batch_size', type=int, default=16, help='global batch')
    parser.add_argument('--steps', type=int, default=30, help='measured optimizer steps')
    parser.add_argument('--warmup', type=int, default=10, help='steps before measuring')
    parser.add_argument('--log_every', type=int, default=5,
                        help='metrics-log window; must divide --steps and --warmup')
    parser.add_argument('--processes', type=int, default=2,
                        help='Horovod processes of the parallel configuration')
    parser.add_argument('--threads', type=int, default=2,
                        help='OpenMP threads of the single-process configuration')
    parser.add_argument('--repeats', type=int, default=1,
                        help='run every configuration this many times (in turn); report medians')
    parser.add_argument('--model_flags', default='--rnn_hidden_size=128 --rnn_hidden_layers=2 '
                                                 '--conv_filters=16 --max_freq=4000',
                        help='train.py flags of the model')
    parser.add_argument('--out', default='scripts/results/horovod_scaling',
                        help='writes OUT.json and OUT.md')
    args = parser.parse_args(argv)
    if args.steps % args.log_every or args.warmup % args.log_every:
        parser.error('--log_every=%d must divide --steps=%d and --warmup=%d'
                     % (args.log_every, args.steps, args.warmup))
    return args


def configurations(args):
    """(name, processes, threads per process), the baseline 1 x 1 first."""
    return [('1 process x 1 thread', 1, 1),
            ('1 process x %d threads' % args.threads, 1, args.threads),
            ('%d processes x 1 thread' % args.processes, args.processes, 1)]


def train_command(args, processes, threads, model_dir):
    flags = ['--train_data_dir=%s' % args.train_data_dir,
             '--eval_data_dir=%s' % args.eval_data_dir, '--model_dir=%s' % model_dir,
             '--batch_size=%d' % args.batch_size, '--sortagrad=false', '--seed=1',
             '--max_steps=%d' % (args.warmup + args.steps), '--log_every=%d' % args.log_every,
             '--checkpoint_every=0', '--num_workers=0', '--num_threads=%d' % threads]
    command = [sys.executable, 'train.py'] + shlex.split(args.model_flags) + flags
    if processes > 1:
        command = [HOROVODRUN, '-np', str(processes), '-H', 'localhost:%d' % processes,
                   '--gloo'] + command
    return command


def measured_throughput(metrics_path, warmup, log_every):
    """Audio s/s, utterances/s and s/step over the log windows after ``warmup`` steps.

    A window's record holds its rates and its end time; the window started when
    the previous record was written.
    """
    with open(metrics_path) as f:
        records = [json.loads(line) for line in f]
    train = [r for r in records if r.get('kind') == 'train']
    windows = []
    for previous, record in zip(train, train[1:]):
        if previous['step'] < warmup:
            continue
        seconds = record['time'] - previous['time']
        windows.append(dict(step=record['step'], seconds=seconds,
                            audio_seconds=record['audio_s_per_s'] * seconds,
                            utterances=record['utterances_per_s'] * seconds))
    seconds = sum(w['seconds'] for w in windows)
    return dict(audio_s_per_s=sum(w['audio_seconds'] for w in windows) / seconds,
                utterances_per_s=sum(w['utterances'] for w in windows) / seconds,
                seconds_per_step=seconds / (len(windows) * log_every), windows=windows)


def run_one(args, processes, threads):
    with tempfile.TemporaryDirectory(prefix='bench_horovod_') as model_dir:
        command = train_command(args, processes, threads, model_dir)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        start = time.time()
        result = subprocess.run(command, cwd=str(REPO_ROOT), env=env, capture_output=True,
                                text=True)
        if result.returncode != 0:
            sys.exit('failed (%d): %s\n%s' % (result.returncode, ' '.join(command),
                                              (result.stdout + result.stderr)[-3000:]))
        measured = measured_throughput(os.path.join(model_dir, 'metrics.jsonl'), args.warmup,
                                       args.log_every)
    measured.update(wall_seconds=time.time() - start)
    return measured


def format_table(rows, args, load):
    lines = [
        '| configuration | audio s / s | utterances / s | s / step | speed-up vs 1 x 1 '
        '| efficiency per core |',
        '|---|---:|---:|---:|---:|---:|',
    ]
    for row in rows:
        lines.append('| %s | %.1f | %.2f | %.2f | %.2f | %s |' % (
            row['name'], row['audio_s_per_s'], row['utterances_per_s'],
            row['seconds_per_step'], row['speedup'], '%.0f%%' % (100 * row['efficiency'])))
    lines.append('')
    lines.append('Global batch %d, %d measured steps after %d warm-up steps, median of %d '
                 'run(s); %d CPU cores, load average %.1f before and %.1f after (other jobs '
                 'shared the machine).' % (args.batch_size, args.steps, args.warmup,
                                          args.repeats, os.cpu_count(), load[0], load[1]))
    return '\n'.join(lines) + '\n'


def main(argv=None):
    args = parse_args(argv)
    print('reproduce: python scripts/bench_horovod.py %s' % ' '.join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])))
    load_before = os.getloadavg()[0]
    runs = {name: [] for name, _, _ in configurations(args)}
    for repeat in range(args.repeats):
        for name, processes, threads in configurations(args):
            print('run %d/%d: %s: %s' % (repeat + 1, args.repeats, name, ' '.join(
                train_command(args, processes, threads, '<tmp>'))), flush=True)
            runs[name].append(run_one(args, processes, threads))
            print('  %.1f audio s / s' % runs[name][-1]['audio_s_per_s'], flush=True)
    load_after = os.getloadavg()[0]

    rows = []
    for name, processes, threads in configurations(args):
        row = dict(name=name, processes=processes, threads=threads, runs=runs[name])
        for key in ('audio_s_per_s', 'utterances_per_s', 'seconds_per_step'):
            row[key] = statistics.median(r[key] for r in runs[name])
        rows.append(row)
    baseline = rows[0]['audio_s_per_s']
    for row in rows:
        row['speedup'] = row['audio_s_per_s'] / baseline
        row['efficiency'] = row['speedup'] / (row['processes'] * row['threads'])
    horovod_vs_threads = rows[2]['audio_s_per_s'] / rows[1]['audio_s_per_s']

    table = format_table(rows, args, (load_before, load_after))
    out = Path(args.out)
    report = dict(args=vars(args), cpu_count=os.cpu_count(), load_average_before=load_before,
                  load_average_after=load_after, configurations=rows,
                  horovod_vs_threads=horovod_vs_threads)
    # Imported only now: gluon_ds2 sets OMP_NUM_THREADS, which the runs above set themselves.
    from gluon_ds2.atomic import atomic_write_text
    atomic_write_text(out.with_suffix('.json'), json.dumps(report, indent=2) + '\n')
    atomic_write_text(out.with_suffix('.md'), table)
    print(table)
    print('%s vs %s: %.2fx' % (rows[2]['name'], rows[1]['name'], horovod_vs_threads))
    print('wrote %s and %s' % (out.with_suffix('.json'), out.with_suffix('.md')))


if __name__ == '__main__':
    main()
