"""Reduced precision against float32: the same model's step in both, alternated in one run.

    python scripts/bench_precision.py
    python scripts/bench_precision.py --dtype bfloat16 --sizes reference --rounds 3

``mxnet.contrib.amp.init`` patches MXNet for the whole process, and a hybridized
block keeps the graph it built first. So the float32 models are built and run
first, then AMP is switched on and the reduced-precision models are built; after
that both are timed alternately, round by round (training step and inference at
batch 8, as ``bench_model.py``). Writes ``<out>.json`` and ``<out>.md``.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_model  # noqa: E402  (the configurations and runners are shared)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dtype', default='bfloat16', choices=('bfloat16', 'float16'))
    parser.add_argument('--sizes', default='demo,reference')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--seconds', type=float, default=5.0)
    parser.add_argument('--out', default='scripts/results/precision_speed')
    args = parser.parse_args(argv)
    print('command: python scripts/bench_precision.py --dtype %s --sizes %s --rounds %d '
          '--seconds %s --out %s' % (args.dtype, args.sizes, args.rounds, args.seconds,
                                     args.out), flush=True)
    from gluon_ds2.atomic import atomic_write_text  # gluon_ds2 first: it sets the threads
    from gluon_ds2.precision import setup_precision

    import mxnet as mx

    configurations = [(size, mode, batch) for size in args.sizes.split(',')
                      for mode, batch in (('train', 8), ('infer', 8))]
    runners = {}
    for key in configurations:
        runners[key + ('float32',)] = bench_model.make_runner('ours', *key, args.seconds)[0]
    setup_precision(args.dtype, [mx.cpu() if args.dtype == 'bfloat16' else mx.gpu(0)])
    for key in configurations:
        runners[key + (args.dtype,)] = bench_model.make_runner('ours', *key, args.seconds)[0]
    rows = []
    for key in configurations:
        times = {dtype: [] for dtype in ('float32', args.dtype)}
        for _ in range(args.rounds):
            for dtype in times:
                start = time.perf_counter()
                runners[key + (dtype,)]()
                times[dtype].append(time.perf_counter() - start)
        fp32, reduced = (statistics.median(times[d]) for d in times)
        rows.append(dict(size=key[0], mode=key[1], batch=key[2], float32_s=fp32,
                         reduced_s=reduced, speedup=fp32 / reduced, times=times))
        print('%-9s %-5s b%d: float32 %.3f s, %s %.3f s, speed-up %.2f'
              % (key + (fp32, args.dtype, reduced, fp32 / reduced)), flush=True)
    lines = ['| size | mode | batch | float32 s | %s s | speed-up |' % args.dtype,
             '|---|---|---:|---:|---:|---:|']
    lines += ['| %s | %s | %d | %.3f | %.3f | **%.2f** |' % (
        r['size'], r['mode'], r['batch'], r['float32_s'], r['reduced_s'], r['speedup'])
        for r in rows]
    lines += ['', 'Median of %d alternated rounds; %.0f s utterances; %d CPU cores.'
              % (args.rounds, args.seconds, os.cpu_count())]
    atomic_write_text(args.out + '.json', json.dumps(dict(
        command=' '.join(['python'] + sys.argv), dtype=args.dtype, rows=rows), indent=2) + '\n')
    atomic_write_text(args.out + '.md', '\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
