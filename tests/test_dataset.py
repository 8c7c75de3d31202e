"""Manifest rows -> checked entries -> features and labels -> padded batches."""
import collections
import logging
import os
import threading
import time

import mxnet as mx
import numpy as np
import pytest
import soundfile

from gluon_ds2.batchify import SpeechBatchify, make_dataloader
from gluon_ds2.config import AudioConfig
from gluon_ds2.dataset import (SkippedUtterance, SpeechDataset, ctc_min_output_length,
                               prepare_entries, sizes_give_lengths)
from gluon_ds2.devices import GPU_CTC_MAX_LABELS
from gluon_ds2.featurizer import featurize
from gluon_ds2.manifest import read_manifest
from gluon_ds2.model import output_length
from gluon_ds2.sampler import SortagradSampler
from gluon_ds2.vocab import Vocabulary

RATE = 16000
AUDIO = AudioConfig()
VOCAB = Vocabulary.from_file()


def tone(num_samples, frequency, rate=RATE, channels=1, seed=0):
    t = np.arange(num_samples) / rate
    signal = 0.4 * np.sin(2 * np.pi * frequency * t)
    signal = signal + 0.05 * np.random.RandomState(seed).randn(num_samples)
    return np.stack([signal] * channels, axis=1) if channels > 1 else signal


def write_audio(directory, name, samples, rate=RATE):
    path = os.path.join(str(directory), name)
    soundfile.write(path, samples, rate, subtype='PCM_16')
    return path


def write_manifest_file(path, rows):
    """A manifest in the reference's format, written by hand: (wav, transcript) rows."""
    with open(path, 'w', encoding='utf-8') as f:
        f.write('wav_filename\twav_filesize\ttranscript\n')
        for wav, transcript in rows:
            size = os.path.getsize(wav) if os.path.exists(wav) else 0
            f.write('%s\t%d\t%s\n' % (wav, size, transcript))
    return str(path)


def frames_of(num_samples):
    return (num_samples - 320) // 160 + 1


# (file name, samples, transcript) of utterances that are fine.
GOOD = [
    ('one.wav', 9600, 'hi'),
    ('two.wav', 16000, "it's a tone"),
    ('three.flac', 20800, 'a b c'),
    ('four.wav', 12345, 'yes'),
    ('five.wav', 17777, 'noise and tone'),
]


@pytest.fixture
def good_rows(tmp_path):
    rows = []
    for index, (name, num_samples, transcript) in enumerate(GOOD):
        path = write_audio(tmp_path, name, tone(num_samples, 200 + 150 * index, seed=index))
        rows.append((path, transcript))
    return rows


@pytest.fixture
def bad_rows(tmp_path):
    """One row of each bad kind, with the Counter key it is dropped under."""
    garbage = tmp_path / 'garbage.wav'
    garbage.write_bytes(b'RIFF but not really a wave file at all' * 10)
    return [
        ((str(tmp_path / 'missing.wav'), 'missing file'), 'bad_audio'),
        ((str(garbage), 'unreadable file'), 'bad_audio'),
        ((write_audio(tmp_path, 'narrow.wav', tone(8000, 300, rate=8000), rate=8000),
          'wrong rate'), 'bad_audio'),
        ((write_audio(tmp_path, 'stereo.wav', tone(16000, 300, channels=2)), 'two channels'),
         'bad_audio'),
        ((write_audio(tmp_path, 'silent.wav', tone(16000, 300)), ''), 'empty_transcript'),
        ((write_audio(tmp_path, 'shout.wav', tone(16000, 300)), 'Hello, world!'),
         'bad_transcript'),
    ]


