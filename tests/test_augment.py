"""Waveform augmentation: each stage against an independent float64 measurement (SNR, spectra,
decay, bounds), the seeding per (seed, epoch, index), the flags, and a train.py run with all on."""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from conftest import REPO_ROOT
from gluon_ds2 import augment
from gluon_ds2.augment import (NOISE_COLOURS, TELEPHONE_BAND, WaveformAugment, apply_gain, babble,
                               band_mask, clip, coloured_noise, fft_length, mix_at_snr,
                               room_and_channel, room_impulse_response, speed_perturb)
from gluon_ds2.batchify import make_dataloader
from gluon_ds2.checkpoint import read_checkpoint, read_index
from gluon_ds2.config import AudioConfig, Config, add_arguments, from_args
from gluon_ds2.dataset import SpeechDataset, ctc_min_output_length, prepare_entries
from gluon_ds2.featurizer import featurize, read_audio
from gluon_ds2.manifest import read_manifest
from gluon_ds2.model import output_length
from gluon_ds2.sampler import EpochKeyedBatches, SortagradSampler
from gluon_ds2.vocab import Vocabulary

RATE = 16000
AUDIO = AudioConfig()
VOCAB = Vocabulary.from_file()
ALL_ON = WaveformAugment(speed_factors=(0.9, 1.0, 1.1), noise_prob=1.0, reverb_prob=1.0,
                         band_limit_prob=1.0, gain_prob=1.0, clip_prob=1.0)


def tone(frequency, seconds=1.0, amplitude=0.5):
    return amplitude * np.sin(2 * np.pi * frequency * np.arange(int(seconds * RATE)) / RATE)


def power_spectrum(samples, segment=2048):
    """Welch's average of Hann-windowed periodograms: (frequencies, power)."""
    window = np.hanning(segment)
    starts = range(0, len(samples) - segment + 1, segment // 2)
    power = np.mean([np.abs(np.fft.rfft(samples[s:s + segment] * window)) ** 2 for s in starts],
                    axis=0)
    return np.fft.rfftfreq(segment, 1.0 / RATE), power


def peak_frequency(samples):
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)), 1 << 21))
    return np.argmax(spectrum) * RATE / (1 << 21)


def test_fft_length_is_the_next_5_smooth_number():
    def smooth(n):
        for p in (2, 3, 5):
            while n % p == 0:
                n //= p
        return n == 1
    for n in range(1, 3000):
        expected = next(m for m in range(n, 2 * n + 1) if smooth(m))
        assert fft_length(n) == expected


@pytest.mark.parametrize('snr_db', [-5.0, 0.0, 7.5, 20.0, 40.0])
@pytest.mark.parametrize('colour', sorted(NOISE_COLOURS))
def test_mixed_noise_has_the_requested_snr(snr_db, colour):
    rng = np.random.default_rng(3)
    speech_like = tone(220) * (1 + np.sin(2 * np.pi * 3 * np.arange(RATE) / RATE))
    noise = coloured_noise(RATE, colour, RATE, rng)
    mixed = mix_at_snr(speech_like, noise, snr_db)
    added = mixed - speech_like
    # The added noise is the given noise scaled, and the measured SNR is the one asked for.
    assert np.corrcoef(added, noise)[0, 1] == pytest.approx(1.0, abs=1e-12)
    measured = 10 * np.log10(np.sum(speech_like ** 2) / np.sum(added ** 2))
    assert measured == pytest.approx(snr_db, abs=1e-9)


def test_mixing_into_silence_changes_nothing():
    silence = np.zeros(1000)
    assert np.array_equal(mix_at_snr(silence, np.ones(1000), 10.0), silence)


@pytest.mark.parametrize('colour', sorted(NOISE_COLOURS))
def test_noise_colour_is_its_spectral_slope(colour):
    noise = coloured_noise(8 * RATE + 123, colour, RATE, np.random.default_rng(0))
    assert len(noise) == 8 * RATE + 123
    assert np.sqrt(np.mean(noise ** 2)) == pytest.approx(1.0, rel=1e-12)
    freqs, power = power_spectrum(noise)
    band = (freqs >= 200) & (freqs <= 6000)
    slope = np.polyfit(np.log10(freqs[band]), np.log10(power[band]), 1)[0]
    assert slope == pytest.approx(NOISE_COLOURS[colour], abs=0.1)


def test_unknown_noise_colour_is_named():
    with pytest.raises(ValueError, match="unknown noise colour 'purple'; known: white, pink"):
        coloured_noise(100, 'purple', RATE, np.random.default_rng(0))


