"""Waveform augmentation of training utterances: speed, noise, reverberation, band, gain, clipping.

Beyond the reference, which has none. Each stage is a pure function of
float64 samples (and a ``numpy.random.Generator`` where it draws), and
:class:`WaveformAugment` chains the enabled ones in the order a recording
meets them: the talker's speed (``speed_perturb``), noise in the same room
(``coloured_noise`` or ``babble``, ``mix_at_snr``), the room's reverberation
(``room_impulse_response``) and the channel's band (telephone or cheap
microphone), both linear filters applied in one FFT pass (``room_and_channel``),
then the converter (``apply_gain``, ``clip``). It runs on the samples before
featurization; SpecAugment then masks the features.

Every stage draws from its own generator, seeded by ``(seed, epoch, index,
stage)``: the same utterance in the same epoch gets the same audio in any
DataLoader worker and after a resume, and switching one stage on or off
leaves the other stages' draws unchanged (what an ablation needs).
"""
import functools
import math

import numpy as np

__all__ = ['NOISE_COLOURS', 'NOISE_TYPES', 'TELEPHONE_BAND', 'WaveformAugment', 'fft_length',
           'speed_perturb', 'coloured_noise', 'babble', 'mix_at_snr', 'room_impulse_response',
           'band_mask', 'room_and_channel', 'apply_gain', 'clip']

# Noise colour -> exponent of its power spectral density, PSD ~ f ** exponent.
NOISE_COLOURS = {'white': 0.0, 'pink': -1.0, 'brown': -2.0, 'blue': 1.0, 'violet': 2.0}
NOISE_TYPES = tuple(NOISE_COLOURS) + ('babble',)
TELEPHONE_BAND = (300.0, 3400.0)
# Below this frequency coloured noise is flat: a PSD of f ** -2 down to DC would put
# nearly all the noise power into a sub-audible rumble the spectrogram barely shows.
NOISE_FLOOR_HZ = 20.0
# Cheap microphones: the low cut and the high cut are drawn from these ranges (Hz).
MICROPHONE_LOW_CUT = (0.0, 400.0)
MICROPHONE_HIGH_CUT = (2000.0, 8000.0)
# Width of the raised-cosine edges of a band mask's pass band, inside the band (Hz).
BAND_EDGE_HZ = 100.0
# Room model: direct path, a few early reflections, then an exponentially decaying tail
# whose energy, relative to the direct path's, is drawn from this range (dB).
EARLY_REFLECTIONS = 6
EARLY_REFLECTION_DELAY_S = (0.002, 0.040)
DIRECT_TO_REVERBERANT_DB = (0.0, 12.0)

# Stage numbers in the seeds; never 0, which numpy's SeedSequence would treat as absent.
_SPEED, _NOISE, _REVERB, _BAND, _GAIN, _CLIP = range(1, 7)


def fft_length(n):
    """Smallest 2**a * 3**b * 5**c >= n: numpy's FFT is slow for lengths with large primes."""
    best = 1 << max(0, int(n) - 1).bit_length()  # the power of two
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            candidate = power35
            while candidate < n:
                candidate *= 2
            best = min(best, candidate)
            power35 *= 3
        power5 *= 5
    return best


def speed_perturb(samples, factor, sample_rate):
    """Play ``samples`` ``factor`` times faster (soxr): the duration divides by ``factor``
    and every frequency is multiplied by it, as a tape played faster (Ko et al., 2015)."""
    if factor == 1.0:
        return samples
    import soxr  # imported here: only speed perturbation needs it
    # Read as if recorded at rate * factor, resampled to the model's rate.
    return soxr.resample(samples, sample_rate * factor, sample_rate, quality='HQ')


@functools.lru_cache(maxsize=256)
def _noise_amplitude(n, colour, sample_rate):
    """Square root of the PSD on the rfft bins of length ``n`` (cached: lengths repeat)."""
    freqs = np.maximum(np.fft.rfftfreq(n, 1.0 / sample_rate), NOISE_FLOOR_HZ)
    amplitude = freqs ** (NOISE_COLOURS[colour] / 2)
    amplitude[0] = 0.0
    amplitude.flags.writeable = False
    return amplitude


