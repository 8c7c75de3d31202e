"""Transcribe audio files with a checkpoint (see gluon_ds2/transcribe.py for the method).

    python transcribe.py runs/demo speech.wav
    python transcribe.py runs/demo/ckpt-00001200.ckpt a.flac b.ogg --json > transcripts.jsonl
    python transcribe.py runs/demo talk.wav --decoder=beam --lm=lm.arpa --alpha=0.5 --beta=1.0
"""
import logging
import sys

from gluon_ds2 import transcribe

if __name__ == '__main__':
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    sys.exit(transcribe.main())
