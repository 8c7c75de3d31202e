"""Transcribe audio files with a checkpoint (see gluon_ds2/transcribe.py for the method).

    python transcribe.py runs/demo speech.wav
    python transcribe.py runs/demo/ckpt-00001200.ckpt a.flac b.ogg --json > transcripts.jsonl
    python transcribe.py runs/demo talk.wav --decoder=beam --lm=lm.arpa --alpha=0.5 --beta=1.0
"""
import logging
import os
import sys

from gluon_ds2.config import default_threads


def main(argv=None):
    # Set before MXNet loads: its OpenMP runtime reads it once.
    os.environ.setdefault('OMP_NUM_THREADS', str(default_threads(0, os.cpu_count())))
    from gluon_ds2 import transcribe
    return transcribe.main(argv)


if __name__ == '__main__':
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    sys.exit(main())
