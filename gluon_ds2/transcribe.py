"""Transcribe audio files of any format, rate and length with a checkpoint.

    python transcribe.py runs/demo speech.wav
    python transcribe.py runs/demo/ckpt-00001200.ckpt a.flac b.ogg --json > transcripts.jsonl
    python transcribe.py runs/demo talk.wav --decoder=beam --lm=lm.arpa --alpha=0.5 --beta=1.0

The model is rebuilt from the checkpoint alone, by the same code as
``evaluate.py``. One file flows: ``read_audio`` (anything libsndfile reads;
other rates resampled with soxr, channels averaged) -> windows -> per window:
featurize (normalized over the window, as training normalizes over an
utterance), model, decoder -> window transcripts joined with one space. The
output is ``path<TAB>text`` per file, or with ``--json`` one object per line
with ``path``, ``text``, ``duration`` (seconds of audio), ``decode_seconds``
(wall time for the file, reading included) and ``windows`` ([start, end]
seconds).

Long files are cut into windows of at most ``--max_window_seconds`` (20 s), so
the model's memory stays bounded whatever the length (the decoded samples are
held in memory: 7.7 MB per minute at 16 kHz). The windows do not overlap. Each cut
falls in the last quarter of its window, in the middle of the longest run of
quiet 10 ms frames there: frames whose energy is within 10 dB of the quietest
frame of that span, or 40 dB below the loudest frame of the file. A pause
between sentences or words is therefore where a cut goes, and a cut through a
word happens only when the speech runs for the whole span without one.

A window whose loudest 10 ms frame is below -60 dBFS is silence: it is
transcribed as '' without running the model (normalization would otherwise
raise its noise floor to the level of speech). A file that cannot be read is
reported on stderr, naming it; the other files are still transcribed and the
exit status is 1.
"""
import argparse
import json
import logging
import sys
import time

import mxnet as mx
import numpy as np

from .batchify import pad_arrays
from .config import at_least
from .devices import select_devices
from .featurizer import AudioError, featurize, read_audio
from .inference import add_decoder_arguments, load_model, make_decoder, predict
from .precision import add_dtype_argument, setup_precision

__all__ = ['frame_energies', 'split_windows', 'is_silent', 'transcribe_samples',
           'add_arguments', 'run', 'main']

logger = logging.getLogger(__name__)

FRAME_SECONDS = 0.01
QUIET_ABOVE_FLOOR_DB = 10.0
QUIET_BELOW_PEAK_DB = 40.0
SILENCE_DBFS = -60.0


def frame_energies(samples, frame_size):
    """Mean square of each whole ``frame_size``-sample frame: shape (len // frame_size,)."""
    frames = len(samples) // frame_size
    return np.square(samples[:frames * frame_size]).reshape(frames, frame_size).mean(axis=1)


