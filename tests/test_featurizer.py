"""Audio reading and features against an independent float64 implementation."""
import numpy as np
import pytest
import soundfile

from gluon_ds2.config import AudioConfig
from gluon_ds2.featurizer import AudioError, featurize, normalize, read_audio, spectrogram

RATE = 16000


def speech_like(num_samples, rate=RATE, seed=0):
    """A chirp, two tones and noise under a syllable-rate envelope, in [-1, 1]."""
    rng = np.random.RandomState(seed)
    t = np.arange(num_samples) / rate
    chirp = np.sin(2 * np.pi * (150 * t + 0.5 * (3000 - 150) * t ** 2 / max(t[-1], 1e-3)))
    tones = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 1234.5 * t + 1.0)
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    signal = envelope * (0.4 * chirp + 0.3 * tones) + 0.05 * rng.randn(num_samples)
    return signal / np.max(np.abs(signal)) * 0.9


def independent_features(samples, rate, window, stride, max_freq=None):
    """Normalized log power spectrogram, written out frame by frame in float64.

    ``window`` and ``stride`` are in samples. Hann window from its formula, a full
    complex FFT per frame, the one-sided power density scaling of the reference
    (interior bins doubled), bins up to ``max_freq`` by exact integer comparison.
    """
    if max_freq is None:
        max_freq = rate / 2
    n = np.arange(window)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / (window - 1))
    one_sided = window // 2 + 1
    keep = [k for k in range(one_sided) if k * rate <= max_freq * window]
    scale = float(np.sum(hann * hann)) * rate
    rows = []
    start = 0
    while start + window <= len(samples):
        spectrum = np.fft.fft(samples[start:start + window] * hann)[:one_sided]
        power = spectrum.real ** 2 + spectrum.imag ** 2
        power = np.concatenate([power[:1] / scale, 2 * power[1:-1] / scale, power[-1:] / scale])
        rows.append(np.log(power[keep] + 1e-14))
        start += stride
    log_power = np.array(rows)
    count = log_power.shape[0]
    mean = log_power.sum(axis=0) / count
    std = np.sqrt(((log_power - mean) ** 2).sum(axis=0) / count)
    return (log_power - mean) / (std + 1e-6)


def write_pcm16(path, samples, rate=RATE, **kwargs):
    soundfile.write(str(path), samples, rate, subtype='PCM_16', **kwargs)
    return str(path)


def pcm16_values(path):
    """The file's samples as int16 / 32768: a reading path independent of read_audio."""
    data, _ = soundfile.read(path, dtype='int16', always_2d=True)
    return data.astype(np.float64) / 32768.0


