"""Manifest reading, writing, combining and duration filtering, on real files."""
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from gluon_ds2.manifest import (MANIFEST_COLUMNS, add_durations, combine_manifests,
                                filter_by_duration, read_manifest, read_manifests,
                                wav_duration, write_manifest)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = 'wav_filename\twav_filesize\ttranscript\n'


def write_tone(path, seconds, sample_rate=16000):
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    soundfile.write(str(path), 0.3 * np.sin(2 * np.pi * 440 * t), sample_rate, subtype='PCM_16')
    return str(path)


def write_text(path, text):
    with open(path, 'w', encoding='utf-8', newline='') as f:
        f.write(text)
    return str(path)


@pytest.fixture
def wavs(tmp_path):
    """Three WAVs of 0.5 s, 1.0 s and 1.5 s."""
    return [write_tone(tmp_path / ('utt%d.wav' % i), seconds)
            for i, seconds in enumerate((0.5, 1.0, 1.5))]


def test_round_trip_keeps_values_and_names_lines(tmp_path):
    rows = [('/data/a.wav', 100, 'hello world'),
            ('/data/b.wav', 0, ''),
            ('/data/c.wav', 7, 'it\'s "quoted" # not a comment')]
    path = str(tmp_path / 'm.csv')
    write_manifest(rows, path)
    df = read_manifest(path)
    assert list(df.columns) == list(MANIFEST_COLUMNS) + ['source_line', 'manifest']
    assert list(df.itertuples(index=False, name=None)) == [r + (i + 2, path)
                                                           for i, r in enumerate(rows)]
    assert df['transcript'][1] == ''
    assert str(df['wav_filesize'].dtype) == 'int64'
    assert df.attrs['skipped_rows'] == 0


def test_write_is_deterministic_atomic_and_uses_newlines(tmp_path):
    rows = [('/data/b.wav', 2, 'b'), ('/data/a.wav', 1, 'a')]
    first, second = str(tmp_path / 'first.csv'), str(tmp_path / 'second.csv')
    write_manifest(rows, first)
    write_manifest(read_manifest(first), second)
    with open(first, 'rb') as f:
        data = f.read()
    with open(second, 'rb') as f:
        assert f.read() == data
    assert data == b'wav_filename\twav_filesize\ttranscript\n/data/b.wav\t2\tb\n/data/a.wav\t1\ta\n'
    assert sorted(os.listdir(str(tmp_path))) == ['first.csv', 'second.csv']


def test_rewriting_the_same_rows_leaves_the_file_and_its_time(tmp_path):
    """What is made from a manifest (run.sh's Flite splits, by modification time) stays up to
    date when the manifest is written again unchanged; a change is written."""
    path = str(tmp_path / 'split.csv')
    rows = [('/data/b.wav', 2, 'b'), ('/data/a.wav', 1, 'a')]
    write_manifest(rows, path)
    os.utime(path, (1_000_000_000, 1_000_000_000))
    inode = os.stat(path).st_ino
    write_manifest(rows, path)
    assert os.stat(path).st_mtime == 1_000_000_000 and os.stat(path).st_ino == inode
    write_manifest(rows[:1], path)
    assert os.stat(path).st_mtime > 1_000_000_000
    assert read_manifest(path).wav_filename.tolist() == ['/data/b.wav']
    with pytest.raises(ValueError, match='holds a tab'):  # a bad row still leaves the file
        write_manifest(rows + [('/data/c.wav', 3, 'c\td')], path)
    assert read_manifest(path).wav_filename.tolist() == ['/data/b.wav']


@pytest.mark.parametrize('row, problem', [
    (('/data/a.wav', 1, 'tab\there'), 'holds a tab or line break'),
    (('/data/a.wav', 1, 'two\nlines'), 'holds a tab or line break'),
    (('/data/a.wav', -1, 'a'), 'wav_filesize must be a non-negative integer'),
    (('/data/a.wav', '12', 'a'), 'wav_filesize must be a non-negative integer'),
    (('', 1, 'a'), 'empty wav_filename'),
])
def test_write_refuses_rows_the_format_cannot_hold(tmp_path, row, problem):
    path = str(tmp_path / 'm.csv')
    with pytest.raises(ValueError, match=r'm\.csv: row 1 \(counting from 0\): .*' + problem):
        write_manifest([('/data/ok.wav', 1, 'ok'), row], path)
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize('bad_line, problem', [
    ('/data/b.wav\t2\tb\textra', 'expected 3 tab-separated fields '
                                 '(wav_filename, wav_filesize, transcript), found 4'),
    ('/data/b.wav\t2', 'expected 3 tab-separated fields '
                       '(wav_filename, wav_filesize, transcript), found 2'),
    ('', 'expected 3 tab-separated fields (wav_filename, wav_filesize, transcript), found 0'),
    ('/data/b.wav\t2.5\tb', "wav_filesize must be a non-negative integer, found '2.5'"),
    ('/data/b.wav\tabc\tb', "wav_filesize must be a non-negative integer, found 'abc'"),
    ('\t2\tb', 'empty wav_filename'),
])
def test_malformed_row_error_names_file_and_line(tmp_path, bad_line, problem):
    path = write_text(tmp_path / 'm.csv', HEADER + '/data/a.wav\t1\ta\n' + bad_line
                      + '\n/data/c.wav\t3\tc\n')
    with pytest.raises(ValueError) as info:
        read_manifest(path)
    assert str(info.value) == ("%s, line 3: %s; fix or delete the line, or read with "
                               "on_error='skip'" % (path, problem))