def _longest_run(mask):
    """(start, length) of the first longest run of True in a boolean vector."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    longest = np.argmax(ends - starts)
    return int(starts[longest]), int(ends[longest] - starts[longest])


def split_windows(samples, sample_rate, max_seconds=20.0):
    """Cut a recording into consecutive windows of at most ``max_seconds``.

    Returns
    -------
    list of (start, end)
        Sample ranges covering ``samples`` without gap or overlap; cuts are at
        the middle of the longest quiet run in the last quarter of each window
        (see the module docstring).
    """
    if max_seconds < 1:
        raise ValueError('the window must be at least 1 second long, got %r' % (max_seconds,))
    max_size = int(max_seconds * sample_rate)
    frame_size = int(FRAME_SECONDS * sample_rate)
    energies = frame_energies(samples, frame_size)
    quiet_below_peak = energies.max() * 10 ** (-QUIET_BELOW_PEAK_DB / 10) if len(energies) else 0
    windows, start = [], 0
    while len(samples) - start > max_size:
        end = start + max_size
        # The whole frames inside [end - max_size / 4, end].
        first, last = -(-(end - max_size // 4) // frame_size), end // frame_size
        span = energies[first:last]
        quiet = span <= max(span.min() * 10 ** (QUIET_ABOVE_FLOOR_DB / 10), quiet_below_peak)
        run_start, run_length = _longest_run(quiet)
        cut = (first + run_start + run_length // 2) * frame_size
        windows.append((start, cut))
        start = cut
    windows.append((start, len(samples)))
    return windows


def is_silent(samples, sample_rate):
    """True if no 10 ms frame of ``samples`` reaches ``SILENCE_DBFS`` (RMS, full scale = 1)."""
    energies = frame_energies(samples, int(FRAME_SECONDS * sample_rate))
    loudest = energies.max() if len(energies) else np.mean(np.square(samples))
    return loudest < 10 ** (SILENCE_DBFS / 10)


def transcribe_samples(net, samples, audio_config, contexts, decode, max_seconds=20.0,
                       batch_size=8):
    """Transcript of one recording, window by window.

    Parameters
    ----------
    samples : numpy.ndarray
        Mono samples at ``audio_config.sample_rate``.
    decode : callable
        ``decode(logits, output_lengths) -> list of str``
        (:func:`gluon_ds2.inference.make_decoder`).
    batch_size : int
        Windows per forward pass: the model holds at most ``batch_size``
        windows of ``max_seconds`` at once.

    Returns
    -------
    text : str
        Window transcripts joined by one space, white space normalized.
    windows : list of (start, end)
        The sample ranges of the windows.
    """
    rate = audio_config.sample_rate
    windows = split_windows(samples, rate, max_seconds)
    texts = [''] * len(windows)
    spoken = [i for i, (start, end) in enumerate(windows)
              if not is_silent(samples[start:end], rate)]
    for first in range(0, len(spoken), batch_size):
        indices = spoken[first:first + batch_size]
        features, feature_lengths = pad_arrays(
            [featurize(samples[windows[i][0]:windows[i][1]], audio_config) for i in indices], 0.0)
        # (N, T, bins) -> (N, 1, T, bins)
        logits, output_lengths = predict(net, mx.nd.array(features[:, None]),
                                         mx.nd.array(feature_lengths, dtype=np.int32), contexts)
        for i, text in zip(indices, decode(logits, output_lengths)):
            texts[i] = text
    return ' '.join(' '.join(texts).split()), windows


def add_arguments(parser):
    """transcribe.py's flags."""
    parser.add_argument('checkpoint', help='a .ckpt file, or a model directory')
    parser.add_argument('files', nargs='+', metavar='FILE',
                        help='audio files (WAV, FLAC, OGG, ...; any rate, any channel count)')
    parser.add_argument('--which', choices=('best', 'latest'), default='best',
                        help='with a model directory: its best (by eval WER; the default) or '
                             'latest checkpoint')
    parser.add_argument('--json', action='store_true',
                        help='one JSON object per line: path, text, duration, decode_seconds, '
                             'windows')
    parser.add_argument('--max_window_seconds', type=float, default=20.0,
                        help='longest stretch of audio the model sees at once')
    parser.add_argument('--batch_size', type=at_least(1), default=8,
                        help='windows per forward pass')
    parser.add_argument('--num_gpus', type=int, default=None,
                        help='0 = CPU, -1 = all GPUs (default: 1 if a GPU is visible)')
    add_dtype_argument(parser)
    add_decoder_arguments(parser)
    return parser


def run(args, out=sys.stdout, err=sys.stderr):
    """Transcribe ``args.files``; returns the exit status (1 if any file failed).

    Raises ``ValueError``/``RuntimeError`` for a checkpoint or flags that cannot be used.
    """
    contexts = select_devices(num_gpus=args.num_gpus)
    setup_precision(args.dtype, contexts)  # before the model is built
    net, cfg, vocab, meta, path = load_model(args.checkpoint, contexts, which=args.which)
    logger.info('checkpoint %s (epoch %s, step %s)', path, meta.get('epoch'),
                meta.get('global_step'))
    decode = make_decoder(vocab, args.decoder, args.beam_width, args.lm, args.alpha, args.beta,
                          args.decode_processes)
    rate = cfg.audio.sample_rate
    failed = 0
    for audio_path in args.files:
        start = time.time()
        try:
            samples = read_audio(audio_path, rate, convert=True)
        except AudioError as error:
            print('transcribe.py: error: %s' % error, file=err, flush=True)
            failed += 1
            continue
        text, windows = transcribe_samples(net, samples, cfg.audio, contexts, decode,
                                           args.max_window_seconds, args.batch_size)
        mx.nd.waitall()
        if args.json:
            line = json.dumps(dict(path=audio_path, text=text, duration=len(samples) / rate,
                                   decode_seconds=time.time() - start,
                                   windows=[[s / rate, e / rate] for s, e in windows]))
        else:
            line = '%s\t%s' % (audio_path, text)
        print(line, file=out, flush=True)
    return 1 if failed else 0


def main(argv=None):
    parser = add_arguments(argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter))
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (ValueError, RuntimeError) as error:
        print('transcribe.py: error: %s' % error, file=sys.stderr)
        return 1


if __name__ == '__main__':
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    sys.exit(main())
