"""Audio -> normalized log power spectrogram, exactly as the reference computes it.

One utterance flows: ``read_audio`` (soundfile; optional resample/downmix) ->
``spectrogram`` (Hann-windowed frames, rfft, scaled power, log) ->
``normalize`` (per-bin mean/std over the utterance's frames).
"""
import os

import numpy as np
import soundfile

__all__ = ['AudioError', 'read_audio', 'spectrogram', 'normalize', 'featurize',
           'spec_augment']


class AudioError(ValueError):
    """An audio file that cannot be used, with the file named in the message."""


def read_audio(path, sample_rate, convert=False):
    """Read an audio file as float64 mono samples in [-1, 1].

    Parameters
    ----------
    path : str
        Any format libsndfile reads (WAV, FLAC, OGG, ...).
    sample_rate : int
        The rate the model expects.
    convert : bool
        If True, downmix several channels and resample other rates (soxr, high
        quality); if False those are errors, as they are for training data whose
        manifest promises 16 kHz mono.

    Raises
    ------
    AudioError
        Missing, unreadable, truncated or empty file; wrong rate or channel count
        when ``convert`` is False.
    """
    try:
        samples, file_rate = soundfile.read(path, dtype='float64', always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, OSError) as err:
        # libsndfile reports a missing file as a 'System error', not FileNotFoundError.
        if not os.path.exists(path):
            raise AudioError('%s: audio file not found' % path) from None
        raise AudioError('%s: cannot read audio (%s)' % (path, err)) from None
    if samples.shape[0] == 0:
        raise AudioError('%s: audio file holds no samples' % path)
    if samples.shape[1] != 1:
        if not convert:
            raise AudioError('%s: expected mono audio, found %d channels'
                             % (path, samples.shape[1]))
    samples = samples.mean(axis=1)
    if file_rate != sample_rate:
        if not convert:
            raise AudioError('%s: expected %d Hz audio, found %d Hz'
                             % (path, sample_rate, file_rate))
        import soxr  # imported here: only transcription of arbitrary files needs it
        samples = soxr.resample(samples, file_rate, sample_rate, quality='HQ')
    return samples


def spectrogram(samples, sample_rate, stride_ms=10.0, window_ms=20.0, max_freq=None, eps=1e-14):
    """Log power spectrogram, shape (frames, bins): (T, 161) at 16 kHz.

    Frames are cut as the reference cuts them: ``window_size`` samples every
    ``stride_size``, after dropping the tail that does not complete a stride.
    Power is scaled by ``2 / (sum(window**2) * rate)`` for interior bins and by
    ``1 / (...)`` for the DC and Nyquist bins, then ``log(power + eps)``.
    """
    if max_freq is None:
        max_freq = sample_rate / 2
    if max_freq > sample_rate / 2:
        raise ValueError('max_freq (%s) must not exceed half the sample rate (%s)'
                         % (max_freq, sample_rate / 2))
    if stride_ms > window_ms:
        raise ValueError('stride_ms (%s) must not exceed window_ms (%s)' % (stride_ms, window_ms))
    stride_size = int(0.001 * sample_rate * stride_ms)
    window_size = int(0.001 * sample_rate * window_ms)
    samples = np.ascontiguousarray(samples, dtype=np.float64)
    if len(samples) < window_size:
        # Shorter than one window: pad with silence so that one frame exists.
        samples = np.pad(samples, (0, window_size - len(samples)))
    truncate = (len(samples) - window_size) % stride_size
    samples = samples[:len(samples) - truncate]
    num_frames = (len(samples) - window_size) // stride_size + 1
    # (frames, window) view into the samples, no copy.
    frames = np.lib.stride_tricks.as_strided(
        samples, shape=(num_frames, window_size),
        strides=(samples.strides[0] * stride_size, samples.strides[0]), writeable=False)
    window = np.hanning(window_size)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    scale = np.sum(window ** 2) * sample_rate
    power[:, 1:-1] *= 2.0 / scale
    power[:, (0, -1)] /= scale
    freqs = float(sample_rate) / window_size * np.arange(power.shape[1])
    keep = np.where(freqs <= max_freq)[0][-1] + 1
    return np.log(power[:, :keep] + eps)


def normalize(features, eps=1e-6):
    """Per-utterance normalization of each bin: ``(x - mean_t) / (std_t + eps)``."""
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    return (features - mean) / (std + eps)


def featurize(samples, audio_config):
    """Samples -> normalized float32 features (T, bins) for ``audio_config``."""
    features = spectrogram(samples, audio_config.sample_rate, stride_ms=audio_config.stride_ms,
                           window_ms=audio_config.window_ms, max_freq=audio_config.max_freq)
    return normalize(features).astype(np.float32)


def spec_augment(features, rng, freq_masks=0, freq_mask_width=0, time_masks=0,
                 time_mask_width=0):
    """SpecAugment's frequency and time masking (Park et al., 2019), on a copy.

    Each mask sets a band of ``[0, width]`` consecutive bins (or frames) to 0,
    the mean of normalized features. Time masks are at most a fifth of the
    utterance, so short utterances keep most of their frames. Beyond the
    reference, which has no augmentation.

    Parameters
    ----------
    features : (T, bins) array, normalized
    rng : numpy.random.Generator
    """
    features = features.copy()
    frames, bins = features.shape
    for count, width, axis_size, axis in ((freq_masks, freq_mask_width, bins, 1),
                                          (time_masks, min(time_mask_width, frames // 5),
                                           frames, 0)):
        for _ in range(count):
            size = int(rng.integers(0, width + 1))
            start = int(rng.integers(0, axis_size - size + 1))
            if axis == 1:
                features[:, start:start + size] = 0
            else:
                features[start:start + size] = 0
    return features
