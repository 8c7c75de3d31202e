"""Start-up time of training on a large manifest: checking it, on 1 and on 2 ranks.

    python scripts/bench_startup.py data/demo_data/train/LibriSpeech/train.csv \\
        --rows 50000 --trees /tmp/gluon-ds2-before,. --out scripts/results/startup

Writes a manifest of ``--rows`` rows (the given manifest's rows repeated),
then for each source tree and rank count runs what every rank of ``train.py``
runs before its first step, :func:`gluon_ds2.dataset.load_entries` on that
manifest, alone (``python``) and on two ranks (``horovodrun -np 2 -H
localhost:2 --gloo``), alternating. Reported: the slowest rank's
``load_entries`` seconds and the whole command's wall time (interpreter,
imports and Horovod start included). The WAV files are in the page cache, so
a header read here costs far less than on a cluster's network file system.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import pandas as pd

RANKS = (1, 2)


def child(manifest):
    """One rank: load_entries on ``manifest``; prints a JSON line."""
    from gluon_ds2.config import AudioConfig
    from gluon_ds2.dataset import load_entries
    from gluon_ds2.distributed import setup
    from gluon_ds2.model import output_length
    from gluon_ds2.vocab import Vocabulary

    dist = setup()
    start = time.perf_counter()
    entries, _ = load_entries(manifest, Vocabulary.from_file(), AudioConfig(),
                              output_length=output_length, progress=False)
    seconds = time.perf_counter() - start
    print(json.dumps(dict(rank=dist.rank, entries=len(entries), load_entries_s=seconds)))


def run(tree, ranks, manifest):
    """(slowest rank's load_entries seconds, wall seconds, entries each rank kept) of one
    command in ``tree``."""
    command = [sys.executable, os.path.abspath(__file__), '--child', manifest]
    if ranks > 1:
        horovodrun = os.path.join(os.path.dirname(sys.executable), 'horovodrun')
        command = [horovodrun, '-np', str(ranks), '-H', 'localhost:%d' % ranks, '--gloo'] + \
            command
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree), OMP_NUM_THREADS='1')
    start = time.perf_counter()
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True,
                            cwd=os.path.abspath(tree)).stdout
    wall = time.perf_counter() - start
    results = [json.loads(line[line.index('{'):]) for line in output.splitlines() if '{' in line]
    if sorted(r['rank'] for r in results) != list(range(ranks)) or \
            len({r['entries'] for r in results}) != 1:
        raise RuntimeError('%s, %d rank(s): expected one report of the same entry count per '
                           'rank, got:\n%s' % (tree, ranks, output))
    return max(r['load_entries_s'] for r in results), wall, results[0]['entries']


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('manifest')
    parser.add_argument('--rows', type=int, default=50000)
    parser.add_argument('--trees', default='.', help='source trees to compare, comma-separated')
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--out', default=None, help='write <out>.json and <out>.md')
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.manifest)
        return 0
    print('command: python scripts/bench_startup.py %s --rows %d --trees %s --rounds %d'
          % (args.manifest, args.rows, args.trees, args.rounds))
    source = pd.read_csv(args.manifest, sep='\t')
    repeats = -(-args.rows // len(source))
    big = pd.concat([source] * repeats, ignore_index=True).iloc[:args.rows]
    trees = args.trees.split(',')
    timings = {(tree, ranks): [] for tree in trees for ranks in RANKS}
    with tempfile.TemporaryDirectory(prefix='bench_startup_') as directory:
        manifest = os.path.join(directory, 'startup_%d.csv' % args.rows)
        big.to_csv(manifest, sep='\t', index=False)
        for index in range(args.rounds):
            for tree in trees:
                for ranks in RANKS:
                    timings[tree, ranks].append(run(tree, ranks, manifest))
                    print('round %d %s, %d rank(s): load_entries %.2f s, wall %.2f s, '
                          '%d entries' % ((index + 1, tree, ranks) + timings[tree, ranks][-1]),
                          flush=True)
    rows = [dict(tree=tree, ranks=ranks,
                 load_entries_s=min(t[0] for t in timings[tree, ranks]),
                 wall_s=min(t[1] for t in timings[tree, ranks]),
                 entries=timings[tree, ranks][0][2])
            for tree in trees for ranks in RANKS]
    lines = ['| tree | ranks | load_entries s (slowest rank) | wall s |', '|---|---|---|---|']
    lines += ['| %s | %d | %.2f | %.2f |' % (r['tree'], r['ranks'], r['load_entries_s'],
                                             r['wall_s']) for r in rows]
    table = '\n'.join(lines)
    print('%d rows; best of %d rounds\n%s' % (args.rows, args.rounds, table))
    if args.out:
        from gluon_ds2.atomic import atomic_write_text  # after the children ran
        atomic_write_text(args.out + '.json', json.dumps(
            dict(rows=args.rows, rounds=args.rounds, results=rows), indent=2) + '\n')
        atomic_write_text(args.out + '.md', table + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