def test_skip_mode_drops_and_counts_malformed_rows(tmp_path):
    path = write_text(tmp_path / 'm.csv', HEADER + '/data/a.wav\t1\ta\n'
                      '/data/b.wav\tx\tb\n' '/data/c.wav\t3\n' '/data/d.wav\t4\td\n')
    df = read_manifest(path, on_error='skip')
    assert list(df['wav_filename']) == ['/data/a.wav', '/data/d.wav']
    assert list(df['source_line']) == [2, 5]
    assert df.attrs['skipped_rows'] == 2


def test_header_is_checked(tmp_path):
    path = write_text(tmp_path / 'm.csv', 'wav_filename\tsize\ttranscript\n/a.wav\t1\ta\n')
    with pytest.raises(ValueError, match=r'm\.csv, line 1: expected the header'):
        read_manifest(path, on_error='skip')
    empty = write_text(tmp_path / 'empty.csv', '')
    with pytest.raises(ValueError, match=r'empty\.csv: empty file'):
        read_manifest(empty)


def test_reads_crlf_manifests_like_csv_dictwriter_writes(tmp_path):
    path = write_text(tmp_path / 'm.csv', HEADER.replace('\n', '\r\n')
                      + '/data/a.wav\t1\ta b\r\n/data/b.wav\t2\t\r\n')
    df = read_manifest(path)
    assert list(df.itertuples(index=False, name=None)) == [
        ('/data/a.wav', 1, 'a b', 2, path), ('/data/b.wav', 2, '', 3, path)]


def test_read_manifests_concatenates_lists_and_comma_strings(tmp_path):
    a = write_text(tmp_path / 'a.csv', HEADER + '/a1.wav\t1\ta\n/a2.wav\t2\tb\n')
    b = write_text(tmp_path / 'b.csv', HEADER + '/b1.wav\t3\tc\n/bad.wav\n')
    for paths in ([a, b], '%s,%s' % (a, b)):
        df = read_manifests(paths, on_error='skip')
        assert list(df['wav_filename']) == ['/a1.wav', '/a2.wav', '/b1.wav']
        assert list(df['manifest']) == [a, a, b]
        assert list(df.index) == [0, 1, 2]
        assert df.attrs['skipped_rows'] == 1
    with pytest.raises(ValueError, match='no manifest paths'):
        read_manifests('')
    with pytest.raises(ValueError, match="on_error must be 'fail' or 'skip'"):
        read_manifests([a], on_error='ignore')


def test_durations_come_from_the_header(tmp_path, wavs):
    assert wav_duration(wavs[1]) == 1.0
    rows = [(w, os.path.getsize(w), 't') for w in wavs]
    path = str(tmp_path / 'm.csv')
    write_manifest(rows, path)
    df = add_durations(read_manifest(path), progress=False)
    assert list(df['duration']) == [0.5, 1.0, 1.5]


def test_filter_keeps_utterances_up_to_the_limit(tmp_path, wavs):
    rows = [(w, os.path.getsize(w), 't%d' % i) for i, w in enumerate(wavs)]
    path = str(tmp_path / 'm.csv')
    write_manifest(rows[::-1], path)
    kept, dropped = filter_by_duration(read_manifest(path), 1.0)
    # The reference keeps x <= max_duration: the 1.0 s utterance stays.
    assert list(kept['transcript']) == ['t1', 't0']
    assert dropped == 1
    with pytest.raises(ValueError, match='max_duration must be a positive'):
        filter_by_duration(kept, 0)


def test_missing_wav_error_names_manifest_line(tmp_path, wavs):
    path = write_text(tmp_path / 'm.csv', HEADER + '%s\t1\ta\n%s\t1\tb\n'
                      % (wavs[0], tmp_path / 'missing.wav'))
    with pytest.raises(RuntimeError, match=r'm\.csv, line 3: cannot read the audio header of '
                                           r'.*missing\.wav'):
        add_durations(read_manifest(path), progress=False)


def test_combine_manifests_filters_and_writes_three_columns(tmp_path, wavs):
    a, b = str(tmp_path / 'a.csv'), str(tmp_path / 'b.csv')
    write_manifest([(wavs[0], os.path.getsize(wavs[0]), 'short'),
                    (wavs[2], os.path.getsize(wavs[2]), 'long')], a)
    write_manifest([(wavs[1], os.path.getsize(wavs[1]), 'middle')], b)
    output = str(tmp_path / 'combined.csv')
    kept, dropped = combine_manifests([a, b], output, max_duration=1.2)
    assert dropped == 1
    assert list(kept['duration']) == [0.5, 1.0]
    with open(output, encoding='utf-8') as f:
        assert f.read() == HEADER + '%s\t%d\tshort\n%s\t%d\tmiddle\n' % (
            wavs[0], os.path.getsize(wavs[0]), wavs[1], os.path.getsize(wavs[1]))


@pytest.mark.slow
def test_combine_cli_reports_kept_dropped_and_hours(tmp_path, wavs):
    a = str(tmp_path / 'a.csv')
    write_manifest([(w, os.path.getsize(w), 'x') for w in wavs], a)
    output = str(tmp_path / 'train.csv')
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, 'data', 'combine_manifests.py'), '--output', output,
         '--max_duration', '1', a],
        cwd=str(tmp_path), capture_output=True, text=True, check=True)
    assert result.stdout == '%s: kept 2 rows (0.00 hours), dropped 1 rows longer than 1 s\n' \
        % output
    assert len(read_manifest(output)) == 2