def coloured_noise(num_samples, colour, sample_rate, rng):
    """Gaussian noise of unit RMS whose PSD is ~ f ** NOISE_COLOURS[colour].

    Drawn in the frequency domain (complex Gaussian bins scaled by the square
    root of the PSD; flat below ``NOISE_FLOOR_HZ``, no DC) and transformed once.
    """
    if colour not in NOISE_COLOURS:
        raise ValueError('unknown noise colour %r; known: %s' % (colour, ', '.join(NOISE_COLOURS)))
    n = fft_length(max(num_samples, 2))
    bins = n // 2 + 1
    # (2 * bins,) normal draws viewed as (bins,) complex: real, imaginary interleaved.
    spectrum = rng.standard_normal(2 * bins).view(np.complex128)
    noise = np.fft.irfft(spectrum * _noise_amplitude(n, colour, sample_rate), n)[:num_samples]
    return noise / np.sqrt(np.mean(noise ** 2))


def babble(utterances, num_samples, rng):
    """Several talkers at once: the sum of ``utterances`` (each at unit RMS, looped to
    ``num_samples`` from a random start), of unit RMS. Silent ones are left out."""
    total = np.zeros(num_samples)
    for talker in utterances:
        power = np.mean(talker ** 2) if len(talker) else 0.0
        if power == 0:
            continue
        looped = np.resize(np.roll(talker, -int(rng.integers(len(talker)))), num_samples)
        total += looped / np.sqrt(power)
    power = np.mean(total ** 2)
    return total / np.sqrt(power) if power > 0 else total


def mix_at_snr(signal, noise, snr_db):
    """``signal + g * noise`` with ``g`` such that ``10 log10(P_signal / P_mixed noise)``
    equals ``snr_db``, powers being mean squares over the utterance. A silent
    signal or noise returns the signal unchanged."""
    signal_power = np.mean(signal ** 2)
    noise_power = np.mean(noise ** 2)
    if signal_power == 0 or noise_power == 0:
        return signal
    return signal + noise * np.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))


def room_impulse_response(rt60, sample_rate, rng):
    """A synthetic room of unit energy: direct path, early reflections, decaying noise.

    The tail's amplitude falls by 60 dB in ``rt60`` seconds, and the response
    ends there. Its energy against the direct path's is drawn from
    ``DIRECT_TO_REVERBERANT_DB``; ``EARLY_REFLECTIONS`` impulses of random sign
    and amplitude 0.1-0.5 of the direct path's arrive within
    ``EARLY_REFLECTION_DELAY_S``. Unit energy keeps the level of a broadband
    signal.

    Returns
    -------
    (taps,) float64, ``taps = int(rt60 * sample_rate)``; tap 0 is the direct path.
    """
    taps = max(2, int(rt60 * sample_rate))
    t = np.arange(taps) / sample_rate
    tail = rng.standard_normal(taps) * np.exp(-math.log(1000.0) * t / rt60)
    drr_db = rng.uniform(*DIRECT_TO_REVERBERANT_DB)
    response = tail * np.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(tail ** 2))
    response[0] += 1.0
    low, high = (int(d * sample_rate) for d in EARLY_REFLECTION_DELAY_S)
    delays = rng.integers(max(1, low), max(2, min(high, taps)), size=EARLY_REFLECTIONS)
    amplitudes = rng.uniform(0.1, 0.5, size=EARLY_REFLECTIONS) * rng.choice((-1, 1),
                                                                          EARLY_REFLECTIONS)
    np.add.at(response, delays, amplitudes)
    return response / np.sqrt(np.sum(response ** 2))


def band_mask(n, sample_rate, low_hz, high_hz):
    """Gains of the ``n // 2 + 1`` rfft bins of length ``n`` that keep only
    ``[low_hz, high_hz]``: raised-cosine edges ``BAND_EDGE_HZ`` wide inside the
    band, so nothing outside it passes. An edge at 0 or Nyquist is no edge."""
    if not 0 <= low_hz < high_hz:
        raise ValueError('a band needs 0 <= low_hz < high_hz, got %s, %s' % (low_hz, high_hz))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    edge = min(BAND_EDGE_HZ, (high_hz - low_hz) / 2)
    ramp = np.ones_like(freqs)
    if low_hz > 0:
        ramp = np.minimum(ramp, (freqs - low_hz) / edge)
    if high_hz < sample_rate / 2:
        ramp = np.minimum(ramp, (high_hz - freqs) / edge)
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(ramp, 0, 1))