def test_babble_is_the_other_talkers_at_unit_rms():
    rng = np.random.default_rng(1)
    talkers = [tone(300, 0.5, 0.1), tone(1250, 0.3, 0.9), np.zeros(800)]
    mixed = babble(talkers, RATE, rng)
    assert len(mixed) == RATE
    assert np.sqrt(np.mean(mixed ** 2)) == pytest.approx(1.0, rel=1e-12)
    freqs, power = power_spectrum(mixed)
    # Both talkers are there with the same power, whatever their own level; nothing else is.
    peaks = sorted(freqs[np.argsort(power)[-2:]])
    assert peaks == pytest.approx([300, 1250], abs=freqs[1])
    at = [power[np.abs(freqs - f) < 40].sum() for f in (300, 1250)]
    assert at[0] / at[1] == pytest.approx(1.0, rel=0.1)
    assert not np.any(babble([np.zeros(10)], 50, rng))


@pytest.mark.parametrize('factor', [0.9, 1.1])
def test_speed_scales_duration_and_frequency_by_the_factor(factor):
    original = tone(440.0, seconds=2.0)
    faster = speed_perturb(original, factor, RATE)
    assert abs(len(faster) - len(original) / factor) <= 1
    assert peak_frequency(faster) == pytest.approx(440.0 * factor, abs=0.2)
    assert speed_perturb(original, 1.0, RATE) is original


@pytest.mark.parametrize('rt60', [0.2, 0.5, 1.0])
def test_room_impulse_response_decays_by_60_db_in_rt60(rt60):
    for seed in range(3):
        response = room_impulse_response(rt60, RATE, np.random.default_rng(seed))
        assert len(response) == int(rt60 * RATE)
        assert np.sum(response ** 2) == pytest.approx(1.0, rel=1e-12)
        assert np.argmax(np.abs(response)) == 0  # the direct path comes first and loudest
        # Schroeder's backward-integrated energy decay of the tail after the early
        # reflections, fitted from -5 to -25 dB (T20), extrapolated to 60 dB.
        late = response[int(augment.EARLY_REFLECTION_DELAY_S[1] * RATE) + 1:]
        decay = np.cumsum(late[::-1] ** 2)[::-1]
        decay_db = 10 * np.log10(decay / decay[0])
        fit = (decay_db <= -5) & (decay_db >= -25)
        slope = np.polyfit(np.arange(len(late))[fit] / RATE, decay_db[fit], 1)[0]
        assert -60.0 / slope == pytest.approx(rt60, rel=0.08)


def test_reverberation_is_the_convolution_cut_to_the_input_length():
    rng = np.random.default_rng(2)
    dry = rng.standard_normal(3001) * np.hanning(3001)
    response = room_impulse_response(0.05, RATE, rng)
    wet = room_and_channel(dry, RATE, impulse_response=response)
    np.testing.assert_allclose(wet, np.convolve(dry, response)[:len(dry)], atol=1e-12)


def out_of_band_energy(samples, low, high):
    """Energy of the rfft bins outside [low, high] Hz, and of those well inside."""
    freqs = np.fft.rfftfreq(len(samples), 1.0 / RATE)
    power = np.abs(np.fft.rfft(samples)) ** 2
    margin = augment.BAND_EDGE_HZ + 50
    return (power[(freqs < low) | (freqs > high)].sum(),
            power[(freqs > low + margin) & (freqs < high - margin)].sum())


@pytest.mark.parametrize('low, high', [TELEPHONE_BAND, (0.0, 2500.0), (150.0, 8000.0)])
def test_band_limit_removes_the_energy_outside_the_band(low, high):
    noise = np.random.default_rng(4).standard_normal(2 * RATE + 17)
    limited = room_and_channel(noise, RATE, band=(low, high))
    assert len(limited) == len(noise)
    (outside_before, inside_before), (outside_after, inside_after) = (
        out_of_band_energy(x, low, high) for x in (noise, limited))
    # What is left outside the band (leakage where the noise is cut off at the
    # utterance's ends) is 30 dB below what was there; the band is untouched.
    assert outside_after < 1e-3 * outside_before
    assert inside_after / inside_before == pytest.approx(1.0, abs=0.01)


