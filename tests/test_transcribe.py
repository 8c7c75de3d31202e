"""transcribe.py: windows of long files, formats and rates, bad input, incompatible checkpoints."""
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
import soundfile
import soxr

from conftest import REPO_ROOT
from gluon_ds2.metrics import char_edits
from gluon_ds2.transcribe import is_silent, split_windows

RATE = 16000


def run_transcribe(*args):
    return subprocess.run([sys.executable, str(REPO_ROOT / 'transcribe.py')]
                          + [str(a) for a in args], capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))


def json_lines(stdout):
    return [json.loads(line) for line in stdout.splitlines()]


def noise(seconds, amplitude, rng):
    return amplitude * rng.standard_normal(int(seconds * RATE))


# --- windows -----------------------------------------------------------------------------

def test_cut_goes_in_the_middle_of_the_longest_pause():
    rng = np.random.default_rng(0)
    # Speech-like noise with pauses at 12.0-12.6 s (before the search span, 15-20 s),
    # 15.6-16.2 s and 18.0-18.2 s: the cut is the middle of the longer one in the span.
    samples = np.concatenate([noise(12, 0.1, rng), np.zeros(int(0.6 * RATE)),
                              noise(3, 0.1, rng), np.zeros(int(0.6 * RATE)),
                              noise(1.8, 0.1, rng), np.zeros(int(0.2 * RATE)),
                              noise(6, 0.1, rng)])
    assert split_windows(samples, RATE, max_seconds=20) == [(0, int(15.9 * RATE)),
                                                            (int(15.9 * RATE), len(samples))]


def test_without_a_pause_the_cut_goes_in_the_quietest_stretch():
    rng = np.random.default_rng(1)
    samples = noise(25, 0.1, rng)
    samples[int(17.0 * RATE):int(17.05 * RATE)] *= 0.1   # 20 dB quieter, 50 ms
    (_, cut), _ = split_windows(samples, RATE, max_seconds=20)
    assert int(17.0 * RATE) <= cut < int(17.05 * RATE)


@pytest.mark.parametrize('seconds', [0.0001, 0.5, 19.99, 20, 20.01, 61, 300])
def test_windows_cover_the_samples_and_are_bounded(seconds):
    rng = np.random.default_rng(2)
    samples = noise(seconds, 0.1, rng) * (rng.random(int(seconds * RATE)) > 0.3)
    windows = split_windows(samples, RATE, max_seconds=20)
    assert windows[0][0] == 0 and windows[-1][1] == len(samples)
    assert all(end == next_start for (_, end), (next_start, _) in zip(windows, windows[1:]))
    assert all(0 < end - start <= 20 * RATE for start, end in windows)
    # Every window but the last is at least three quarters of the limit.
    assert all(end - start >= 15 * RATE for start, end in windows[:-1])


def test_window_limit_must_be_sensible():
    with pytest.raises(ValueError, match='at least 1 second'):
        split_windows(np.zeros(RATE), RATE, max_seconds=0.5)


def test_silence_is_below_minus_60_dbfs():
    rng = np.random.default_rng(3)
    assert is_silent(np.zeros(RATE), RATE)
    assert is_silent(noise(1, 10 ** (-70 / 20), rng), RATE)
    assert not is_silent(noise(1, 10 ** (-50 / 20), rng), RATE)
    # One loud 10 ms frame is enough to be heard.
    click = np.zeros(RATE)
    click[RATE // 2:RATE // 2 + 160] = 0.01
    assert not is_silent(click, RATE)
    assert is_silent(np.zeros(5), RATE) and not is_silent(np.full(5, 0.5), RATE)


# --- the command line ----------------------------------------------------------------------

@pytest.fixture(scope='module')
def dev_utterances(demo_manifests):
    """(wav path, transcript) of the demo dev set: 16 kHz mono 16-bit WAV."""
    manifest = pd.read_csv(demo_manifests['dev'], sep='\t')
    return list(zip(manifest.wav_filename, manifest.transcript))


@pytest.mark.slow
def test_transcripts_match_evaluate(trained_model_dir, demo_manifests, dev_utterances, tmp_path):
    """The same checkpoint through evaluate.py's dataset/batch path gives the same text."""
    output = tmp_path / 'eval.jsonl'
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'evaluate.py'), str(trained_model_dir),
         '--eval_data_dir=%s' % demo_manifests['dev'], '--batch_size=1', '--num_workers=0',
         '--output=%s' % output], capture_output=True, text=True,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr
    expected = {r['wav_filename']: ' '.join(r['hypothesis'].split())
                for r in json_lines(output.read_text())}
    result = run_transcribe(trained_model_dir, *[path for path, _ in dev_utterances])
    assert result.returncode == 0, result.stderr
    lines = [line.split('\t') for line in result.stdout.splitlines()]
    assert [path for path, _ in lines] == [path for path, _ in dev_utterances]
    assert dict(lines) == expected
    assert any(text for _, text in lines)   # the test would be empty otherwise