def test_prepare_entries_keeps_good_rows(tmp_path, good_rows):
    manifest = write_manifest_file(tmp_path / 'good.tsv', good_rows)
    entries, dropped = prepare_entries(read_manifest(manifest), VOCAB, AUDIO, progress=False)
    assert dropped == collections.Counter()
    assert [e['wav_filename'] for e in entries] == [wav for wav, _ in good_rows]
    for entry, (name, num_samples, transcript) in zip(entries, GOOD):
        assert entry['transcript'] == transcript
        assert entry['labels'] == [VOCAB.tokens.index(ch) for ch in transcript]
        assert entry['frames'] == frames_of(num_samples)
        assert entry['duration'] == pytest.approx(num_samples / RATE, abs=1e-12)
        assert entry['wav_filesize'] == os.path.getsize(entry['wav_filename'])


def test_bad_rows_are_skipped_and_counted(tmp_path, good_rows, bad_rows):
    # Interleave bad rows between the good ones.
    rows, expected = [], collections.Counter()
    for index, good in enumerate(good_rows):
        rows.append(good)
        if index < len(bad_rows):
            rows.append(bad_rows[index][0])
            expected[bad_rows[index][1]] += 1
    rows.extend(row for row, _ in bad_rows[len(good_rows):])
    expected.update(kind for _, kind in bad_rows[len(good_rows):])
    manifest = write_manifest_file(tmp_path / 'mixed.tsv', rows)
    entries, dropped = prepare_entries(read_manifest(manifest), VOCAB, AUDIO, on_error='skip',
                                       progress=False)
    assert dropped == expected == collections.Counter(
        bad_audio=4, empty_transcript=1, bad_transcript=1)
    assert [e['wav_filename'] for e in entries] == [wav for wav, _ in good_rows]


def expected_reason(kind_row, manifest, line):
    wav = kind_row[0]
    where = '%s, line %d: ' % (manifest, line)
    name = os.path.basename(wav)
    if name == 'missing.wav':
        return where + '%s: audio file not found' % wav
    if name == 'garbage.wav':
        return where + '%s: cannot read audio header (' % wav
    if name == 'narrow.wav':
        return where + '%s: expected 16000 Hz audio, found 8000 Hz' % wav
    if name == 'stereo.wav':
        return where + '%s: expected mono audio, found 2 channels' % wav
    if name == 'silent.wav':
        return where + 'empty transcript for %s' % wav
    return where + "transcript has characters not in the vocabulary: '!,H'"


def test_bad_rows_fail_naming_manifest_and_line(tmp_path, good_rows, bad_rows):
    for index, (row, _) in enumerate(bad_rows):
        manifest = write_manifest_file(tmp_path / ('fail%d.tsv' % index), good_rows[:2] + [row])
        df = read_manifest(manifest)
        with pytest.raises(ValueError) as info:
            prepare_entries(df, VOCAB, AUDIO, on_error='fail', progress=False)
        message = expected_reason(row, manifest, 4)
        if message.endswith('('):
            assert str(info.value).startswith(message)
        else:
            assert str(info.value) == message


def test_on_error_must_be_known(tmp_path, good_rows):
    df = read_manifest(write_manifest_file(tmp_path / 'm.tsv', good_rows))
    with pytest.raises(ValueError) as info:
        prepare_entries(df, VOCAB, AUDIO, on_error='ignore')
    assert str(info.value) == "on_error must be 'skip' or 'fail', got 'ignore'"


def test_max_duration_drops_long_utterances(tmp_path, good_rows):
    df = read_manifest(write_manifest_file(tmp_path / 'm.tsv', good_rows))
    entries, dropped = prepare_entries(df, VOCAB, AUDIO, max_duration=1.0, progress=False)
    kept = [wav for (wav, _), (_, n, _) in zip(good_rows, GOOD) if n <= RATE]
    assert [e['wav_filename'] for e in entries] == kept
    assert dropped == collections.Counter(too_long=len(GOOD) - len(kept))