@pytest.mark.parametrize('extension', ['wav', 'flac'])
def test_featurize_file_matches_independent_float64(tmp_path, extension):
    path = write_pcm16(tmp_path / ('utt.' + extension), speech_like(19753))
    samples = read_audio(path, RATE)
    assert samples.dtype == np.float64
    np.testing.assert_array_equal(samples, pcm16_values(path)[:, 0])

    features = featurize(samples, AudioConfig())
    expected = independent_features(pcm16_values(path)[:, 0], RATE, window=320, stride=160)
    assert features.dtype == np.float32
    assert features.shape == ((19753 - 320) // 160 + 1, 161) == expected.shape
    assert np.max(np.abs(features - expected)) <= 1e-4

    unnormalized = normalize(spectrogram(samples, RATE))
    assert np.max(np.abs(unnormalized - expected)) <= 1e-4


@pytest.mark.parametrize('num_samples', [320, 321, 479, 480, 481, 16000, 16159, 16160])
def test_frame_count(num_samples):
    features = featurize(speech_like(num_samples, seed=num_samples), AudioConfig())
    assert features.shape == ((num_samples - 320) // 160 + 1, 161)


def test_shorter_than_one_window_is_one_zero_padded_frame():
    samples = speech_like(200)
    power = spectrogram(samples, RATE)
    assert power.shape == (1, 161)
    padded = np.concatenate([samples, np.zeros(120)])
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(320) / 319)
    spectrum = np.abs(np.fft.fft(padded * hann)[:161]) ** 2 / (np.sum(hann ** 2) * RATE)
    spectrum[1:-1] *= 2
    np.testing.assert_allclose(power[0], np.log(spectrum + 1e-14), rtol=0, atol=1e-9)


@pytest.mark.parametrize('rate, window_ms, stride_ms, max_freq, window, stride, bins', [
    (16000, 20, 10, None, 320, 160, 161),
    (16000, 25, 10, None, 400, 160, 201),
    (16000, 32, 8, None, 512, 128, 257),
    (16000, 20, 10, 4000, 320, 160, 81),
    (16000, 20, 10, 3999.9, 320, 160, 80),
    (8000, 20, 10, None, 160, 80, 81),
    (22050, 20, 10, None, 441, 220, 221),    # odd window: no Nyquist bin
    (22050, 10, 5, None, 220, 110, 111),
])
def test_other_settings_match_independent_and_num_bins(rate, window_ms, stride_ms, max_freq,
                                                       window, stride, bins):
    config = AudioConfig(sample_rate=rate, window_ms=window_ms, stride_ms=stride_ms,
                         max_freq=max_freq)
    assert (config.window_size, config.stride_size, config.num_bins) == (window, stride, bins)
    samples = np.round(speech_like(rate, rate=rate) * 32767) / 32768
    features = featurize(samples, config)
    expected = independent_features(samples, rate, window, stride, max_freq)
    assert features.shape == expected.shape == ((rate - window) // stride + 1, bins)
    assert np.max(np.abs(features - expected)) <= 1e-4


@pytest.mark.parametrize('rate', [8000, 11025, 16000, 22050, 44100, 48000])
@pytest.mark.parametrize('window_ms', [10, 15, 20, 25, 30, 32])
@pytest.mark.parametrize('max_freq', [None, 1000, 3999.9])
def test_num_bins_is_what_the_featurizer_keeps(rate, window_ms, max_freq):
    config = AudioConfig(sample_rate=rate, window_ms=window_ms, stride_ms=window_ms / 2,
                         max_freq=max_freq)
    features = spectrogram(np.ones(config.window_size), rate, stride_ms=window_ms / 2,
                           window_ms=window_ms, max_freq=max_freq)
    assert features.shape == (1, config.num_bins)


def test_spectrogram_argument_errors():
    with pytest.raises(ValueError) as info:
        spectrogram(np.zeros(1000), RATE, max_freq=8001)
    assert str(info.value) == 'max_freq (8001) must not exceed half the sample rate (8000.0)'
    with pytest.raises(ValueError) as info:
        spectrogram(np.zeros(1000), RATE, stride_ms=30, window_ms=20)
    assert str(info.value) == 'stride_ms (30) must not exceed window_ms (20)'


def test_missing_file(tmp_path):
    path = str(tmp_path / 'missing.wav')
    with pytest.raises(AudioError) as info:
        read_audio(path, RATE)
    assert str(info.value) == '%s: audio file not found' % path
    assert isinstance(info.value, ValueError)


def test_not_audio_file(tmp_path):
    path = tmp_path / 'notes.wav'
    path.write_text('these are not the samples you are looking for\n' * 20)
    with pytest.raises(AudioError) as info:
        read_audio(str(path), RATE)
    assert str(info.value).startswith('%s: cannot read audio (' % path)


def test_empty_wav(tmp_path):
    path = write_pcm16(tmp_path / 'empty.wav', np.zeros(0))
    assert soundfile.info(path).frames == 0
    with pytest.raises(AudioError) as info:
        read_audio(path, RATE)
    assert str(info.value) == '%s: audio file holds no samples' % path


def test_stereo_is_an_error_unless_converted_then_the_channel_mean(tmp_path):
    left, right = speech_like(4000, seed=1), speech_like(4000, seed=2)
    path = write_pcm16(tmp_path / 'stereo.wav', np.stack([left, right], axis=1))
    with pytest.raises(AudioError) as info:
        read_audio(path, RATE)
    assert str(info.value) == '%s: expected mono audio, found 2 channels' % path
    stored = pcm16_values(path)
    mono = read_audio(path, RATE, convert=True)
    np.testing.assert_allclose(mono, (stored[:, 0] + stored[:, 1]) / 2, rtol=0, atol=1e-12)


def test_other_rate_is_an_error_unless_converted_then_resampled(tmp_path):
    num_samples = 8001
    t = np.arange(num_samples) / 8000
    path = write_pcm16(tmp_path / 'narrowband.wav', 0.5 * np.sin(2 * np.pi * 440 * t), rate=8000)
    with pytest.raises(AudioError) as info:
        read_audio(path, RATE)
    assert str(info.value) == '%s: expected 16000 Hz audio, found 8000 Hz' % path
    resampled = read_audio(path, RATE, convert=True)
    assert len(resampled) == 2 * num_samples
    # Away from the edges the resampled tone is the tone synthesized at 16 kHz.
    t16 = np.arange(2 * num_samples) / RATE
    middle = slice(2000, 2 * num_samples - 2000)
    np.testing.assert_allclose(resampled[middle], 0.5 * np.sin(2 * np.pi * 440 * t16)[middle],
                               rtol=0, atol=2e-3)


def test_truncated_flac_is_an_error_naming_the_file(tmp_path):
    whole = write_pcm16(tmp_path / 'whole.flac', speech_like(32000))
    data = open(whole, 'rb').read()
    path = tmp_path / 'truncated.flac'
    path.write_bytes(data[:len(data) // 2])
    # The header still promises every sample; decoding runs out half way.
    assert soundfile.info(str(path)).frames == 32000
    with pytest.raises(AudioError) as info:
        read_audio(str(path), RATE)
    assert str(info.value).startswith('%s: cannot read audio (' % path)


def test_spec_augment_masks_bands_to_zero_without_touching_the_input():
    from gluon_ds2.featurizer import spec_augment
    features = np.random.RandomState(3).randn(200, 81).astype(np.float32) + 5.0  # no zeros
    original = features.copy()
    masked = spec_augment(features, np.random.default_rng(7), freq_masks=2, freq_mask_width=10,
                          time_masks=2, time_mask_width=30)
    np.testing.assert_array_equal(features, original)
    zero_columns = np.where((masked == 0).all(axis=0))[0]
    zero_rows = np.where((masked == 0).all(axis=1))[0]
    assert 0 < len(zero_columns) <= 2 * 10
    assert 0 < len(zero_rows) <= 2 * 30
    # Everything not in a masked band is untouched.
    keep = np.ones_like(masked, dtype=bool)
    keep[:, zero_columns] = False
    keep[zero_rows] = False
    np.testing.assert_array_equal(masked[keep], original[keep])
    again = spec_augment(features, np.random.default_rng(7), freq_masks=2, freq_mask_width=10,
                         time_masks=2, time_mask_width=30)
    np.testing.assert_array_equal(masked, again)


def test_spec_augment_time_masks_stay_within_a_fifth_of_the_utterance():
    from gluon_ds2.featurizer import spec_augment
    features = np.ones((50, 81), dtype=np.float32)
    for seed in range(50):
        masked = spec_augment(features, np.random.default_rng(seed), time_masks=1,
                              time_mask_width=1000)
        assert (masked == 0).all(axis=1).sum() <= 50 // 5
    np.testing.assert_array_equal(spec_augment(features, np.random.default_rng(0)), features)