@pytest.mark.slow
def test_formats_rates_and_channels(trained_model_dir, dev_utterances, tmp_path):
    source, _ = dev_utterances[0]
    samples, rate = soundfile.read(source, dtype='int16')
    assert rate == RATE and samples.ndim == 1
    files = {'wav': tmp_path / 'a.wav', 'flac': tmp_path / 'a.flac', 'ogg': tmp_path / 'a.ogg',
             'ogg_as_wav': tmp_path / 'ogg.wav', 'stereo_22k': tmp_path / 'stereo22k.wav'}
    soundfile.write(files['wav'], samples, RATE)
    soundfile.write(files['flac'], samples, RATE)
    soundfile.write(files['ogg'], samples, RATE, format='OGG', subtype='VORBIS')
    # Vorbis is lossy: what the OGG file holds, decoded by the test and written as WAV.
    soundfile.write(files['ogg_as_wav'], soundfile.read(files['ogg'])[0], RATE,
                    subtype='FLOAT')
    resampled = soxr.resample(samples / 32768.0, RATE, 22050)
    soundfile.write(files['stereo_22k'], np.stack([resampled, 0.5 * resampled], axis=1),
                    22050, subtype='FLOAT')
    result = run_transcribe(trained_model_dir, '--json', *files.values())
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert [r['path'] for r in records] == [str(p) for p in files.values()]
    by_kind = dict(zip(files, records))
    for record in records:
        assert set(record) == {'path', 'text', 'duration', 'decode_seconds', 'windows'}
        assert record['duration'] == pytest.approx(len(samples) / RATE, abs=0.002)
        assert record['decode_seconds'] > 0
        assert record['windows'] == [[0.0, record['duration']]]
    text = by_kind['wav']['text']
    assert text
    assert by_kind['flac']['text'] == text   # lossless
    assert by_kind['ogg']['text'] == by_kind['ogg_as_wav']['text']
    # Resampled to 22.05 kHz and back, downmixed: very nearly the same audio. The
    # spectrogram's normalization makes the 0.75 gain of the downmix irrelevant.
    assert char_edits(text, by_kind['stereo_22k']['text']) <= max(1, 0.1 * len(text))


@pytest.mark.slow
def test_bad_files_are_reported_and_the_rest_transcribed(trained_model_dir, dev_utterances,
                                                          tmp_path):
    good, _ = dev_utterances[0]
    missing = tmp_path / 'missing.wav'
    not_audio = tmp_path / 'notes.wav'
    not_audio.write_text('these are not samples\n')
    empty = tmp_path / 'empty.wav'
    soundfile.write(empty, np.zeros(0, dtype=np.int16), RATE)
    silent = tmp_path / 'silent.flac'
    soundfile.write(silent, np.zeros(3 * RATE, dtype=np.int16), RATE)
    short = tmp_path / 'short.wav'   # 10 ms: shorter than one 20 ms analysis window
    soundfile.write(short, soundfile.read(good, dtype='int16')[0][8000:8160], RATE)
    one_sample = tmp_path / 'one.wav'
    soundfile.write(one_sample, np.array([1000], dtype=np.int16), RATE)
    result = run_transcribe(trained_model_dir, missing, good, not_audio, empty, silent, short,
                            one_sample)
    assert result.returncode == 1
    errors = result.stderr.splitlines()
    assert 'transcribe.py: error: %s: audio file not found' % missing in errors
    assert any(line.startswith('transcribe.py: error: %s: cannot read audio (' % not_audio)
               for line in errors)
    assert 'transcribe.py: error: %s: audio file holds no samples' % empty in errors
    lines = [line.split('\t') for line in result.stdout.splitlines()]
    assert [path for path, _ in lines] == [good, str(silent), str(short), str(one_sample)]
    assert lines[1][1] == ''   # silence: no text, whatever the model would have said


