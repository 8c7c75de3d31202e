"""Score a checkpoint: WER/CER, per-utterance results, the worst utterances.

    python evaluate.py runs/demo                       # its best checkpoint, its eval set
    python evaluate.py runs/demo/ckpt-00001200.ckpt \\
        --eval_data_dir=data/demo_data/test/LibriSpeech/test.csv
    python evaluate.py runs/demo --decoder=beam --lm=runs/demo/lm.arpa --alpha=0.5 --beta=1.0
    python evaluate.py runs/demo --decoder=greedy,beam --lm=runs/demo/lm.arpa \\
        --output=greedy.jsonl,beam.jsonl            # both on the same forward passes
"""
import argparse
import logging
import sys

from gluon_ds2 import scoring


def main(argv=None):
    parser = scoring.add_arguments(argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    args = parser.parse_args(argv)
    try:
        reports = scoring.run(args)
    except (ValueError, RuntimeError, OSError) as err:  # OSError: e.g. a missing manifest
        print('evaluate.py: error: %s' % err, file=sys.stderr)
        return 1
    for name, _, _, output, report in reports:
        if len(reports) > 1:
            print('decoder           %s' % scoring.describe_decoder(args, name))
        print(report)
        print('per-utterance results: %s' % output)
    return 0


if __name__ == '__main__':
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    sys.exit(main())
