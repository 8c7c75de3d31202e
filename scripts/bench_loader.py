"""Iterate one epoch of training batches and report shapes and loader throughput.

    python scripts/bench_loader.py data/demo_data/train/LibriSpeech/train.csv
    python scripts/bench_loader.py data/demo_data/train/LibriSpeech/train.csv \\
        --workers 0,1,2 --batch_size 16 --out scripts/results/loader_speed

The input pipeline alone, as training builds it (manifest check, Dataset,
SortagradSampler, gluonnlp batchify, Gluon DataLoader), with no model: how
fast it can feed batches, in utterances and audio seconds per second, for each
number of DataLoader worker processes. The first epoch's sorted order is used,
and the first batches' shapes are printed so the padding can be seen.
"""
import argparse
import json
import os
import sys
import time

from gluon_ds2.batchify import make_dataloader
from gluon_ds2.config import AudioConfig
from gluon_ds2.dataset import SpeechDataset, prepare_entries
from gluon_ds2.manifest import read_manifests
from gluon_ds2.model import output_length
from gluon_ds2.sampler import SortagradSampler
from gluon_ds2.vocab import Vocabulary


def one_epoch(dataset, batch_size, workers, show_shapes):
    sampler = SortagradSampler(dataset.lengths, batch_size)
    loader = make_dataloader(dataset, sampler, num_workers=workers, round_to=32)
    utterances, audio, batches = 0, 0.0, 0
    start = time.time()
    for features, feature_lengths, labels, label_lengths, skipped in loader:
        if show_shapes and batches < 3:
            print('  batch %d: features %s, feature_lengths %s, labels %s, label_lengths %s, '
                  'skipped %d' % (batches, features.shape, feature_lengths.shape, labels.shape,
                                  label_lengths.shape, len(skipped)))
        batches += 1
        utterances += features.shape[0]
        audio += float(feature_lengths.sum().asscalar()) / 100.0
    seconds = time.time() - start
    return dict(workers=workers, batches=batches, utterances=utterances, seconds=seconds,
                utterances_per_s=utterances / seconds, audio_s_per_s=audio / seconds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('manifests', help='manifest(s), comma-separated')
    parser.add_argument('--workers', default='0,1,2')
    parser.add_argument('--batch_size', type=int, default=16)
    parser.add_argument('--max_freq', type=float, default=None)
    parser.add_argument('--out', default=None, help='write <out>.json and <out>.md')
    args = parser.parse_args(argv)
    print('command: python scripts/bench_loader.py %s --workers %s --batch_size %d'
          % (args.manifests, args.workers, args.batch_size))
    audio_config = AudioConfig(max_freq=args.max_freq)
    entries, dropped = prepare_entries(read_manifests(args.manifests), Vocabulary.from_file(),
                                       audio_config, output_length=output_length)
    dataset = SpeechDataset(entries, audio_config)
    hours = sum(e['duration'] for e in entries) / 3600
    print('%d utterances, %.2f h (dropped: %s)' % (len(entries), hours, dict(dropped) or 'none'))
    rows = []
    for index, workers in enumerate(int(w) for w in args.workers.split(',')):
        row = one_epoch(dataset, args.batch_size, workers, show_shapes=index == 0)
        rows.append(row)
        print('%d worker(s): %d batches in %.1f s, %.0f utterances/s, %.0f audio-s/s'
              % (workers, row['batches'], row['seconds'], row['utterances_per_s'],
                 row['audio_s_per_s']), flush=True)
    if args.out:
        lines = ['| DataLoader workers | utterances / s | audio s / s | speed-up vs first |',
                 '|---:|---:|---:|---:|']
        for row in rows:
            lines.append('| %d | %.0f | %.0f | %.2f |' % (
                row['workers'], row['utterances_per_s'], row['audio_s_per_s'],
                row['audio_s_per_s'] / rows[0]['audio_s_per_s']))
        lines.append('')
        lines.append('One epoch of %d utterances (%.2f h), batch %d, %d CPU cores.'
                     % (len(entries), hours, args.batch_size, os.cpu_count()))
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out + '.json', 'w') as f:
            json.dump(dict(command=' '.join(sys.argv), rows=rows), f, indent=2)
        with open(args.out + '.md', 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