def test_room_and_channel_together_is_reverberation_then_band():
    rng = np.random.default_rng(6)
    dry = rng.standard_normal(8000) * np.hanning(8000)
    response = room_impulse_response(0.3, RATE, rng)
    both = room_and_channel(dry, RATE, response, TELEPHONE_BAND)
    wet = np.convolve(dry, response)
    n = len(wet) + 4000
    expected = np.fft.irfft(np.fft.rfft(wet, n) * band_mask(n, RATE, *TELEPHONE_BAND), n)
    np.testing.assert_allclose(both, expected[:len(dry)], atol=1e-6 * np.max(np.abs(both)))
    outside, _ = out_of_band_energy(both, *TELEPHONE_BAND)
    assert outside < 1e-6 * np.sum(both ** 2) * len(both)


def test_a_band_must_not_be_empty():
    with pytest.raises(ValueError, match='a band needs 0 <= low_hz < high_hz, got 500, 300'):
        room_and_channel(np.zeros(10), RATE, band=(500, 300))


@pytest.mark.parametrize('gain_db', [-12.0, 0.0, 6.0, 20.0])
def test_gain_scales_and_clips_at_full_scale(gain_db):
    samples = tone(500, 0.1, amplitude=0.4)
    louder = apply_gain(samples, gain_db)
    scaled = samples * 10 ** (gain_db / 20)
    assert np.max(np.abs(louder)) <= 1.0
    unclipped = np.abs(scaled) < 1.0
    np.testing.assert_allclose(louder[unclipped], scaled[unclipped], rtol=1e-12)
    assert np.all(np.abs(louder[~unclipped]) == 1.0)
    assert np.any(~unclipped) == (0.4 * 10 ** (gain_db / 20) > 1.0)