@pytest.mark.slow
def test_long_file_is_cut_in_pauses(trained_model_dir, demo_manifests, tmp_path):
    """Two minutes of utterances and pauses: bounded windows, cuts in pauses, and the
    transcript is the windows' transcripts, each file transcribed alone, joined."""
    paths = [p for split in ('train', 'dev', 'test')
             for p in pd.read_csv(demo_manifests[split], sep='\t').wav_filename]
    rng = np.random.default_rng(4)
    pieces, position = [], 0
    for path in paths:
        utterance = soundfile.read(path, dtype='int16')[0]
        pause = np.zeros(int(RATE * rng.choice([0.3, 0.6, 1.0])), dtype=np.int16)
        pieces += [utterance, pause]
        position += len(utterance) + len(pause)
        if position > 120 * RATE:
            break
    assert position > 120 * RATE, 'the demo corpus holds under two minutes of audio'
    samples = np.concatenate(pieces)
    # Pauses: runs of 150 ms or more with no sample above -40 dBFS. Every gap between the
    # utterances is one; so are the longer breaks inside some (hibari pauses at commas).
    quiet = np.concatenate(([0], (np.abs(samples) <= 0.01 * 32768).astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(quiet))
    pauses = [(start, end) for start, end in zip(edges[::2], edges[1::2])
              if end - start >= 0.15 * RATE]
    assert len(pauses) >= len(pieces) // 2 - 1
    long_file = tmp_path / 'long.wav'
    soundfile.write(long_file, samples, RATE)

    result = run_transcribe(trained_model_dir, '--json', '--max_window_seconds=20', long_file)
    assert result.returncode == 0, result.stderr
    record, = json_lines(result.stdout)
    windows = [(round(start * RATE), round(end * RATE)) for start, end in record['windows']]
    assert windows[0][0] == 0 and windows[-1][1] == len(samples)
    assert len(windows) >= 6
    assert all(0 < end - start <= 20 * RATE for start, end in windows)
    for _, cut in windows[:-1]:
        assert any(start <= cut < end for start, end in pauses), cut / RATE

    window_files = []
    for index, (start, end) in enumerate(windows):
        window_files.append(tmp_path / ('window%d.wav' % index))
        soundfile.write(window_files[-1], samples[start:end], RATE)
    result = run_transcribe(trained_model_dir, *window_files)
    assert result.returncode == 0, result.stderr
    texts = [line.split('\t')[1] for line in result.stdout.splitlines()]
    assert len(texts) == len(windows)
    assert record['text'] == ' '.join(' '.join(texts).split())
    assert record['text']


def rewrite_checkpoint(source, target, change):
    """Copy a checkpoint with its meta.json passed through ``change(meta)``."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, 'w') as new:
        for name in old.namelist():
            data = old.read(name)
            if name == 'meta.json':
                meta = json.loads(data)
                change(meta)
                data = json.dumps(meta)
            new.writestr(name, data)


def _newer_format(meta):
    meta['format_version'] = 99


def _renamed_config_key(meta):
    meta['config']['model']['hidden_size'] = meta['config']['model'].pop('rnn_hidden_size')


@pytest.mark.slow
@pytest.mark.parametrize('change, message', [
    (_newer_format, 'checkpoint format version 99, this gluon-ds2 reads versions 1, 2'),
    (_renamed_config_key, "configuration group 'model' has unknown keys ['hidden_size']"),
])
def test_incompatible_checkpoint_is_a_clear_error(trained_model_dir, dev_utterances, tmp_path,
                                                  change, message):
    index = json.loads((trained_model_dir / 'checkpoints.json').read_text())
    checkpoint = tmp_path / 'changed.ckpt'
    rewrite_checkpoint(trained_model_dir / index['latest'], checkpoint, change)
    result = run_transcribe(checkpoint, dev_utterances[0][0])
    assert result.returncode == 1
    assert result.stdout == ''
    error, = [line for line in result.stderr.splitlines() if 'error' in line]
    assert error.startswith('transcribe.py: error: %s: ' % checkpoint)
    assert message in error


@pytest.mark.slow
def test_module_entry_point(trained_model_dir, dev_utterances):
    path = dev_utterances[0][0]
    result = subprocess.run([sys.executable, '-m', 'gluon_ds2.transcribe',
                             str(trained_model_dir), path, '--decoder=greedy'],
                            capture_output=True, text=True, cwd=REPO_ROOT,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr
    assert result.stdout == run_transcribe(trained_model_dir, path).stdout
