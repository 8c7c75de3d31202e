"""Manifest rows -> (features, label ids): a Gluon ``Dataset``.

``prepare_entries`` checks every row once, before batching: transcripts against
the vocabulary, audio lengths, duration limits and CTC alignability. Lengths
come from the manifest's ``wav_filesize`` (16-bit mono PCM WAV with the
44-byte header ``data/download.py`` writes) once the headers of a random
sample of files confirm that layout; otherwise from every file's header. A
file is then first opened when it is read, where a missing file is skipped
and a length the size misjudged is checked again. What fails is skipped and
counted, or raised with the manifest and line named, by ``on_error``.
``SpeechDataset`` then reads, augments (training only: waveform, then
SpecAugment) and featurizes one utterance per item; a file that breaks only
when read in full (a truncated FLAC) becomes a skip marker the batchify
function drops and counts.
"""
import collections
import logging
import os

import numpy as np
import soundfile
from mxnet import gluon

from .featurizer import AudioError, featurize, read_audio, spec_augment
from .manifest import read_manifests
from .progress import progress_bar

__all__ = ['prepare_entries', 'load_entries', 'SpeechDataset', 'SkippedUtterance',
           'ctc_min_output_length', 'sizes_give_lengths']

logger = logging.getLogger(__name__)

SkippedUtterance = collections.namedtuple('SkippedUtterance', ['wav_filename', 'reason'])


def ctc_min_output_length(label_ids):
    """Frames CTC needs for a label: one per label, plus a blank between repeats."""
    repeats = sum(1 for a, b in zip(label_ids, label_ids[1:]) if a == b)
    return len(label_ids) + repeats


def _where(row):
    return '%s, line %d' % (row.manifest, row.source_line) if 'manifest' in row._fields else \
        row.wav_filename


def _frames(num_samples, stride_size, window_size):
    """Spectrogram frames of ``num_samples`` (shorter audio is padded to one window)."""
    return (max(num_samples, window_size) - window_size) // stride_size + 1


def _audio_frames(path, sample_rate, stride_size, window_size):
    """Spectrogram frames of a WAV from its header; raises AudioError."""
    try:
        info = soundfile.info(path)
    except (RuntimeError, soundfile.LibsndfileError, OSError) as err:
        # libsndfile reports a missing file as a 'System error', not FileNotFoundError.
        if not os.path.exists(path):
            raise AudioError('%s: audio file not found' % path) from None
        raise AudioError('%s: cannot read audio header (%s)' % (path, err)) from None
    if info.samplerate != sample_rate:
        raise AudioError('%s: expected %d Hz audio, found %d Hz'
                         % (path, sample_rate, info.samplerate))
    if info.channels != 1:
        raise AudioError('%s: expected mono audio, found %d channels' % (path, info.channels))
    if info.frames == 0:
        raise AudioError('%s: audio file holds no samples' % path)
    return _frames(info.frames, stride_size, window_size), info.frames / info.samplerate


# Bytes before the samples of a canonical PCM WAV (RIFF + fmt + data chunk headers).
WAV_HEADER_BYTES = 44
# How many files' headers are read to decide whether the manifest's sizes can be trusted.
HEADER_SAMPLE = 32


