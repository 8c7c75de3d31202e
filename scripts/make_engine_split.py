"""python scripts/make_engine_split.py --out_dir /tmp/flite_split \
    data/demo_data/test/LibriSpeech/test.csv data/demo_data/test_ood/LibriSpeech/test_ood.csv

A held-out-engine check: the transcripts of prepared manifests read again by
CMU Flite, a synthesizer the demo corpus never uses (diphone and statistical
parametric voices built from recordings of people; Debian package ``flite``,
``apt-get install flite``). It measures how a model trained on espeak (and
Pico) hears a speech engine it has never heard, the way test_ood measures text
it has never read:

    python evaluate.py runs/demo --eval_data_dir=/tmp/flite_split/test_flite.csv

Each input manifest ``<name>.csv`` gives ``<out_dir>/<name>_flite.csv`` (same
transcripts, in the same order) and its WAV files under ``<out_dir>/<name>_flite/``.
Voices take turns (``--voices``), each utterance with a seeded speed
(``duration_stretch``) and pitch; the same ``--seed`` gives the same files. Audio
is trimmed, resampled to 16 kHz and padded with 0.1-0.3 s of quiet, as the demo
corpus is.
"""
import argparse
import concurrent.futures
import functools
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile
import soxr

from gluon_ds2.manifest import read_manifest, write_manifest
from gluon_ds2.progress import progress_bar

__all__ = ['flite_voices', 'synthesize_flite', 'make_engine_split', 'main']

logger = logging.getLogger(__name__)

DEFAULT_VOICES = ('kal16', 'awb', 'rms', 'slt', 'kal')
SAMPLE_RATE = 16000
STRETCH_RANGE = (0.85, 1.15)   # flite's duration_stretch: > 1 is slower
PITCH_SCALE_RANGE = (0.85, 1.2)
PAUSE_SECONDS = (0.1, 0.3)
SILENCE_THRESHOLD = 1e-3
DITHER = 2e-4


def _flite_binary(flite):
    path = shutil.which(flite)
    if path is None:
        raise RuntimeError('%s not found: this check needs CMU Flite (Debian/Ubuntu: '
                           'apt-get install flite), or pass --flite PATH' % flite)
    return path


def flite_voices(flite='flite'):
    """The voice names ``flite -lv`` lists."""
    out = subprocess.run([_flite_binary(flite), '-lv'], capture_output=True, text=True,
                         check=True).stdout
    return out.split(':', 1)[1].split()


def synthesize_flite(text, voice, stretch, pitch_scale, flite='flite'):
    """Float32 samples and their rate of ``text`` read by a flite voice.

    ``pitch_scale`` multiplies the voice's mean F0 (``int_f0_target_mean``),
    which the diphone voices follow; the statistical voices ignore it.
    """
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, 'out.wav')
        command = [_flite_binary(flite), '-voice', voice, '--setf',
                   'duration_stretch=%.3f' % stretch, '--setf',
                   'int_f0_target_mean=%.1f' % (100 * pitch_scale), '-t', text, '-o', wav]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0 or not os.path.exists(wav):
            raise RuntimeError('flite failed on %r with voice %s (exit %d): %s'
                               % (text, voice, done.returncode, done.stderr.strip()))
        audio, rate = soundfile.read(wav, dtype='float32')
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    return audio, rate


def _finish(audio, rate, rng):
    """Trim to the speech, resample to 16 kHz, pad with a seeded pause and dither."""
    voiced = np.flatnonzero(np.abs(audio) > SILENCE_THRESHOLD)
    if voiced.size == 0:
        raise RuntimeError('flite gave only silence')
    speech = audio[voiced[0]:voiced[-1] + 1]
    peak = np.abs(speech).max()
    speech = speech * (0.8 / peak) if peak > 0.8 else speech
    if rate != SAMPLE_RATE:
        speech = soxr.resample(speech, rate, SAMPLE_RATE)
    lead, trail = (rng.uniform(*PAUSE_SECONDS, size=2) * SAMPLE_RATE).astype(int)
    padded = np.pad(speech, (lead, trail))
    return padded + rng.normal(0.0, DITHER, padded.size).astype(np.float32)


def _make_utterance(job, flite, seed):
    index, text, voice, wav_path = job
    rng = np.random.default_rng([seed, index])
    stretch, pitch_scale = rng.uniform(*STRETCH_RANGE), rng.uniform(*PITCH_SCALE_RANGE)
    audio, rate = synthesize_flite(text, voice, stretch, pitch_scale, flite)
    samples = _finish(audio, rate, rng)
    temporary = wav_path + '.tmp.wav'
    soundfile.write(temporary, samples, SAMPLE_RATE, subtype='PCM_16')
    os.replace(temporary, wav_path)
    return wav_path


def make_engine_split(manifests, out_dir, voices=DEFAULT_VOICES, seed=1, flite='flite',
                      workers=None, suffix='_flite'):
    """Re-voice each manifest's transcripts with flite; returns the new manifests' paths
    (``<out_dir>/<name><suffix>.csv``)."""
    available = flite_voices(flite)
    unknown = [v for v in voices if v not in available]
    if unknown:
        raise ValueError('--voices: flite has no voice %s (it has %s)'
                         % (', '.join(unknown), ', '.join(available)))
    out_dir = Path(out_dir)
    written = []
    for manifest in manifests:
        frame = read_manifest(manifest)
        name = Path(manifest).stem + suffix
        (out_dir / name).mkdir(parents=True, exist_ok=True)
        jobs = [(i, text, voices[i % len(voices)],
                 str((out_dir / name / ('%05d-%s.wav' % (i, voices[i % len(voices)])))
                     .resolve()))
                for i, text in enumerate(frame['transcript'])]
        task = functools.partial(_make_utterance, flite=flite, seed=seed)
        # Threads suffice: the work is in the flite processes and in numpy.
        with concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count()) as pool:
            paths = list(progress_bar(pool.map(task, jobs), total=len(jobs),
                                      desc='flite %s' % name, unit='utt'))
        rows = [(path, os.path.getsize(path), text)
                for path, text in zip(paths, frame['transcript'])]
        target = out_dir / ('%s.csv' % name)
        write_manifest(rows, str(target))
        written.append(target)
        logger.info('%s: %d utterances read by %s', target, len(rows), ', '.join(voices))
    return written


def parse_args(argv=None):
    """Command-line flags of this script."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('manifests', nargs='+', help='prepared manifests whose transcripts '
                        'flite reads (their audio is not used)')
    parser.add_argument('--out_dir', required=True,
                        help='receives <name>_flite.csv and <name>_flite/*.wav')
    parser.add_argument('--voices', default=','.join(DEFAULT_VOICES),
                        help='flite voices, taking turns (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=1, help='default: %(default)s')
    parser.add_argument('--flite', default='flite', help='the flite program (default: on PATH)')
    parser.add_argument('--workers', type=int, default=None,
                        help='flite processes at a time (default: the number of CPUs)')
    return parser.parse_args(argv)


def main(argv=None):
    """Entry point."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    voices = tuple(v for v in args.voices.split(',') if v)
    try:
        paths = make_engine_split(args.manifests, args.out_dir, voices, args.seed, args.flite,
                                  args.workers)
    except (RuntimeError, ValueError) as error:
        sys.exit('make_engine_split: %s' % error)
    for path in paths:
        print(path)


if __name__ == '__main__':
    main()
