"""Build a pruned word n-gram language model (ARPA) from text corpora and manifest transcripts.

    python scripts/build_lm.py data/demo_mirror/lm-norm.txt.gz \\
        --order 3 --min_count 2 --output runs/demo/lm.arpa

Each input is a manifest (``.csv``: its transcripts) or a text file, plain or
gzipped, one sentence a line (``lm-norm.txt.gz`` of the demo corpus, or
LibriSpeech's ``librispeech-lm-norm.txt.gz``); text is normalized as the
transcripts are (ASCII, lower case). For real corpora use KenLM's lmplz; this
is for the demo and tests, where KenLM's binaries are not installable from
PyPI (see gluon_ds2.lm).
"""
import argparse
import gzip
import sys

from gluon_ds2.lm import write_arpa
from gluon_ds2.manifest import read_manifests
from gluon_ds2.vocab import normalize_transcript


def read_sentences(path):
    """Sentences of a manifest (``.csv``) or of a text file (``.gz`` is gunzipped)."""
    if path.endswith('.csv'):
        return [t for t in read_manifests(path)['transcript'] if t.strip()]
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rt', encoding='utf-8') as f:
        return [normalize_transcript(line) for line in f if line.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('inputs', nargs='+',
                        help='manifests (.csv) and text files (.txt, .txt.gz), one sentence a line')
    parser.add_argument('--output', required=True, help='ARPA file to write')
    parser.add_argument('--order', type=int, default=3)
    parser.add_argument('--min_count', type=int, default=1,
                        help='prune n-grams of order 2 and up seen fewer times (default: '
                             '%(default)s, no pruning)')
    args = parser.parse_args(argv)
    try:
        sentences = [s for path in args.inputs for part in path.split(',') if part
                     for s in read_sentences(part)]
        ngrams = write_arpa(sentences, args.output, order=args.order, min_count=args.min_count)
    except (ValueError, OSError) as err:
        print('build_lm.py: error: %s' % err, file=sys.stderr)
        return 1
    print('%d-gram LM from %d sentences, n-grams pruned below %d occurrences: %s (%s)'
          % (args.order, len(sentences), args.min_count, args.output,
             ', '.join('%d %d-grams' % (count, n) for n, count in ngrams.items())))
    return 0


if __name__ == '__main__':
    sys.exit(main())
