"""Each augmentation on and off at the same training budget: dev CER in and out of domain.

    python scripts/ablation.py
    python scripts/ablation.py --rows specaugment,speed,noise,all --train_epochs 4 \\
        --dev_in data/demo_data/dev/LibriSpeech/dev.csv \\
        --dev_ood data/demo_data/dev_ood/LibriSpeech/dev_ood.csv \\
        --runs_dir runs/ablation --out scripts/results/ablation

Every row trains the demo-size model (``DEMO_FLAGS``: the flags ``run.sh`` gave
the demo when these rows were measured, SpecAugment included; the recipe has
since dropped SpecAugment and keeps speed perturbation alone, chosen by whole
``run.sh`` runs, see README "Augmentation at the full budget") from scratch for
``--train_epochs`` epochs with the same seed, adding only that row's flags
(``ROWS``), then scores its last checkpoint (greedy) on each dev split: in
domain by train.py's own evaluation after the last epoch, out of domain by
``evaluate.py --which=latest``. Each row's training and scoring hold ``flock
--lock`` (``/tmp/bench.lock``, the machine's benchmark lock) so that its minutes
are comparable. A row whose results are already in ``<out>.json`` with the same
command is not run again: an interrupted grid resumes where it stopped. Writes
``<out>.json`` and ``<out>.md`` after each row.
"""
import argparse
import fcntl
import json
import os
import re
import shlex
import subprocess
import sys
import time

from gluon_ds2.atomic import atomic_write_text

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEMO_FLAGS = ['--rnn_hidden_size=256', '--rnn_hidden_layers=3', '--conv_filters=16',
              '--max_freq=4000', '--batch_size=16', '--learning_rate=1.5e-3', '--lr_decay=0.9',
              '--batch_norm_decay=0.99', '--freq_masks=2', '--time_masks=2']
# Row -> (what it adds to the demo recipe, its train.py flags).
ROWS = {
    'none': ('no augmentation at all (SpecAugment off)', ['--freq_masks=0', '--time_masks=0']),
    'specaugment': ("the baseline: the demo's model and SpecAugment 2 + 2 masks, no waveform "
                    'augmentation', []),
    'speed': ('speed perturbation 0.9/1.0/1.1', ['--speed_perturb']),
    'noise': ('noise on half the utterances, 10-30 dB SNR, 4 colours + babble',
              ['--noise_prob=0.5']),
    'reverb': ('reverberation on half the utterances, RT60 0.2-0.8 s', ['--reverb_prob=0.5']),
    'band_limit': ('band-limiting on half the utterances (telephone or microphone)',
                   ['--band_limit_prob=0.5']),
    'gain_clip': ('random gain +-10 dB on half, clipping on a fifth of the utterances',
                  ['--gain_prob=0.5', '--clip_prob=0.2']),
    'all': ('every waveform augmentation: speed; noise, reverb, band, gain on half the '
            'utterances, clipping on a fifth',
            ['--speed_perturb', '--noise_prob=0.5', '--reverb_prob=0.5', '--band_limit_prob=0.5',
             '--gain_prob=0.5', '--clip_prob=0.2']),
}


def corpus_cer(report):
    """``CER (corpus)`` and ``WER (corpus)`` from evaluate.py's report."""
    found = {name: float(re.search(r'%s \(corpus\)\s+([0-9.]+)' % name, report).group(1))
             for name in ('CER', 'WER')}
    return found['CER'], found['WER']


def run_row(name, args):
    """Train and score one row under the benchmark lock; returns its result dict."""
    model_dir = os.path.join(args.runs_dir, name)
    train = [sys.executable, os.path.join(REPO_ROOT, 'train.py'),
             '--train_data_dir=%s' % args.train_data_dir, '--eval_data_dir=%s' % args.dev_in,
             '--model_dir=%s' % model_dir, '--train_epochs=%d' % args.train_epochs,
             '--epochs_between_evals=%d' % args.train_epochs, '--seed=%d' % args.seed,
             '--num_threads=%d' % args.num_threads, *DEMO_FLAGS, *ROWS[name][1]]
    # In domain: train.py's own evaluation of its last checkpoint (the code evaluate.py runs).
    evaluate_ood = [sys.executable, os.path.join(REPO_ROOT, 'evaluate.py'), model_dir,
                    '--which=latest', '--eval_data_dir=%s' % args.dev_ood, '--worst=0']
    if os.path.exists(model_dir):
        raise RuntimeError('%s exists: remove it, or choose another --runs_dir, so that the '
                           'row trains from scratch' % model_dir)
    result = dict(row=name, description=ROWS[name][0], flags=ROWS[name][1],
                  train_command=' '.join(shlex.quote(c) for c in train))
    os.makedirs(args.runs_dir, exist_ok=True)
    with open(args.lock, 'w') as lock, open(model_dir + '.log', 'w') as log:
        fcntl.flock(lock, fcntl.LOCK_EX)
        start = time.time()
        subprocess.run(train, check=True, stdout=log, stderr=subprocess.STDOUT)
        result['train_minutes'] = (time.time() - start) / 60
        if args.dev_ood:
            report = subprocess.run(evaluate_ood, check=True, capture_output=True, text=True,
                                    env=dict(os.environ, OMP_NUM_THREADS=str(args.num_threads))
                                    ).stdout
            result['out_of_domain_cer'], result['out_of_domain_wer'] = corpus_cer(report)
            result['out_of_domain_command'] = ' '.join(shlex.quote(c) for c in evaluate_ood)
    with open(os.path.join(model_dir, 'metrics.jsonl')) as f:
        records = [json.loads(line) for line in f]
    train_records = [r for r in records if r['kind'] == 'train']
    last_eval = [r for r in records if r['kind'] == 'eval'][-1]
    result['in_domain_cer'], result['in_domain_wer'] = last_eval['cer'], last_eval['wer']
    result['steps'] = train_records[-1]['step'] if train_records else None
    result['final_train_loss'] = train_records[-1]['loss'] if train_records else None
    return result


