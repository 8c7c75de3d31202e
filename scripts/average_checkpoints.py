"""
    python scripts/average_checkpoints.py runs/demo            # the last 2 kept checkpoints
    python scripts/average_checkpoints.py runs/demo --last 3

Averages the weights (BatchNorm statistics included) of a run's last ``--last`` kept
checkpoints, as icefall's and ESPnet's recipes average their last epochs before decoding:
the mean of the last few points of a run that is still moving sits nearer the minimum than
any one of them. The averaged model is scored greedily on the run's ``--eval_data_dir`` set,
the set its checkpoints were scored on, and written beside them as
``ckpt-<step>-avg<n>.ckpt`` (weights and config, no optimizer state). If its WER is lower
than every trained checkpoint's it becomes the directory's ``best``, the checkpoint that
``evaluate.py``, ``transcribe.py`` and ``tune_lm.py`` use for a model directory; otherwise
the best stays. Training never resumes from it, and the next checkpoint a resumed run saves
supersedes it.

Prints the eval WER/CER of the averaged model and the WER of each averaged checkpoint.
"""
import argparse
import functools
import logging
import os
import sys
import tempfile

from gluon_ds2.checkpoint import CheckpointError, average_parameters, read_index, save_averaged
from gluon_ds2.decoder import greedy_decode_batch
from gluon_ds2.devices import select_devices
from gluon_ds2.inference import load_model
from gluon_ds2.scoring import score_manifests

import mxnet as mx  # noqa: E402  (after gluon_ds2, which sets the OpenMP thread policy first)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('model_dir', help='a model directory written by train.py')
    parser.add_argument('--last', type=int, default=2,
                        help='how many of the newest kept checkpoints to average (>= 2)')
    parser.add_argument('--batch_size', type=int, default=16)
    parser.add_argument('--num_gpus', type=int, default=None,
                        help='0 = CPU, -1 = all GPUs (default: 1 if a GPU is visible)')
    parser.add_argument('--num_workers', type=int, default=1)
    args = parser.parse_args(argv)
    if args.last < 2:
        parser.error('--last must be at least 2, got %d' % args.last)
    return args


def average(args):
    """Average, score and save; returns (path written, its eval result, the sources' entries)."""
    index = read_index(args.model_dir)
    entries = sorted(index['checkpoints'], key=lambda e: e['global_step'])
    if len(entries) < args.last:
        raise CheckpointError('%s: %d kept checkpoint(s), --last %d asks for more (train.py '
                              'keeps --keep_checkpoints of them)'
                              % (args.model_dir, len(entries), args.last))
    sources = entries[-args.last:]
    paths = [os.path.join(args.model_dir, e['name']) for e in sources]
    arrays = average_parameters(paths)
    contexts = select_devices(num_gpus=args.num_gpus)
    net, cfg, vocab, meta, _ = load_model(paths[-1], contexts)
    with tempfile.TemporaryDirectory() as tmp:
        mx.nd.save(os.path.join(tmp, 'params'), arrays)
        net.load_parameters(os.path.join(tmp, 'params'), ctx=contexts)
    decode = functools.partial(greedy_decode_batch, vocab=vocab)
    accumulator, _, _ = score_manifests(net, cfg.data.eval_data_dir, vocab, cfg.audio, contexts,
                                        decode, args.batch_size, args.num_workers)
    result = accumulator.result()
    path = save_averaged(args.model_dir, net, meta, [e['name'] for e in sources],
                         wer=result['wer'])
    return path, result, sources


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    args = parse_args(argv)
    try:
        path, result, sources = average(args)
    except (CheckpointError, ValueError, OSError) as err:
        print('average_checkpoints: error: %s' % err, file=sys.stderr)
        return 1
    for entry in sources:
        print('%-28s eval WER %s' % (entry['name'], '%.4f' % entry['wer']
                                      if entry['wer'] is not None else '(not evaluated)'))
    print('%-28s eval WER %.4f CER %.4f (mean of the %d above)'
          % (os.path.basename(path), result['wer'], result['cer'], len(sources)))
    best = read_index(args.model_dir)['best']
    print('best checkpoint of %s: %s' % (args.model_dir, best))
    return 0


if __name__ == '__main__':
    sys.exit(main())