def ctc_min_frames(labels):
    """Fewest frames with a CTC path for ``labels``: breadth-first over CTC states."""
    blank = -1
    extended = [blank]
    for label in labels:
        extended += [label, blank]
    states, frames = {0, 1} if labels else {0}, 1
    final = {len(extended) - 1, len(extended) - 2} if labels else {0}
    while not states & final:
        following = set()
        for s in states:
            following.update((s, s + 1))
            if s + 2 < len(extended) and extended[s + 2] != blank and \
                    extended[s + 2] != extended[s]:
                following.add(s + 2)
        states, frames = {s for s in following if s < len(extended)}, frames + 1
    return frames


@pytest.mark.parametrize('text', ['a', 'ab', 'aa', 'aab', 'abba', 'aaa', 'a a', 'hello world'])
def test_ctc_min_output_length(text):
    labels = VOCAB.encode(text)
    assert ctc_min_output_length(labels) == ctc_min_frames(labels)


def test_unalignable_utterances_are_dropped(tmp_path):
    num_samples = 4800
    steps = output_length(frames_of(num_samples))
    assert steps == 8
    wav = write_audio(tmp_path, 'short.wav', tone(num_samples, 500))
    rows = [(wav, 'abcdefgh'),       # 8 steps: fits exactly
            (wav, 'abcdefgg'),       # 8 labels + a repeat: 9 steps
            (wav, 'abcdefghi'),      # 9 labels
            (wav, 'aa'),
            (wav, 'the quick brown fox')]
    df = read_manifest(write_manifest_file(tmp_path / 'm.tsv', rows))
    entries, dropped = prepare_entries(df, VOCAB, AUDIO, output_length=output_length,
                                       progress=False)
    assert [e['transcript'] for e in entries] == ['abcdefgh', 'aa']
    assert dropped == collections.Counter(unalignable=3)
    # Without a model's output_length nothing is checked.
    entries, dropped = prepare_entries(df, VOCAB, AUDIO, progress=False)
    assert len(entries) == 5 and not dropped


def expected_item(entry):
    samples = soundfile.read(entry['wav_filename'], dtype='int16')[0] / 32768.0
    return featurize(samples, AUDIO), np.array(VOCAB.encode(entry['transcript']))


@pytest.mark.parametrize('num_workers', [0, 2])
def test_dataloader_batches(tmp_path, good_rows, num_workers):
    df = read_manifest(write_manifest_file(tmp_path / 'm.tsv', good_rows))
    entries, _ = prepare_entries(df, VOCAB, AUDIO, progress=False)
    dataset = SpeechDataset(entries, AUDIO)
    assert dataset.lengths == [os.path.getsize(wav) for wav, _ in good_rows]
    sampler = SortagradSampler(dataset.lengths, batch_size=2)
    loader = make_dataloader(dataset, sampler, num_workers=num_workers)
    seen = []
    for batch_indices, batch in zip(list(sampler), loader):
        features, feature_lengths, labels, label_lengths, skipped = batch
        assert skipped == []
        # Built in numpy by the worker, made NDArrays here: not shared-memory arrays.
        assert {a.context for a in batch[:4]} == {mx.cpu()}
        assert [a.dtype for a in batch[:4]] == [np.float32, np.int32, np.float32, np.int32]
        items = [expected_item(entries[i]) for i in batch_indices]
        frames = [len(f) for f, _ in items]
        assert frames == [entries[i]['frames'] for i in batch_indices]
        assert features.shape == (len(items), 1, max(frames), 161)
        assert feature_lengths.asnumpy().tolist() == frames
        assert labels.shape == (len(items), max(len(l) for _, l in items))
        assert label_lengths.asnumpy().tolist() == [len(l) for _, l in items]
        features, labels = features.asnumpy(), labels.asnumpy()
        for row, (expected_features, expected_labels) in enumerate(items):
            n, m = len(expected_features), len(expected_labels)
            np.testing.assert_allclose(features[row, 0, :n], expected_features, atol=1e-5)
            assert np.all(features[row, 0, n:] == 0)
            assert labels[row, :m].tolist() == expected_labels.tolist()
            assert np.all(labels[row, m:] == -1)
        seen.extend(batch_indices)
    assert sorted(seen) == list(range(len(entries)))