def markdown(results, args):
    baseline = next((r for r in results if r['row'] == 'specaugment'), None)
    lines = ['| row | what it adds | dev CER in domain | dev CER out of domain | '
             'dev WER in domain | dev WER out of domain | train loss (last log) | '
             'minutes (train + dev eval) |', '|---|---|---:|---:|---:|---:|---:|---:|']

    def cell(result, key):
        value = result.get(key)
        if value is None:
            return 'n/a'
        delta = ''
        if baseline is not None and result is not baseline and key.endswith('_cer'):
            delta = ' (%+.1f)' % (100 * (value - baseline[key]))
        return '%.1f %%%s' % (100 * value, delta)

    for r in results:
        lines.append('| %s | %s | %s | %s | %s | %s | %s | %.1f |' % (
            r['row'], r['description'], cell(r, 'in_domain_cer'), cell(r, 'out_of_domain_cer'),
            cell(r, 'in_domain_wer'), cell(r, 'out_of_domain_wer'),
            'n/a' if r['final_train_loss'] is None else '%.2f' % r['final_train_loss'],
            r['train_minutes']))
    lines += ['', 'Greedy decoding, corpus CER/WER of each run\'s last checkpoint; in brackets the '
              'change against `specaugment` in CER points. Each row: the demo-size model '
              '(`%s`), %d epoch(s) from scratch, seed %d, train %s; dev in domain %s, out of '
              'domain %s; %d OpenMP thread(s) on %d CPU cores, one row at a time under '
              '`flock %s`.' % (' '.join(DEMO_FLAGS), args.train_epochs, args.seed,
                               args.train_data_dir, args.dev_in, args.dev_ood or 'none',
                               args.num_threads, os.cpu_count(), args.lock),
              '', 'Reproduce: `%s`' % ' '.join(shlex.quote(a) for a in
                                               ['python', 'scripts/ablation.py'] + sys.argv[1:])]
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rows', default=','.join(ROWS),
                        help='rows to run, comma-separated: %s' % ', '.join(ROWS))
    parser.add_argument('--train_data_dir', default='data/demo_data/train/LibriSpeech/train.csv')
    parser.add_argument('--dev_in', default='data/demo_data/dev/LibriSpeech/dev.csv')
    parser.add_argument('--dev_ood', default='data/demo_data/dev_ood/LibriSpeech/dev_ood.csv',
                        help="out-of-domain dev manifest ('' for none)")
    parser.add_argument('--train_epochs', type=int, default=4)
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--num_threads', type=int, default=1,
                        help='OpenMP threads of each run: on a machine whose cores other '
                             'processes share, a team of 2 threads on 2 cores waits on its '
                             'descheduled member at every barrier (10x slower here)')
    parser.add_argument('--lock', default='/tmp/bench.lock',
                        help='file locked (flock) while a row trains and is scored')
    parser.add_argument('--runs_dir', default='runs/ablation')
    parser.add_argument('--out', default='scripts/results/ablation')
    args = parser.parse_args(argv)
    rows = args.rows.split(',')
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error('--rows: unknown rows %s; known: %s' % (unknown, ', '.join(ROWS)))
    if args.dev_ood and not os.path.exists(args.dev_ood):
        parser.error('--dev_ood=%s: no such manifest (pass --dev_ood= to leave it out)'
                     % args.dev_ood)
    print('command: python scripts/ablation.py %s' % ' '.join(shlex.quote(a) for a in
                                                              (argv or sys.argv[1:])))
    done = {}
    if os.path.exists(args.out + '.json'):
        with open(args.out + '.json') as f:
            done = {r['row']: r for r in json.load(f)['rows']}
    results = []
    for name in rows:
        if name in done and done[name]['flags'] == ROWS[name][1]:
            print('%s: already measured, kept' % name)
            results.append(done[name])
            continue
        print('%s: training %d epoch(s) (%s)' % (name, args.train_epochs, ROWS[name][0]),
              flush=True)
        result = run_row(name, args)
        results.append(result)
        print('%s: dev CER in domain %.4f, out of domain %s, %.1f min' % (
            name, result['in_domain_cer'], '%.4f' % result['out_of_domain_cer']
            if 'out_of_domain_cer' in result else 'n/a', result['train_minutes']), flush=True)
        atomic_write_text(args.out + '.json', json.dumps(
            dict(demo_flags=DEMO_FLAGS, train_epochs=args.train_epochs, seed=args.seed,
                 train_data_dir=args.train_data_dir, dev_in=args.dev_in, dev_ood=args.dev_ood,
                 rows=results), indent=2))
        atomic_write_text(args.out + '.md', markdown(results, args))
    print(markdown(results, args))
    return 0


if __name__ == '__main__':
    sys.exit(main())