@pytest.mark.parametrize('level', [0.25, 0.7, 1.0])
def test_clipping_bounds_at_the_level_of_the_peak(level):
    samples = tone(500, 0.1) + np.linspace(0, 0.3, RATE // 10)
    clipped = clip(samples, level)
    threshold = level * np.max(np.abs(samples))
    assert np.max(np.abs(clipped)) == pytest.approx(threshold, rel=1e-12)
    below = np.abs(samples) <= threshold
    assert np.array_equal(clipped[below], samples[below])
    assert np.all(np.abs(clipped[~below]) == threshold)


def test_each_stage_draws_from_its_own_seed():
    """The same key gives the same audio; another epoch or index does not; and a stage that
    changes nothing (clipping at the peak) leaves the other stages' output as it was."""
    samples = tone(300, 1.5) * np.hanning(int(1.5 * RATE))
    first = ALL_ON(samples, RATE, (1, 0, 7))
    assert np.array_equal(first, ALL_ON(samples, RATE, (1, 0, 7)))
    half = len(samples) // 2  # shorter than any speed's output
    for other_key in ((1, 1, 7), (1, 0, 8), (2, 0, 7)):
        assert not np.allclose(first[:half], ALL_ON(samples, RATE, other_key)[:half])
    without_clip = WaveformAugment(speed_factors=(0.9, 1.1), noise_prob=1.0, reverb_prob=1.0,
                                   band_limit_prob=1.0, gain_prob=1.0)
    clip_at_peak = WaveformAugment(speed_factors=(0.9, 1.1), noise_prob=1.0, reverb_prob=1.0,
                                   band_limit_prob=1.0, gain_prob=1.0, clip_prob=1.0,
                                   clip_level=1.0)
    for index in range(5):
        np.testing.assert_array_equal(without_clip(samples, RATE, (3, 2, index)),
                                      clip_at_peak(samples, RATE, (3, 2, index)))


def write_corpus(directory, utterances):
    """(samples, transcript) pairs -> checked entries of a real manifest of WAV files."""
    manifest = os.path.join(str(directory), 'm.tsv')
    with open(manifest, 'w') as f:
        f.write('wav_filename\twav_filesize\ttranscript\n')
        for index, (samples, transcript) in enumerate(utterances):
            path = os.path.join(str(directory), '%d.wav' % index)
            soundfile.write(path, samples, RATE, subtype='PCM_16')
            f.write('%s\t%d\t%s\n' % (path, os.path.getsize(path), transcript))
    entries, _ = prepare_entries(read_manifest(manifest), VOCAB, AUDIO,
                                 output_length=output_length, progress=False)
    return entries


def frames_of(num_samples):
    return (num_samples - AUDIO.window_size) // AUDIO.stride_size + 1


def test_speed_that_ctc_cannot_align_is_not_applied(tmp_path):
    num_samples = RATE
    steps = output_length(frames_of(num_samples))
    tight = ('abc' * steps)[:steps]  # exactly as many labels as output steps: fits at 1.0 only
    assert ctc_min_output_length(VOCAB.encode(tight)) == steps
    entries = write_corpus(tmp_path, [(tone(300), tight), (tone(400), 'abc')])
    assert len(entries) == 2
    dataset = SpeechDataset(entries, AUDIO, waveform_augment=WaveformAugment(speed_factors=[1.1]),
                            output_length=output_length)
    assert dataset[(0, 0)][0].shape[0] == frames_of(num_samples)
    assert dataset[(0, 1)][0].shape[0] == frames_of(round(num_samples / 1.1))
    # Without output_length the dataset cannot tell, and perturbs both.
    blind = SpeechDataset(entries, AUDIO, waveform_augment=WaveformAugment(speed_factors=[1.1]))
    assert blind[(0, 0)][0].shape[0] == frames_of(round(num_samples / 1.1))


@pytest.mark.parametrize('num_workers', [0, 2])
def test_dataset_items_are_augmented_per_seed_epoch_and_index(tmp_path, num_workers):
    """Worker processes produce exactly what the main process computes for (seed, epoch, index),
    babble from the other files included; evaluation items (no epoch) stay clean."""
    rng = np.random.default_rng(5)
    utterances = [(tone(200 + 100 * i, 0.6 + 0.1 * i) + 0.01 * rng.standard_normal(
        int((0.6 + 0.1 * i) * RATE)), 'tone number %d' % i) for i in range(4)]
    utterances = [(s, t.replace('0', 'zero').replace('1', 'one').replace('2', 'two')
                   .replace('3', 'three')) for s, t in utterances]
    entries = write_corpus(tmp_path, utterances)
    noisy = WaveformAugment(speed_factors=(0.9, 1.0, 1.1), noise_prob=1.0, noise_types=['babble'],
                            reverb_prob=0.5, band_limit_prob=0.5, gain_prob=0.5, clip_prob=0.5)
    dataset = SpeechDataset(entries, AUDIO, seed=11, waveform_augment=noisy,
                            output_length=output_length)
    sampler = SortagradSampler(dataset.lengths, batch_size=4)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        loader = make_dataloader(dataset, EpochKeyedBatches(sampler), num_workers=num_workers)
        (features, feature_lengths, _, _, _), = list(loader)
        for row, index in enumerate(list(sampler)[0]):
            clean = read_audio(entries[index]['wav_filename'], RATE)
            expected = noisy(clean, RATE, (11, epoch, index), fits=dataset._fits(
                entries[index]['labels']), babble_source=dataset._babble_source(index))
            expected = featurize(expected, AUDIO)
            assert int(feature_lengths.asnumpy()[row]) == len(expected)
            np.testing.assert_allclose(features.asnumpy()[row, 0, :len(expected)], expected,
                                       atol=1e-5)
    assert not np.array_equal(dataset[(0, 2)][0], dataset[(1, 2)][0])
    np.testing.assert_allclose(dataset[2][0], featurize(read_audio(entries[2]['wav_filename'],
                                                                   RATE), AUDIO), atol=1e-6)


AUGMENT_FLAGS = ['--speed_perturb', '--speed_factors=0.95,1.05', '--noise_prob=0.5',
                 '--noise_snr_db=5,25', '--noise_types=pink,babble', '--babble_utterances=2',
                 '--reverb_prob=0.25', '--reverb_rt60=0.3,0.9', '--band_limit_prob=0.2',
                 '--gain_prob=0.4', '--gain_db=6', '--clip_prob=0.1', '--clip_level=0.5']


def parse(argv):
    return from_args(add_arguments(argparse.ArgumentParser(prog='train.py')).parse_args(argv))


def test_flags_round_trip_into_the_augmentation():
    cfg = parse(AUGMENT_FLAGS)
    assert Config.from_json(json.loads(cfg.dumps())) == cfg
    built = WaveformAugment.from_config(cfg.data)
    assert vars(built) == dict(
        speed_factors=(0.95, 1.05), noise_prob=0.5, noise_snr_db=(5.0, 25.0),
        noise_types=('pink', 'babble'), babble_utterances=2, reverb_prob=0.25,
        reverb_rt60=(0.3, 0.9), band_limit_prob=0.2, gain_prob=0.4, gain_db=6.0, clip_prob=0.1,
        clip_level=0.5)
    # Off by default (the reference recipe), and speed factors alone switch nothing on.
    assert WaveformAugment.from_config(parse([]).data) is None
    assert WaveformAugment.from_config(parse(['--speed_factors=0.8,1.2']).data) is None
    assert WaveformAugment.from_config(parse(['--speed_perturb']).data).speed_factors == \
        (0.9, 1.0, 1.1)


@pytest.mark.parametrize('flag, message', [
    ('--noise_prob=1.5', '--noise_prob=1.5: expected a probability in [0, 1]'),
    ('--clip_prob=-0.1', '--clip_prob=-0.1: expected a probability in [0, 1]'),
    ('--speed_factors=fast', '--speed_factors=fast: expected one or more comma-separated numbers'),
    ('--speed_factors=0,1', '--speed_factors=0,1: speeds must be positive'),
    ('--noise_snr_db=30', '--noise_snr_db=30: expected 2 comma-separated numbers'),
    ('--noise_snr_db=30,10', '--noise_snr_db=30,10: expected LOW,HIGH with LOW <= HIGH'),
    ('--reverb_rt60=0,0.5', '--reverb_rt60=0,0.5: expected LOW,HIGH with 0.001 <= LOW <= HIGH'),
    ('--noise_types=pink,purple',
     '--noise_types=pink,purple: expected some of white,pink,brown,blue,violet,babble'),
    ('--babble_utterances=0', '--babble_utterances=0: expected at least 1'),
    ('--gain_db=-3', '--gain_db=-3.0: expected a non-negative number of dB'),
    ('--clip_level=0', '--clip_level=0.0: expected a fraction of the peak in (0, 1]'),
])
def test_bad_augmentation_flags_are_named(flag, message):
    with pytest.raises(ValueError) as info:
        WaveformAugment.from_config(parse([flag]).data)
    assert str(info.value) == message


@pytest.mark.slow
def test_train_py_runs_with_every_augmentation_on(demo_manifests, tmp_path):
    model_dir = tmp_path / 'model'
    flags = ['--speed_perturb', '--noise_prob=1', '--reverb_prob=1', '--band_limit_prob=1',
             '--gain_prob=1', '--clip_prob=1', '--freq_masks=2', '--time_masks=2']
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'train.py'),
         '--train_data_dir=%s' % demo_manifests['train'],
         '--eval_data_dir=%s' % demo_manifests['dev'], '--model_dir=%s' % model_dir,
         '--rnn_hidden_size=32', '--rnn_hidden_layers=1', '--conv_filters=4', '--max_freq=4000',
         '--batch_size=8', '--max_steps=3', '--num_workers=1', '--num_threads=1', *flags],
        capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS='1'), timeout=300)
    assert result.returncode == 0, result.stderr
    meta, _ = read_checkpoint(os.path.join(model_dir, read_index(model_dir)['latest']))
    assert meta['global_step'] == 3
    assert meta['nonfinite_steps'] == 0
    data = meta['config']['data']
    assert (data['speed_perturb'], data['noise_prob'], data['reverb_prob'],
            data['band_limit_prob'], data['gain_prob'], data['clip_prob']) == (True, 1, 1, 1, 1, 1)