def room_and_channel(samples, sample_rate, impulse_response=None, band=None):
    """Convolve with a room's ``impulse_response`` and keep only ``band`` (low, high Hz),
    either or both, in one pass over the zero-padded FFT; the result has the
    input's length (the reverberation tail past its end is cut)."""
    padding = len(impulse_response) - 1 if impulse_response is not None else 0
    # A band mask's response rings for a few ms: 20 ms of zeros keep it from wrapping round.
    n = fft_length(len(samples) + max(padding, int(0.02 * sample_rate)))
    spectrum = np.fft.rfft(samples, n)
    if impulse_response is not None:
        spectrum *= np.fft.rfft(impulse_response, n)
    if band is not None:
        spectrum *= band_mask(n, sample_rate, *band)
    return np.fft.irfft(spectrum, n)[:len(samples)]


def apply_gain(samples, gain_db):
    """Scale by ``gain_db`` and clip at full scale, +-1, as an A/D converter does."""
    return np.clip(samples * 10.0 ** (gain_db / 20.0), -1.0, 1.0)


def clip(samples, level):
    """Hard clipping at ``level`` times the utterance's peak (``0 < level <= 1``)."""
    threshold = level * np.max(np.abs(samples))
    return np.clip(samples, -threshold, threshold)


def _stage_draws(key, stage, probability):
    """The stage's generator if it applies to the utterance of ``key``, else None."""
    if probability <= 0:
        return None
    draw = np.random.default_rng(list(key) + [stage])
    return draw if draw.random() < probability else None


def _parse_floats(text, flag, count=None):
    try:
        values = [float(v) for v in str(text).split(',') if v.strip()]
    except ValueError:
        values = []
    if not values or (count is not None and len(values) != count):
        raise ValueError('--%s=%s: expected %s comma-separated numbers' % (
            flag, text, count if count is not None else 'one or more'))
    return values


def _parse_range(text, flag, lowest=-math.inf):
    low, high = _parse_floats(text, flag, count=2)
    if not lowest <= low <= high:
        raise ValueError('--%s=%s: expected LOW,HIGH with %sLOW <= HIGH' % (
            flag, text, '' if lowest == -math.inf else '%g <= ' % lowest))
    return low, high


