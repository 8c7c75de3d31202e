"""Build a word n-gram language model (ARPA) from manifest transcripts.

    python scripts/build_lm.py data/demo_data/train/LibriSpeech/train.csv \\
        --order 3 --output runs/demo/lm.arpa

For real corpora use KenLM's lmplz; this is for the demo and tests, where
KenLM's binaries are not installable from PyPI (see gluon_ds2.lm).
"""
import argparse
import sys

from gluon_ds2.lm import write_arpa
from gluon_ds2.manifest import read_manifests


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('manifests', help='manifest(s) whose transcripts train the LM, '
                                          'comma-separated')
    parser.add_argument('--output', required=True, help='ARPA file to write')
    parser.add_argument('--order', type=int, default=3)
    args = parser.parse_args(argv)
    try:
        sentences = [t for t in read_manifests(args.manifests)['transcript'] if t.strip()]
        write_arpa(sentences, args.output, order=args.order)
    except (ValueError, OSError) as err:
        print('build_lm.py: error: %s' % err, file=sys.stderr)
        return 1
    print('%d-gram LM from %d sentences: %s' % (args.order, len(sentences), args.output))
    return 0


if __name__ == '__main__':
    sys.exit(main())