def test_epoch_lengths_sort_as_the_perturbed_features_do(tmp_path):
    """The sort keys of each epoch follow the speed each utterance really gets that epoch,
    read from the features the dataset produces from real audio."""
    rng = np.random.default_rng(3)
    # Lengths 2 % apart: a speed of 0.9 or 1.1 reorders them.
    utterances = [(tone(300, 1.0 + 0.02 * i) + 0.01 * rng.standard_normal(
        int((1.0 + 0.02 * i) * RATE)), 'a tone') for i in range(12)]
    entries = write_corpus(tmp_path, utterances)
    speeds = WaveformAugment(speed_factors=(0.9, 1.0, 1.1))
    dataset = SpeechDataset(entries, AUDIO, seed=4, waveform_augment=speeds)
    assert dataset.epoch_lengths(0) != dataset.epoch_lengths(1)
    for epoch in (0, 1):
        keys = dataset.epoch_lengths(epoch)
        frames = [dataset[(epoch, index)][0].shape[0] for index in range(len(entries))]
        for index, entry in enumerate(entries):
            size = entry['wav_filesize']
            factor = min((0.9, 1.0, 1.1), key=lambda f: abs(size / f - keys[index]))
            assert keys[index] == pytest.approx(size / factor, rel=1e-12)
            assert frames[index] == frames_of(
                len(speed_perturb(read_audio(entry['wav_filename'], RATE), factor, RATE)))
        assert sorted(range(len(keys)), key=keys.__getitem__) == \
            sorted(range(len(frames)), key=lambda i: (frames[i], keys[i]))
    # Without speed perturbation the keys are the file sizes, every epoch.
    plain = SpeechDataset(entries, AUDIO, seed=4, waveform_augment=WaveformAugment(
        noise_prob=1.0))
    assert plain.epoch_lengths(3) == plain.lengths == [e['wav_filesize'] for e in entries]