class WaveformAugment:
    """The enabled waveform augmentations of a run, applied to one utterance at a time.

    Parameters
    ----------
    speed_factors : sequence of float or None
        Speeds drawn with equal probability (None: no speed perturbation).
    noise_prob, reverb_prob, band_limit_prob, gain_prob, clip_prob : float
        Probability that an utterance gets each stage.
    noise_snr_db : (low, high)
        Uniform range of the signal-to-noise ratio (dB).
    noise_types : sequence of str
        Drawn with equal probability among ``NOISE_TYPES``.
    babble_utterances : int
        Talkers summed into babble noise.
    reverb_rt60 : (low, high)
        Uniform range of the room's reverberation time (s).
    gain_db : float
        Gain drawn uniformly in ``[-gain_db, gain_db]``.
    clip_level : float
        Clipping threshold drawn uniformly in ``[clip_level, 1]`` times the peak.
    """

    def __init__(self, speed_factors=None, noise_prob=0.0, noise_snr_db=(10.0, 30.0),
                 noise_types=NOISE_TYPES, babble_utterances=3, reverb_prob=0.0,
                 reverb_rt60=(0.2, 0.8), band_limit_prob=0.0, gain_prob=0.0, gain_db=10.0,
                 clip_prob=0.0, clip_level=0.3):
        self.speed_factors = tuple(speed_factors) if speed_factors else None
        self.noise_prob = noise_prob
        self.noise_snr_db = tuple(noise_snr_db)
        self.noise_types = tuple(noise_types)
        self.babble_utterances = babble_utterances
        self.reverb_prob = reverb_prob
        self.reverb_rt60 = tuple(reverb_rt60)
        self.band_limit_prob = band_limit_prob
        self.gain_prob = gain_prob
        self.gain_db = gain_db
        self.clip_prob = clip_prob
        self.clip_level = clip_level

    @classmethod
    def from_config(cls, data_config):
        """From a ``DataConfig``; checks every augmentation flag, even those of stages
        left off. Returns None when no stage is on (the reference recipe)."""
        d = data_config
        for flag in ('noise_prob', 'reverb_prob', 'band_limit_prob', 'gain_prob', 'clip_prob'):
            if not 0.0 <= getattr(d, flag) <= 1.0:
                raise ValueError('--%s=%s: expected a probability in [0, 1]'
                                 % (flag, getattr(d, flag)))
        speed_factors = _parse_floats(d.speed_factors, 'speed_factors')
        if min(speed_factors) <= 0:
            raise ValueError('--speed_factors=%s: speeds must be positive' % d.speed_factors)
        noise_types = [t.strip() for t in d.noise_types.split(',') if t.strip()]
        unknown = [t for t in noise_types if t not in NOISE_TYPES]
        if unknown or not noise_types:
            raise ValueError('--noise_types=%s: expected some of %s' % (
                d.noise_types, ','.join(NOISE_TYPES)))
        if d.babble_utterances < 1:
            raise ValueError('--babble_utterances=%d: expected at least 1' % d.babble_utterances)
        if d.gain_db < 0:
            raise ValueError('--gain_db=%s: expected a non-negative number of dB' % d.gain_db)
        if not 0.0 < d.clip_level <= 1.0:
            raise ValueError('--clip_level=%s: expected a fraction of the peak in (0, 1]'
                             % d.clip_level)
        augment = cls(speed_factors=speed_factors if d.speed_perturb else None,
                      noise_prob=d.noise_prob,
                      noise_snr_db=_parse_range(d.noise_snr_db, 'noise_snr_db'),
                      noise_types=noise_types, babble_utterances=d.babble_utterances,
                      reverb_prob=d.reverb_prob,
                      reverb_rt60=_parse_range(d.reverb_rt60, 'reverb_rt60', lowest=1e-3),
                      band_limit_prob=d.band_limit_prob, gain_prob=d.gain_prob,
                      gain_db=d.gain_db, clip_prob=d.clip_prob, clip_level=d.clip_level)
        return augment if augment.active else None

    @property
    def active(self):
        """Whether any stage can change an utterance."""
        return bool(self.speed_factors and set(self.speed_factors) != {1.0}) or any(
            p > 0 for p in (self.noise_prob, self.reverb_prob, self.band_limit_prob,
                            self.gain_prob, self.clip_prob))

    def speed_factor(self, key):
        """The speed :meth:`__call__` draws for ``key`` (1.0 without speed perturbation).

        The sampler sorts each epoch by the lengths these speeds give, without
        reading any audio.
        """
        draw = _stage_draws(key, _SPEED, 1.0 if self.speed_factors else 0.0)
        return 1.0 if draw is None else float(draw.choice(self.speed_factors))

    def __call__(self, samples, sample_rate, key, fits=None, babble_source=None):
        """Augment one utterance.

        Parameters
        ----------
        samples : (S,) float64
        sample_rate : int
        key : tuple of int
            ``(seed, epoch, index)``: seeds every draw.
        fits : callable or None
            ``fits(num_samples)`` says whether the transcript can still be aligned
            by CTC at that length; a speed that shortens the utterance too much is
            replaced by 1.0.
        babble_source : callable or None
            ``babble_source(count, rng)`` -> list of other utterances' samples;
            without it (or with no other utterance) babble is silence.

        Returns
        -------
        (S',) float64; ``S' = S`` unless the speed changed.
        """
        factor = self.speed_factor(key)
        if factor != 1.0:
            faster = speed_perturb(samples, factor, sample_rate)
            if fits is None or fits(len(faster)):
                samples = faster
        draw = _stage_draws(key, _NOISE, self.noise_prob)
        if draw is not None:
            kind = self.noise_types[int(draw.integers(len(self.noise_types)))]
            if kind == 'babble':
                talkers = babble_source(self.babble_utterances, draw) if babble_source else []
                noise = babble(talkers, len(samples), draw)
            else:
                noise = coloured_noise(len(samples), kind, sample_rate, draw)
            samples = mix_at_snr(samples, noise, draw.uniform(*self.noise_snr_db))
        impulse_response = band = None
        draw = _stage_draws(key, _REVERB, self.reverb_prob)
        if draw is not None:
            impulse_response = room_impulse_response(draw.uniform(*self.reverb_rt60),
                                                     sample_rate, draw)
        draw = _stage_draws(key, _BAND, self.band_limit_prob)
        if draw is not None:
            if draw.random() < 0.5:
                band = TELEPHONE_BAND
            else:
                band = (draw.uniform(*MICROPHONE_LOW_CUT),
                        min(draw.uniform(*MICROPHONE_HIGH_CUT), sample_rate / 2))
        if impulse_response is not None or band is not None:
            samples = room_and_channel(samples, sample_rate, impulse_response, band)
        draw = _stage_draws(key, _GAIN, self.gain_prob)
        if draw is not None:
            samples = apply_gain(samples, draw.uniform(-self.gain_db, self.gain_db))
        draw = _stage_draws(key, _CLIP, self.clip_prob)
        if draw is not None:
            samples = clip(samples, draw.uniform(self.clip_level, 1.0))
        return samples
