"""
    python data/combine_manifests.py --output /tmp/librispeech_data/final_train_dataset.csv \\
        --max_duration 27 \\
        /tmp/librispeech_data/train-clean-100/LibriSpeech/train-clean-100.csv \\
        /tmp/librispeech_data/train-clean-360/LibriSpeech/train-clean-360.csv \\
        /tmp/librispeech_data/train-other-500/LibriSpeech/train-other-500.csv
    python data/combine_manifests.py --output /tmp/librispeech_data/final_eval_dataset.csv \\
        --max_duration 27 \\
        /tmp/librispeech_data/dev-clean/LibriSpeech/dev-clean.csv \\
        /tmp/librispeech_data/dev-other/LibriSpeech/dev-other.csv

Concatenate manifests and drop utterances longer than ``--max_duration``
seconds: steps 2 and 3 of the reference's ``run_deep_speech.sh``, which
joined the split manifests with ``sed`` and kept rows whose ``soxi -D``
duration was at most 27 s. Durations here come from each WAV header.
"""
import argparse
import logging

from gluon_ds2.manifest import combine_manifests


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('manifests', nargs='+', help='input manifests, in order')
    parser.add_argument('--output', required=True, help='combined manifest to write')
    parser.add_argument('--max_duration', type=float, default=None,
                        help='drop utterances longer than this many seconds (default: keep all)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    kept, dropped = combine_manifests(args.manifests, args.output, args.max_duration)
    hours = kept['duration'].sum() / 3600.0
    limit = '' if args.max_duration is None else ' longer than %g s' % args.max_duration
    print('%s: kept %d rows (%.2f hours), dropped %d rows%s'
          % (args.output, len(kept), hours, dropped, limit))


if __name__ == '__main__':
    main()