def test_batches_are_padded_to_a_multiple_of_round_to(tmp_path, good_rows):
    df = read_manifest(write_manifest_file(tmp_path / 'm.tsv', good_rows))
    entries, _ = prepare_entries(df, VOCAB, AUDIO, progress=False)
    dataset = SpeechDataset(entries, AUDIO)
    batchify = SpeechBatchify(round_to=32)
    features, feature_lengths, labels, label_lengths, _ = batchify([dataset[0], dataset[1]])
    frames = [entries[0]['frames'], entries[1]['frames']]
    assert isinstance(features, np.ndarray) and feature_lengths.tolist() == frames
    assert features.shape == (2, 1, 32 * -(-max(frames) // 32), 161)
    assert features.shape[2] > max(frames)  # the fixture's lengths are not multiples of 32
    for row, n in enumerate(frames):
        np.testing.assert_array_equal(features[row, 0, :n], dataset[row][0])
        assert not features[row, 0, n:].any()
    # Labels are not rounded: CTCLoss wants them no wider than the longest.
    assert labels.shape == (2, max(label_lengths))


class WorkerIdentity:
    """A dataset whose item i is a frame holding (i, the loading process's parent's pid)."""

    def __len__(self):
        return 6

    def __getitem__(self, index):
        return np.array([[index, os.getppid()]], dtype=np.float32), np.array([1.0])


def proc_stat(pid):
    """(state letter, parent pid) of a process from /proc (state Z: exited, not
    reaped), or (None, None) when it is gone."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            state, parent = f.read().rsplit(')', 1)[1].split()[:2]
        return state, int(parent)
    except FileNotFoundError:
        return None, None


def process_state(pid):
    return proc_stat(pid)[0]


def test_workers_start_from_a_fork_server_and_close_with_batches_in_flight():
    """Workers are not forked from the process that trains (its MXNet engine and
    Horovod threads), and close() ends them even when batches are still in flight."""
    loader = make_dataloader(WorkerIdentity(), [[0, 1], [2, 3], [4, 5]], num_workers=2)
    workers = [worker.pid for worker in loader._worker_pool._pool]
    batches = iter(loader)
    features = next(batches)[0].asnumpy()  # the other two batches are in flight
    assert features[:, 0, 0, 0].tolist() == [0, 1]
    # The workers' parent is the fork server, and this process is the server's parent.
    servers = set(features[:, 0, 0, 1].astype(int).tolist())
    assert os.getpid() not in servers
    assert {proc_stat(server)[1] for server in servers} == {os.getpid()}
    assert all(process_state(pid) in ('S', 'R', 'D') for pid in workers)
    closer = threading.Thread(target=loader.close, daemon=True)
    closer.start()
    closer.join(60)
    assert not closer.is_alive(), 'close() hung'
    # The fork server reaps its workers; none is left running.
    for _ in range(100):
        if all(process_state(pid) in (None, 'Z') for pid in workers):
            break
        time.sleep(0.05)
    assert [process_state(pid) in (None, 'Z') for pid in workers] == [True, True]


@pytest.mark.parametrize('num_workers', [0, 2])
def test_file_broken_after_checking_is_reported_in_the_batch(tmp_path, good_rows, num_workers):
    df = read_manifest(write_manifest_file(tmp_path / 'm.tsv', good_rows))
    entries, _ = prepare_entries(df, VOCAB, AUDIO, progress=False)
    deleted, truncated = entries[0]['wav_filename'], entries[2]['wav_filename']
    assert truncated.endswith('.flac')
    os.remove(deleted)
    data = open(truncated, 'rb').read()
    open(truncated, 'wb').write(data[:len(data) // 2])

    dataset = SpeechDataset(entries, AUDIO)
    assert dataset[0] == SkippedUtterance(deleted, '%s: audio file not found' % deleted)
    assert dataset[2].wav_filename == truncated
    assert dataset[2].reason.startswith('%s: cannot read audio (' % truncated)

    class Fixed:
        """Batches of dataset indices in a fixed order."""
        def __iter__(self):
            return iter([[0, 1], [2], [3, 4]])

        def __len__(self):
            return 3

    batches = list(make_dataloader(dataset, Fixed(), num_workers=num_workers))
    features, feature_lengths, _, label_lengths, skipped = batches[0]
    assert skipped == [dataset[0]]
    assert isinstance(skipped[0], SkippedUtterance)
    assert features.shape == (1, 1, entries[1]['frames'], 161)
    assert feature_lengths.asnumpy().tolist() == [entries[1]['frames']]
    assert label_lengths.asnumpy().tolist() == [len(entries[1]['labels'])]
    assert batches[1][:4] == (None, None, None, None)
    assert batches[1][4] == [dataset[2]]
    assert batches[2][4] == []

    strict = SpeechDataset(entries, AUDIO, on_error='fail')
    with pytest.raises(ValueError) as info:
        strict[0]
    assert str(info.value) == '%s: audio file not found' % deleted


def test_truncated_wav_reads_as_shorter_audio(tmp_path, good_rows):
    df = read_manifest(write_manifest_file(tmp_path / 'm.tsv', good_rows))
    entries, _ = prepare_entries(df, VOCAB, AUDIO, progress=False)
    path = entries[1]['wav_filename']
    data = open(path, 'rb').read()
    header = len(data) - 2 * GOOD[1][1]
    open(path, 'wb').write(data[:header + 2 * 8000])    # header and 8000 samples
    features, labels = SpeechDataset(entries, AUDIO)[1]
    assert features.shape == (frames_of(8000), 161)
    assert labels.tolist() == entries[1]['labels']


@pytest.mark.parametrize('num_workers', [0, 2])
def test_augmented_items_are_seeded_by_epoch_and_index(tmp_path, good_rows, num_workers):
    """SpecAugment masks depend on (seed, epoch, index) only: the same in worker
    processes as in the main one, different from epoch to epoch, absent without a key."""
    from gluon_ds2.featurizer import spec_augment
    from gluon_ds2.sampler import EpochKeyedBatches
    df = read_manifest(write_manifest_file(tmp_path / 'm.tsv', good_rows))
    entries, _ = prepare_entries(df, VOCAB, AUDIO, progress=False)
    augment = dict(freq_masks=2, freq_mask_width=20, time_masks=1, time_mask_width=20)
    dataset = SpeechDataset(entries, AUDIO, augment=augment, seed=9)
    sampler = SortagradSampler(dataset.lengths, batch_size=5)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        loader = make_dataloader(dataset, EpochKeyedBatches(sampler), num_workers=num_workers)
        (features, feature_lengths, _, _, _), = list(loader)
        for row, index in enumerate(list(sampler)[0]):
            plain, _ = expected_item(entries[index])
            expected = spec_augment(plain, np.random.default_rng([9, epoch, index]), **augment)
            n = len(plain)
            np.testing.assert_allclose(features.asnumpy()[row, 0, :n], expected, atol=1e-5)
    masked_0, _ = dataset[(0, 1)]
    masked_1, _ = dataset[(1, 1)]
    assert not np.array_equal(masked_0, masked_1)
    np.testing.assert_allclose(dataset[1][0], expected_item(entries[1])[0], atol=1e-5)


def test_load_entries_counts_malformed_rows_and_refuses_an_empty_result(tmp_path, good_rows):
    from gluon_ds2.dataset import load_entries
    manifest = write_manifest_file(tmp_path / 'm.tsv', good_rows)
    with open(manifest, 'a') as f:
        f.write('only-one-field\n')
    entries, dropped = load_entries([manifest, manifest], VOCAB, AUDIO, progress=False)
    assert len(entries) == 2 * len(good_rows)
    assert dropped == collections.Counter(malformed_row=2)
    empty = write_manifest_file(tmp_path / 'empty.tsv', [])
    with pytest.raises(ValueError, match=r'empty\.tsv: no usable utterances \(dropped: \{\}\)'):
        load_entries(empty, VOCAB, AUDIO, progress=False)


def test_manifest_sizes_give_the_lengths_of_canonical_wavs(tmp_path, good_rows, caplog):
    """16-bit mono PCM WAVs: lengths from wav_filesize, no header read per row."""
    wavs = [(row, spec) for row, spec in zip(good_rows, GOOD) if spec[0].endswith('.wav')]
    df = read_manifest(write_manifest_file(tmp_path / 'wavs.tsv', [row for row, _ in wavs]))
    assert sizes_give_lengths(df, AUDIO)
    with caplog.at_level(logging.INFO, logger='gluon_ds2.dataset'):
        entries, _ = prepare_entries(df, VOCAB, AUDIO, progress=False)
    assert 'reading the header of every audio file' not in caplog.text
    for entry, (_, (_, num_samples, _)) in zip(entries, wavs):
        assert entry['frames'] == frames_of(num_samples)
        assert entry['duration'] == pytest.approx(num_samples / RATE, abs=1e-12)


def test_headers_are_read_when_sizes_cannot_be_trusted(tmp_path, good_rows, caplog):
    """A FLAC, a stereo or 24-bit WAV, or a stale size: every header is read."""
    stereo = write_audio(tmp_path, 'stereo.wav', tone(16000, 300, channels=2))
    deep = os.path.join(str(tmp_path), 'deep.wav')
    soundfile.write(deep, tone(16000, 300), RATE, subtype='PCM_24')
    wavs = [row for row in good_rows if row[0].endswith('.wav')]
    for extra in ([good_rows[2]], [(stereo, 'two')], [(deep, 'deep')]):  # good_rows[2]: FLAC
        df = read_manifest(write_manifest_file(tmp_path / 'mixed.tsv', wavs + extra))
        assert not sizes_give_lengths(df, AUDIO), extra
    df = read_manifest(write_manifest_file(tmp_path / 'stale.tsv', wavs))
    df.loc[0, 'wav_filesize'] += 2
    assert not sizes_give_lengths(df, AUDIO)
    with caplog.at_level(logging.INFO, logger='gluon_ds2.dataset'):
        entries, _ = prepare_entries(df, VOCAB, AUDIO, progress=False)
    assert 'reading the header of every audio file' in caplog.text
    assert entries[0]['frames'] == frames_of(GOOD[0][1])  # from the header, not the size


def test_labels_over_the_gpu_ctc_ceiling_are_dropped_with_a_warning(tmp_path, caplog):
    long_text = ' '.join(['ab'] * 214)  # 641 labels
    rows = [(write_audio(tmp_path, 'long.wav', tone(16000 * 30, 300)), long_text),
            (write_audio(tmp_path, 'short.wav', tone(16000, 300)), 'ok')]
    df = read_manifest(write_manifest_file(tmp_path / 'm.tsv', rows))
    with caplog.at_level(logging.WARNING, logger='gluon_ds2.dataset'):
        entries, dropped = prepare_entries(df, VOCAB, AUDIO, progress=False,
                                           max_label_length=GPU_CTC_MAX_LABELS)
    assert [e['transcript'] for e in entries] == ['ok']
    assert dropped == collections.Counter(label_too_long_for_gpu_ctc=1)
    assert '%s, line 2: 641 labels, more than the 639 the GPU CTC kernel takes' \
        % df.manifest.iloc[0] in caplog.text
    entries, dropped = prepare_entries(df, VOCAB, AUDIO, progress=False)  # CPU: no ceiling
    assert len(entries) == 2 and not dropped
