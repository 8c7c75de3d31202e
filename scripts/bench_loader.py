"""Iterate one epoch of training batches and report shapes and loader throughput.

    python scripts/bench_loader.py data/demo_data/train/LibriSpeech/train.csv
    python scripts/bench_loader.py data/demo_data/train/LibriSpeech/train.csv \\
        --workers 0,1,2 --augment none,specaugment,moderate,all --max_freq 4000 --batch_size 16 \\
        --out scripts/results/loader_speed

The input pipeline alone, as training builds it (manifest check, Dataset,
SortagradSampler, gluonnlp batchify, Gluon DataLoader), with no model: how
fast it can feed batches, in utterances and audio seconds per second, for each
number of DataLoader worker processes and each augmentation preset
(``AUGMENT_PRESETS``, train.py flags: ``none``; ``specaugment``, the demo's
masks; ``moderate``, the masks and every waveform augmentation on half the
utterances (clipping on a fifth), the ablation's ``all`` row; ``all``, every
waveform augmentation on every utterance plus the masks). The configurations
alternate within one run, after an untimed warm-up epoch. The first epoch's sorted
order is used, and the first batches' shapes are printed so the padding can be
seen.
"""
import argparse
import json
import os
import sys
import time

from gluon_ds2.atomic import atomic_write_text
from gluon_ds2.augment import WaveformAugment
from gluon_ds2.batchify import make_dataloader
from gluon_ds2.config import AudioConfig, add_arguments, from_args
from gluon_ds2.dataset import SpeechDataset, prepare_entries
from gluon_ds2.manifest import read_manifests
from gluon_ds2.model import output_length
from gluon_ds2.sampler import EpochKeyedBatches, SortagradSampler
from gluon_ds2.vocab import Vocabulary

# Preset -> the train.py flags it sets. 'all' is the worst case: every waveform
# augmentation on every utterance, plus the demo's SpecAugment masks.
AUGMENT_PRESETS = {
    'none': [],
    'specaugment': ['--freq_masks=2', '--time_masks=2'],
    'moderate': ['--freq_masks=2', '--time_masks=2', '--speed_perturb', '--noise_prob=0.5',
                 '--reverb_prob=0.5', '--band_limit_prob=0.5', '--gain_prob=0.5',
                 '--clip_prob=0.2'],
    'all': ['--freq_masks=2', '--time_masks=2', '--speed_perturb', '--noise_prob=1',
            '--reverb_prob=1', '--band_limit_prob=1', '--gain_prob=1', '--clip_prob=1'],
}


def make_dataset(entries, audio_config, preset):
    """The training Dataset for an ``AUGMENT_PRESETS`` name, built as training builds it."""
    parser = add_arguments(argparse.ArgumentParser(), groups=('data',))
    data = from_args(parser.parse_args(AUGMENT_PRESETS[preset])).data
    masks = dict(freq_masks=data.freq_masks, freq_mask_width=data.freq_mask_width,
                 time_masks=data.time_masks, time_mask_width=data.time_mask_width)
    return SpeechDataset(entries, audio_config,
                         augment=masks if data.freq_masks or data.time_masks else None,
                         waveform_augment=WaveformAugment.from_config(data),
                         output_length=output_length)


def one_epoch(dataset, batch_size, workers, show_shapes, max_batches=None):
    sampler = SortagradSampler(dataset.lengths, batch_size)
    loader = make_dataloader(dataset, EpochKeyedBatches(sampler), num_workers=workers,
                             round_to=32)
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
        if max_batches and batches >= max_batches:
            break
    seconds = time.time() - start
    return dict(workers=workers, batches=batches, utterances=utterances, seconds=seconds,
                utterances_per_s=utterances / seconds, audio_s_per_s=audio / seconds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('manifests', help='manifest(s), comma-separated')
    parser.add_argument('--workers', default='0,1,2')
    parser.add_argument('--batch_size', type=int, default=16)
    parser.add_argument('--augment', default='none',
                        help='augmentation presets to compare, comma-separated: %s'
                             % ', '.join(AUGMENT_PRESETS))
    parser.add_argument('--max_freq', type=float, default=None)
    parser.add_argument('--max_batches', type=int, default=None,
                        help='stop each epoch after this many batches')
    parser.add_argument('--training_audio_s_per_s', type=float, default=160.0,
                        help='what training consumes, for the last column (the demo model: '
                             '~160 audio-s/s on 2 cores, README)')
    parser.add_argument('--out', default=None, help='write <out>.json and <out>.md')
    args = parser.parse_args(argv)
    presets = args.augment.split(',')
    unknown = [p for p in presets if p not in AUGMENT_PRESETS]
    if unknown:
        parser.error('--augment: unknown presets %s; known: %s' % (unknown, ', '.join(
            AUGMENT_PRESETS)))
    print('command: python scripts/bench_loader.py %s --workers %s --augment %s --batch_size %d'
          '%s%s' % (args.manifests, args.workers, args.augment, args.batch_size,
                    ' --max_freq %g' % args.max_freq if args.max_freq else '',
                    ' --max_batches %d' % args.max_batches if args.max_batches else ''))
    audio_config = AudioConfig(max_freq=args.max_freq)
    entries, dropped = prepare_entries(read_manifests(args.manifests), Vocabulary.from_file(),
                                       audio_config, output_length=output_length)
    hours = sum(e['duration'] for e in entries) / 3600
    print('%d utterances, %.2f h (dropped: %s)' % (len(entries), hours, dict(dropped) or 'none'))
    # Untimed: the first epoch pays for MXNet's start and a cold file cache.
    one_epoch(make_dataset(entries, audio_config, 'none'), args.batch_size, 0,
              show_shapes=False, max_batches=args.max_batches)
    rows = []
    for index, workers in enumerate(int(w) for w in args.workers.split(',')):
        for preset in presets:
            row = one_epoch(make_dataset(entries, audio_config, preset), args.batch_size,
                            workers, show_shapes=index == 0 and preset == presets[0],
                            max_batches=args.max_batches)
            row['augment'] = preset
            rows.append(row)
            print('%d worker(s), augment %s: %d batches in %.1f s, %.0f utterances/s, '
                  '%.0f audio-s/s' % (workers, preset, row['batches'], row['seconds'],
                                      row['utterances_per_s'], row['audio_s_per_s']),
                  flush=True)
    if args.out:
        lines = ['| augmentation | DataLoader workers | utterances / s | audio s / s | '
                 'speed-up vs first | x training (%g audio s / s) |'
                 % args.training_audio_s_per_s,
                 '|---|---:|---:|---:|---:|---:|']
        for row in rows:
            lines.append('| %s | %d | %.0f | %.0f | %.2f | %.1f |' % (
                row['augment'], row['workers'], row['utterances_per_s'], row['audio_s_per_s'],
                row['audio_s_per_s'] / rows[0]['audio_s_per_s'],
                row['audio_s_per_s'] / args.training_audio_s_per_s))
        lines.append('')
        lines.append('%s of %d utterances (%.2f h), batch %d, %d CPU cores.'
                     % ('One epoch' if not args.max_batches else
                        'The first %d batches of an epoch' % args.max_batches,
                        len(entries), hours, args.batch_size, os.cpu_count()))
        atomic_write_text(args.out + '.json',
                          json.dumps(dict(command=' '.join(sys.argv), rows=rows), indent=2) + '\n')
        atomic_write_text(args.out + '.md', '\n'.join(lines) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
