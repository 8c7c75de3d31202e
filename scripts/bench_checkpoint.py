"""Checkpoint save and load time at the reference size (parameters plus Adam state).

    python scripts/bench_checkpoint.py --out scripts/results/checkpoint_speed
    python scripts/bench_checkpoint.py --trees /tmp/gluon-ds2-before,. --rounds 3 \\
        --out scripts/results/checkpoint_speed

Builds the reference DeepSpeech2 (800 x 5 bidirectional LSTM, 32 conv
filters, 161 bins), takes one Adam step so the optimizer holds its state, and
times, in a fresh model directory on the same disk as ``--dir``:

* ``save``: :func:`gluon_ds2.checkpoint.save_checkpoint` (zip, fsync, rename);
* ``open``: :func:`~gluon_ds2.checkpoint.load_latest`, what each rank does first
  on resume (choose and open the newest usable checkpoint);
* ``load``: :func:`~gluon_ds2.checkpoint.load_into` of parameters and trainer state.

With ``--trees A,B`` each round runs once in every source tree (e.g. a
checkout of an older commit), alternating, each in its own process, so the
ratios between trees come from one run on one machine. The files are read back
from the page cache right after writing: these are CPU and copy costs, not
disk bandwidth.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

STEPS = ('save', 'open', 'load')


def measure_once(directory):
    """One save / open / load round in this process's gluon_ds2; returns seconds per step."""
    import mxnet as mx
    from mxnet import autograd

    from gluon_ds2 import checkpoint
    from gluon_ds2.config import Config
    from gluon_ds2.model import DeepSpeech2

    cfg = Config()
    net = DeepSpeech2.from_config(cfg.model, 29, cfg.audio.num_bins)
    net.initialize(mx.init.Xavier(magnitude=2.0))
    trainer = mx.gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 1e-4},
                               kvstore=None, update_on_kvstore=False)
    with autograd.record():
        loss = net(mx.nd.ones((1, 1, 64, cfg.audio.num_bins)), mx.nd.array([64])).sum()
    loss.backward()
    trainer.update(1)
    mx.nd.waitall()
    meta = dict(global_step=1, epoch=0, config=cfg.to_json())
    times = {}
    with tempfile.TemporaryDirectory(dir=directory) as model_dir:
        start = time.perf_counter()
        path = checkpoint.save_checkpoint(model_dir, net, trainer, meta, keep=1)
        times['save'] = time.perf_counter() - start
        start = time.perf_counter()
        _, _, archive = checkpoint.load_latest(model_dir)
        times['open'] = time.perf_counter() - start
        start = time.perf_counter()
        checkpoint.load_into(path, archive, net, trainer)
        mx.nd.waitall()
        times['load'] = time.perf_counter() - start
        times['bytes'] = os.path.getsize(path)
    return times


def run_in_tree(tree, directory):
    """One round in a child process whose gluon_ds2 comes from ``tree``."""
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree), OMP_NUM_THREADS='1')
    output = subprocess.run([sys.executable, os.path.abspath(__file__), '--child',
                             '--dir', directory], env=env, check=True, capture_output=True,
                            text=True, cwd=os.path.abspath(tree)).stdout
    return json.loads(output.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--trees', default='.', help='source trees to compare, comma-separated')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--dir', default=tempfile.gettempdir(),
                        help='where the model directories are made')
    parser.add_argument('--out', default=None, help='write <out>.json and <out>.md')
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure_once(args.dir)))
        return 0
    print('command: python scripts/bench_checkpoint.py --trees %s --rounds %d'
          % (args.trees, args.rounds))
    trees = args.trees.split(',')
    rounds = {tree: [] for tree in trees}
    for index in range(args.rounds):
        for tree in trees:
            rounds[tree].append(run_in_tree(tree, args.dir))
            print('round %d %s: %s' % (index + 1, tree, rounds[tree][-1]), flush=True)
    rows = []
    for tree in trees:
        row = dict(tree=tree, size_mb=rounds[tree][0]['bytes'] / 1e6)
        row.update({step: statistics.median(r[step] for r in rounds[tree]) for step in STEPS})
        rows.append(row)
    lines = ['| tree | checkpoint MB | save s | open (load_latest) s | load_into s |',
             '|---|---|---|---|---|']
    for row in rows:
        lines.append('| %s | %.0f | %.2f | %.3f | %.2f |' % (
            row['tree'], row['size_mb'], row['save'], row['open'], row['load']))
    if len(rows) > 1:
        base = rows[0]
        for row in rows[1:]:
            lines.append('| %s / %s | | %.2fx | %.3fx | %.2fx |' % (
                row['tree'], base['tree'], row['save'] / base['save'],
                row['open'] / base['open'], row['load'] / base['load']))
    table = '\n'.join(lines)
    print(table)
    if args.out:
        from gluon_ds2.atomic import atomic_write_text  # after the children ran
        atomic_write_text(args.out + '.json',
                          json.dumps(dict(rounds=rounds, medians=rows), indent=2) + '\n')
        atomic_write_text(args.out + '.md', table + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