def _size_frames(wav_filesize, audio_config):
    """(frames, seconds) of a 16-bit mono PCM WAV of ``wav_filesize`` bytes."""
    samples = max(0, (int(wav_filesize) - WAV_HEADER_BYTES) // 2)
    return (_frames(samples, audio_config.stride_size, audio_config.window_size),
            samples / audio_config.sample_rate)


def sizes_give_lengths(df, audio_config, sample=HEADER_SAMPLE, seed=0):
    """True if the manifest's ``wav_filesize`` gives each WAV's exact length.

    Reads the headers of up to ``sample`` random rows: all must be ``.wav``
    files of 16-bit mono PCM at the configured rate whose size is exactly
    the 44-byte header plus the samples. Any other file (FLAC, 24-bit,
    stereo, extra chunks, a size out of date) means False.
    """
    if not len(df):
        return True
    if not df.wav_filename.str.lower().str.endswith('.wav').all():
        return False
    rows = df.sample(n=min(sample, len(df)), random_state=seed)
    for path, size in zip(rows.wav_filename, rows.wav_filesize):
        try:
            info = soundfile.info(path)
        except (RuntimeError, soundfile.LibsndfileError, OSError):
            return False
        if (info.subtype, info.channels, info.samplerate) != \
                ('PCM_16', 1, audio_config.sample_rate) or \
                int(size) != WAV_HEADER_BYTES + 2 * info.frames:
            return False
    return True


def prepare_entries(df, vocab, audio_config, output_length=None, max_duration=None,
                    on_error='skip', progress=True, max_label_length=None):
    """Validate manifest rows and attach label ids, frames and durations.

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`gluon_ds2.manifest.read_manifests`.
    vocab : Vocabulary
    audio_config : AudioConfig
    output_length : callable or None
        Frames -> model output steps (``DeepSpeech2.output_length``); when given,
        utterances CTC cannot align are dropped and counted.
    max_duration : float or None
        Drop longer utterances (seconds).
    on_error : {'skip', 'fail'}
        Bad rows are counted and dropped, or raise ``ValueError``.
    max_label_length : int or None
        Drop (and count) transcripts with more labels than this: the GPU CTC
        kernel's ceiling (:data:`gluon_ds2.devices.GPU_CTC_MAX_LABELS`).

    Returns
    -------
    entries : list of dict
        ``wav_filename``, ``transcript``, ``labels`` (list of int), ``frames``,
        ``duration``, ``wav_filesize``.
    dropped : collections.Counter
        Dropped rows by reason.
    """
    if on_error not in ('skip', 'fail'):
        raise ValueError("on_error must be 'skip' or 'fail', got %r" % (on_error,))
    entries, dropped = [], collections.Counter()
    trust_sizes = sizes_give_lengths(df, audio_config)
    if not trust_sizes:
        logger.info('reading the header of every audio file: the manifest\'s wav_filesize '
                    'does not give their lengths (not all 16-bit mono PCM WAV at %d Hz with '
                    'a 44-byte header)', audio_config.sample_rate)
    rows = df.itertuples(index=False)
    rows = progress_bar(rows, total=len(df), desc='checking manifest', unit='utt',
                        leave=False, disable=not progress)
    for row in rows:
        reason = None
        transcript = row.transcript
        if not transcript.strip():
            reason, kind = '%s: empty transcript for %s' % (_where(row), row.wav_filename), \
                'empty_transcript'
        elif vocab.unknown_characters(transcript):
            reason, kind = ('%s: transcript has characters not in the vocabulary: %r'
                            % (_where(row), ''.join(vocab.unknown_characters(transcript))),
                            'bad_transcript')
        elif trust_sizes:
            frames, duration = _size_frames(row.wav_filesize, audio_config)
        else:
            try:
                frames, duration = _audio_frames(row.wav_filename, audio_config.sample_rate,
                                                 audio_config.stride_size,
                                                 audio_config.window_size)
            except AudioError as err:
                reason, kind = '%s: %s' % (_where(row), err), 'bad_audio'
        if reason is None:
            labels = vocab.encode(transcript)
            if max_duration is not None and duration > max_duration:
                dropped['too_long'] += 1
                continue
            if output_length is not None and \
                    output_length(frames) < ctc_min_output_length(labels):
                dropped['unalignable'] += 1
                continue
            if max_label_length is not None and len(labels) > max_label_length:
                if not dropped['label_too_long_for_gpu_ctc']:
                    logger.warning('%s: %d labels, more than the %d the GPU CTC kernel takes; '
                                   'such utterances are dropped (train on CPU to keep them)',
                                   _where(row), len(labels), max_label_length)
                dropped['label_too_long_for_gpu_ctc'] += 1
                continue
            entries.append(dict(wav_filename=row.wav_filename, transcript=transcript,
                                labels=labels, frames=frames, duration=duration,
                                wav_filesize=int(row.wav_filesize)))
            continue
        if on_error == 'fail':
            raise ValueError(reason)
        if dropped[kind] < 5:
            logger.warning('skipping: %s', reason)
        dropped[kind] += 1
    for kind, count in sorted(dropped.items()):
        logger.info('dropped %d utterances: %s', count, kind.replace('_', ' '))
    return entries, dropped


def load_entries(manifests, vocab, audio_config, on_error='skip', output_length=None,
                 max_duration=None, progress=True, max_label_length=None):
    """Manifest(s) -> checked entries and drop counts, malformed rows included.

    ``manifests`` is a list or a comma-separated string; the other arguments
    are those of :func:`prepare_entries`. Raises ``ValueError`` when nothing
    usable is left.
    """
    df = read_manifests(manifests, on_error=on_error)
    entries, dropped = prepare_entries(df, vocab, audio_config, output_length=output_length,
                                       max_duration=max_duration, on_error=on_error,
                                       progress=progress, max_label_length=max_label_length)
    skipped_rows = df.attrs.get('skipped_rows', 0)
    if skipped_rows:
        dropped['malformed_row'] += skipped_rows
    if not entries:
        raise ValueError('%s: no usable utterances (dropped: %s)' % (manifests, dict(dropped)))
    return entries, dropped


class SpeechDataset(gluon.data.Dataset):
    """Item ``i`` -> (features float32 (T, bins), label ids int32 (L,)).

    An audio file that fails to read becomes a :class:`SkippedUtterance` when
    ``on_error='skip'`` (the batchify function drops and counts it).

    With augmentation, items are keyed ``(epoch, i)`` and every draw is
    seeded by ``(seed, epoch, i)``: the same audio and masks in any worker
    process, and again after a resume. Unkeyed items (evaluation) are never
    augmented.

    Parameters
    ----------
    entries : list of dict
        From :func:`prepare_entries`.
    audio_config : AudioConfig
    on_error : {'skip', 'fail'}
    augment : dict or None
        Keyword arguments of :func:`~gluon_ds2.featurizer.spec_augment`.
    seed : int
    waveform_augment : WaveformAugment or None
        Applied to the samples before featurization; babble noise is drawn
        from other entries of this dataset.
    output_length : callable or None
        Frames -> model output steps: with it, a speed perturbation that would
        leave CTC too few steps for the transcript is not applied.
    """

    def __init__(self, entries, audio_config, on_error='skip', augment=None, seed=0,
                 waveform_augment=None, output_length=None):
        self.entries = entries
        self.audio_config = audio_config
        self.on_error = on_error
        self.augment = augment
        self.seed = seed
        self.waveform_augment = waveform_augment
        self.output_length = output_length

    def __len__(self):
        return len(self.entries)

    @property
    def lengths(self):
        """Sort keys for the sampler: WAV file sizes, as the reference sorts."""
        return [entry['wav_filesize'] for entry in self.entries]

    def epoch_lengths(self, epoch):
        """Sort keys for ``epoch``: the file sizes over that epoch's speed factors.

        Speed perturbation changes every utterance's length, and differently in
        every epoch; batches sorted by the unperturbed sizes pad up to a tenth
        more (on the demo corpus 87 % of the padded frames are audio, against
        95 % sorted by the perturbed lengths).
        """
        augment = self.waveform_augment
        if augment is None or not augment.speed_factors:
            return self.lengths
        return [entry['wav_filesize'] / augment.speed_factor((self.seed, epoch, index))
                for index, entry in enumerate(self.entries)]

    def _fits(self, labels):
        """``num_samples -> bool``: can CTC align ``labels`` over that much audio?"""
        if self.output_length is None:
            return None
        needed = ctc_min_output_length(labels)
        stride, window = self.audio_config.stride_size, self.audio_config.window_size
        return lambda num_samples: self.output_length(_frames(num_samples, stride,
                                                             window)) >= needed

    def _babble_source(self, index):
        """``(count, rng) -> list of samples`` of other entries (unreadable ones left out)."""
        def read_others(count, rng):
            others = [i for i in rng.integers(len(self.entries), size=count) if i != index]
            talkers = []
            for other in others:
                try:
                    talkers.append(read_audio(self.entries[other]['wav_filename'],
                                              self.audio_config.sample_rate))
                except AudioError:
                    continue
            return talkers
        return read_others

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (None, key)
        entry = self.entries[index]
        try:
            samples = read_audio(entry['wav_filename'], self.audio_config.sample_rate)
        except AudioError as err:
            if self.on_error == 'fail':
                raise
            return SkippedUtterance(entry['wav_filename'], str(err))
        fits = self._fits(entry['labels'])
        if fits is not None and not fits(len(samples)):  # its manifest size misjudged it
            return SkippedUtterance(entry['wav_filename'], 'too short for CTC to align its '
                                                           'transcript')
        if self.waveform_augment is not None and epoch is not None:
            samples = self.waveform_augment(samples, self.audio_config.sample_rate,
                                            (self.seed, epoch, index),
                                            fits=fits,
                                            babble_source=self._babble_source(index))
        features = featurize(samples, self.audio_config)
        if self.augment and epoch is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
            features = spec_augment(features, rng, **self.augment)
        return features, np.asarray(entry['labels'], dtype=np.int32)
