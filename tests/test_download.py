"""data/download.py against a tiny LibriSpeech mirror built in the test.

The mirror holds real FLAC files in the LibriSpeech layout, packed as
``<split>.tar.gz`` with an ``md5sum.txt``; it is served from a local directory
or by a real HTTP server on 127.0.0.1 that implements range requests.
"""
import hashlib
import http.server
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading

import numpy as np
import pytest
import soundfile

from conftest import load_script
from gluon_ds2.manifest import read_manifest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# split -> {utterance id: (seconds, trans.txt text)}; ids of two speakers and
# chapters, so that sorting by utterance id is not the directory walk order.
UTTERANCES = {
    'dev-clean': {
        '84-121123-0000': (0.30, 'GO DO YOU HEAR'),
        '84-121123-0001': (0.45, 'BUT IN LESS THAN FIVE MINUTES THE STAIRCASE GROANED'),
        '1272-128104-0000': (0.25, 'MISTER QUILTER IS THE APOSTLE OF THE MIDDLE CLASSES'),
        '1272-128104-0001': (0.20, 'A CAFÉ  NAÏVE   RÉSUMÉ'),
    },
    'test-clean': {
        '1089-134686-0000': (0.35, 'HE HOPED THERE WOULD BE STEW FOR DINNER'),
    },
}


download = load_script('data/download.py')


def md5_of(path):
    with open(path, 'rb') as f:
        return hashlib.md5(f.read()).hexdigest()


def tone(seconds, frequency, sample_rate=16000):
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (8000 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def build_split(root, split, utterances):
    """LibriSpeech/<split>/<speaker>/<chapter>/ with FLACs and trans.txt under ``root``."""
    chapters = {}
    for number, (utterance_id, (seconds, text)) in enumerate(sorted(utterances.items())):
        speaker, chapter, _ = utterance_id.split('-')
        chapter_dir = os.path.join(root, 'LibriSpeech', split, speaker, chapter)
        os.makedirs(chapter_dir, exist_ok=True)
        soundfile.write(os.path.join(chapter_dir, utterance_id + '.flac'),
                        tone(seconds, 220 + 110 * number), 16000, subtype='PCM_16')
        chapters.setdefault(chapter_dir, []).append('%s %s\n' % (utterance_id, text))
    for chapter_dir, lines in chapters.items():
        speaker, chapter = chapter_dir.split(os.sep)[-2:]
        with open(os.path.join(chapter_dir, '%s-%s.trans.txt' % (speaker, chapter)), 'w',
                  encoding='utf-8') as f:
            f.writelines(lines)


@pytest.fixture(scope='module')
def mirror(tmp_path_factory):
    """Directory with <split>.tar.gz for each split of UTTERANCES, and md5sum.txt."""
    mirror_dir = str(tmp_path_factory.mktemp('mirror'))
    sources = str(tmp_path_factory.mktemp('sources'))
    md5_lines = []
    for split, utterances in sorted(UTTERANCES.items()):
        build_split(sources, split, utterances)
        tarball = os.path.join(mirror_dir, split + '.tar.gz')
        with tarfile.open(tarball, 'w:gz') as tar:
            tar.add(os.path.join(sources, 'LibriSpeech', split), 'LibriSpeech/' + split)
        md5_lines.append('%s  %s.tar.gz\n' % (md5_of(tarball), split))
    with open(os.path.join(mirror_dir, 'md5sum.txt'), 'w') as f:
        f.writelines(md5_lines)
    return mirror_dir


class MirrorHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the mirror, with ``Range: bytes=N-`` support SimpleHTTPRequestHandler lacks.

    ``server.mode``: 'range' (206 for range requests), 'no_range' (always 200 and
    the whole file), or 'truncate_once' (the first tarball request gets half the
    bytes, then the connection closes). ``server.requests`` logs (path, Range).
    """

    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get('Range')))
        path = os.path.join(self.server.mirror_dir, self.path.lstrip('/'))
        if not os.path.isfile(path):
            self.send_error(404)
            return
        with open(path, 'rb') as f:
            data = f.read()
        match = re.fullmatch(r'bytes=(\d+)-', self.headers.get('Range') or '')
        if match and self.server.mode != 'no_range':
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header('Content-Range', 'bytes */%d' % len(data))
                self.end_headers()
                return
            self.send_response(206)
            self.send_header('Content-Range',
                             'bytes %d-%d/%d' % (start, len(data) - 1, len(data)))
            body = data[start:]
        else:
            self.send_response(200)
            body = data
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.server.mode == 'truncate_once' and path.endswith('.tar.gz'):
            self.server.mode = 'range'
            self.wfile.write(body[:len(body) // 2])
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(mirror):
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), MirrorHandler)
    httpd.mirror_dir, httpd.mode, httpd.requests = mirror, 'range', []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={'poll_interval': 0.05},
                              daemon=True)
    thread.start()
    httpd.url = 'http://127.0.0.1:%d' % httpd.server_address[1]
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def read_bytes(path):
    with open(path, 'rb') as f:
        return f.read()


def check_prepared_split(data_dir, split):
    """Manifest against UTTERANCES and the WAVs against the FLAC samples."""
    librispeech_dir = os.path.join(data_dir, split, 'LibriSpeech')
    manifest_path = os.path.join(librispeech_dir, split + '.csv')
    with open(manifest_path, 'rb') as f:
        assert f.readline() == b'wav_filename\twav_filesize\ttranscript\n'
    df = read_manifest(manifest_path)
    ids = sorted(UTTERANCES[split])
    assert list(df['wav_filename']) == [
        os.path.abspath(os.path.join(librispeech_dir, split + '-wav', u + '.wav')) for u in ids]
    assert list(df['wav_filesize']) == [os.path.getsize(p) for p in df['wav_filename']]
    assert list(df['transcript']) == [' '.join(UTTERANCES[split][u][1].lower().split())
                                      .replace('é', 'e').replace('ï', 'i') for u in ids]
    for utterance_id, wav_path in zip(ids, df['wav_filename']):
        speaker, chapter, _ = utterance_id.split('-')
        flac = os.path.join(librispeech_dir, split, speaker, chapter, utterance_id + '.flac')
        info = soundfile.info(wav_path)
        assert (info.format, info.subtype, info.samplerate, info.channels) == \
            ('WAV', 'PCM_16', 16000, 1)
        np.testing.assert_array_equal(soundfile.read(wav_path, dtype='int16')[0],
                                      soundfile.read(flac, dtype='int16')[0])
    return manifest_path


def test_prepare_split_from_local_directory_mirror(mirror, tmp_path):
    data_dir = str(tmp_path / 'data')
    checksums = download.resolve_checksums(mirror)
    assert checksums['dev-clean'] == md5_of(os.path.join(mirror, 'dev-clean.tar.gz'))
    manifest_path, rows = download.prepare_split('dev-clean', data_dir, mirror,
                                                 checksums['dev-clean'], workers=1)
    assert rows == 4
    assert manifest_path == os.path.join(data_dir, 'dev-clean', 'LibriSpeech', 'dev-clean.csv')
    check_prepared_split(data_dir, 'dev-clean')
    assert read_manifest(manifest_path)['transcript'][1] == 'a cafe naive resume'
    assert sorted(os.listdir(data_dir)) == ['dev-clean']
    assert os.path.exists(os.path.join(data_dir, 'dev-clean', '.extracted'))


def test_a_split_from_another_tarball_is_extracted_again(mirror, tmp_path):
    """A mirror whose tarball changed (a remade demo corpus) replaces what was extracted."""
    data_dir = str(tmp_path / 'data')
    checksums = download.resolve_checksums(mirror)
    download.prepare_split('dev-clean', data_dir, mirror, checksums['dev-clean'])
    marker = os.path.join(data_dir, 'dev-clean', '.extracted')
    assert read_bytes(marker).decode().strip() == checksums['dev-clean']
    other_mirror = str(tmp_path / 'other_mirror')
    kept = {u: v for u, v in UTTERANCES['dev-clean'].items() if u.startswith('84-')}
    build_split(str(tmp_path / 'sources'), 'dev-clean', kept)
    tarball = os.path.join(other_mirror, 'dev-clean.tar.gz')
    os.makedirs(other_mirror)
    with tarfile.open(tarball, 'w:gz') as tar:
        tar.add(str(tmp_path / 'sources' / 'LibriSpeech' / 'dev-clean'), 'LibriSpeech/dev-clean')
    manifest_path, rows = download.prepare_split('dev-clean', data_dir, other_mirror,
                                                 md5_of(tarball))
    assert rows == 2 and sorted(read_manifest(manifest_path)['wav_filename']) == sorted(
        os.path.join(data_dir, 'dev-clean', 'LibriSpeech', 'dev-clean-wav', u + '.wav')
        for u in kept)
    assert sorted(os.listdir(os.path.join(data_dir, 'dev-clean', 'LibriSpeech', 'dev-clean',
                                          '84'))) == ['121123']
    assert read_bytes(marker).decode().strip() == md5_of(tarball)
    # the same tarball again: nothing to extract
    stamp = os.stat(marker).st_mtime_ns
    download.prepare_split('dev-clean', data_dir, other_mirror, md5_of(tarball))
    assert os.stat(marker).st_mtime_ns == stamp


def test_a_marker_without_checksum_is_extracted_again(mirror, tmp_path):
    data_dir = str(tmp_path / 'data')
    checksums = download.resolve_checksums(mirror)
    download.prepare_split('test-clean', data_dir, mirror, checksums['test-clean'])
    marker = os.path.join(data_dir, 'test-clean', '.extracted')
    with open(marker, 'w') as f:
        f.write('test-clean\n')     # what earlier versions wrote
    stray = os.path.join(data_dir, 'test-clean', 'LibriSpeech', 'test-clean', 'stray.txt')
    with open(stray, 'w') as f:
        f.write('left over\n')
    download.prepare_split('test-clean', data_dir, mirror, checksums['test-clean'])
    assert not os.path.exists(stray)
    assert read_bytes(marker).decode().strip() == checksums['test-clean']
    check_prepared_split(data_dir, 'test-clean')


@pytest.mark.slow
def test_cli_over_http_then_rerun_is_byte_identical(server, tmp_path):
    data_dir = str(tmp_path / 'data')
    command = [sys.executable, os.path.join(REPO, 'data', 'download.py'), '--data_dir', data_dir,
               '--mirror', server.url, '--splits', 'dev-clean,test-clean', '--workers', '2']
    first = subprocess.run(command, capture_output=True, text=True, check=True)
    manifests = [check_prepared_split(data_dir, split) for split in ('dev-clean', 'test-clean')]
    assert first.stdout == ''.join('%s: %d utterances in %s\n' % (split, len(UTTERANCES[split]), m)
                                   for split, m in zip(('dev-clean', 'test-clean'), manifests))
    assert sorted(server.requests) == [('/dev-clean.tar.gz', None), ('/md5sum.txt', None),
                                       ('/test-clean.tar.gz', None)]
    contents = [read_bytes(m) for m in manifests]
    wav_mtimes = {p: os.stat(p).st_mtime_ns for m in manifests
                  for p in read_manifest(m)['wav_filename']}

    del server.requests[:]
    second = subprocess.run(command, capture_output=True, text=True, check=True)
    assert second.stdout == first.stdout
    assert [read_bytes(m) for m in manifests] == contents
    assert {p: os.stat(p).st_mtime_ns for p in wav_mtimes} == wav_mtimes
    assert server.requests == [('/md5sum.txt', None)]


def test_md5_mismatch_is_an_error_and_nothing_is_extracted(mirror, tmp_path):
    data_dir = str(tmp_path / 'data')
    wrong = '0123456789abcdef0123456789abcdef'
    actual = md5_of(os.path.join(mirror, 'dev-clean.tar.gz'))
    tarball = os.path.join(data_dir, 'dev-clean.tar.gz')
    os.makedirs(data_dir)
    with pytest.raises(RuntimeError) as info:
        download.prepare_split('dev-clean', data_dir, mirror, wrong)
    message = str(info.value)
    assert message.startswith('%s (from file://' % tarball)
    assert 'md5 %s does not match the expected %s; renamed it %s.bad and did not extract it' \
        % (actual, wrong, tarball) in message
    assert sorted(os.listdir(data_dir)) == ['dev-clean.tar.gz.bad']


def test_md5_file_flag_overrides_mirror_list(mirror, tmp_path):
    md5_file = str(tmp_path / 'sums.txt')
    with open(md5_file, 'w') as f:
        f.write('%s *dev-clean.tar.gz\n' % ('f' * 32))
    checksums = download.resolve_checksums(mirror, md5_file)
    assert checksums['dev-clean'] == 'f' * 32
    # A split the list does not name keeps its official checksum.
    assert checksums['test-clean'] == download.OFFICIAL_MD5['test-clean']
    # The official address is never asked: its pinned checksums are used.
    assert download.resolve_checksums(download.OFFICIAL_MIRROR + '/') == download.OFFICIAL_MD5
    # A mirror without md5sum.txt falls back to the official checksums.
    assert download.resolve_checksums(str(tmp_path)) == download.OFFICIAL_MD5
    with pytest.raises(ValueError, match=r'--md5_file .*nothing\.txt: no such file'):
        download.resolve_checksums(mirror, str(tmp_path / 'nothing.txt'))


def test_malformed_md5_list_names_line():
    with pytest.raises(ValueError, match=r'^md5sum\.txt, line 2: expected'):
        download.parse_md5_list('%s  a.tar.gz\nnot a checksum\n' % ('a' * 32), 'md5sum.txt')


def test_resume_sends_range_request_and_completes_file(mirror, server, tmp_path):
    source = os.path.join(mirror, 'dev-clean.tar.gz')
    data = read_bytes(source)
    dest = str(tmp_path / 'dev-clean.tar.gz')
    half = len(data) // 2
    with open(dest + '.part', 'wb') as f:
        f.write(data[:half])
    download.download_file(server.url + '/dev-clean.tar.gz', dest, md5_of(source))
    assert server.requests == [('/dev-clean.tar.gz', 'bytes=%d-' % half)]
    assert read_bytes(dest) == data
    assert not os.path.exists(dest + '.part')


def test_server_ignoring_range_restarts_from_the_start(mirror, server, tmp_path):
    source = os.path.join(mirror, 'dev-clean.tar.gz')
    data = read_bytes(source)
    dest = str(tmp_path / 'dev-clean.tar.gz')
    with open(dest + '.part', 'wb') as f:
        f.write(b'\0' * (len(data) // 2))  # not a prefix of the file: must be discarded
    server.mode = 'no_range'
    download.download_file(server.url + '/dev-clean.tar.gz', dest, md5_of(source))
    assert server.requests == [('/dev-clean.tar.gz', 'bytes=%d-' % (len(data) // 2))]
    assert read_bytes(dest) == data


def test_refused_range_restarts_from_the_start(mirror, server, tmp_path):
    source = os.path.join(mirror, 'dev-clean.tar.gz')
    data = read_bytes(source)
    dest = str(tmp_path / 'dev-clean.tar.gz')
    with open(dest + '.part', 'wb') as f:
        f.write(data + b'junk')  # longer than the file: the server answers 416
    download.download_file(server.url + '/dev-clean.tar.gz', dest, md5_of(source))
    assert server.requests == [('/dev-clean.tar.gz', 'bytes=%d-' % (len(data) + 4)),
                               ('/dev-clean.tar.gz', None)]
    assert read_bytes(dest) == data


def test_interrupted_download_resumes_on_the_next_run(mirror, server, tmp_path):
    source = os.path.join(mirror, 'dev-clean.tar.gz')
    data = read_bytes(source)
    dest = str(tmp_path / 'dev-clean.tar.gz')
    server.mode = 'truncate_once'
    with pytest.raises(RuntimeError, match='run again to resume'):
        download.download_file(server.url + '/dev-clean.tar.gz', dest, md5_of(source))
    assert not os.path.exists(dest)
    received = os.path.getsize(dest + '.part')
    assert 0 < received < len(data)
    download.download_file(server.url + '/dev-clean.tar.gz', dest, md5_of(source))
    assert server.requests[-1] == ('/dev-clean.tar.gz', 'bytes=%d-' % received)
    assert read_bytes(dest) == data


def test_verified_tarball_is_not_downloaded_again(mirror, server, tmp_path):
    source = os.path.join(mirror, 'dev-clean.tar.gz')
    dest = str(tmp_path / 'dev-clean.tar.gz')
    shutil.copyfile(source, dest)
    download.download_file(server.url + '/dev-clean.tar.gz', dest, md5_of(source))
    assert server.requests == []


def add_member(tar, name, data=b'x', **attributes):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attributes.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize('kind', ['dotdot', 'absolute', 'symlink', 'hardlink'])
def test_safe_extract_refuses_members_escaping_the_target(tmp_path, kind):
    outside = tmp_path / 'outside'
    outside.mkdir()
    dest = tmp_path / 'dest'
    bad_name = {'dotdot': 'LibriSpeech/../../outside/evil.txt',
                'absolute': str(outside / 'evil.txt'),
                'symlink': 'LibriSpeech/link',
                'hardlink': 'LibriSpeech/hard'}[kind]
    tarball = str(tmp_path / 'bad.tar.gz')
    with tarfile.open(tarball, 'w:gz') as tar:
        add_member(tar, 'LibriSpeech/good.txt')
        if kind == 'symlink':
            add_member(tar, bad_name, b'', type=tarfile.SYMTYPE, linkname='../../outside')
        elif kind == 'hardlink':
            add_member(tar, bad_name, b'', type=tarfile.LNKTYPE, linkname='../outside/evil.txt')
        else:
            add_member(tar, bad_name)
    with pytest.raises(ValueError) as info:
        download.safe_extract(tarball, str(dest))
    assert str(info.value).startswith('%s: refusing to extract member %r: ' % (tarball, bad_name))
    assert 'Nothing was extracted' in str(info.value)
    assert not dest.exists()
    assert list(outside.iterdir()) == []


def test_safe_extract_extracts_a_clean_archive(mirror, tmp_path):
    download.safe_extract(os.path.join(mirror, 'test-clean.tar.gz'), str(tmp_path))
    assert sorted(os.listdir(str(tmp_path / 'LibriSpeech' / 'test-clean' / '1089' / '134686'))) \
        == ['1089-134686-0000.flac', '1089-134686.trans.txt']


@pytest.mark.parametrize('line, problem', [
    ('1272-128104-0009 NO AUDIO FOR THIS ONE', 'no audio file .*1272-128104-0009.flac for '
                                               'utterance 1272-128104-0009'),
    ('1272-128104-0000', 'expected "<speaker>-<chapter>-<utterance> <TRANSCRIPT>"'),
    ('JUST SOME WORDS', 'expected "<speaker>-<chapter>-<utterance> <TRANSCRIPT>"'),
    ('1272-128104-0000 REPEATED', 'utterance 1272-128104-0000 is listed twice'),
])
def test_bad_transcript_line_names_file_and_line(tmp_path, line, problem):
    build_split(str(tmp_path), 'dev-clean', UTTERANCES['dev-clean'])
    trans = str(tmp_path / 'LibriSpeech' / 'dev-clean' / '1272' / '128104'
                / '1272-128104.trans.txt')
    with open(trans, 'a', encoding='utf-8') as f:
        f.write(line + '\n')
    with pytest.raises(ValueError, match='^%s, line 3: %s' % (re.escape(trans), problem)):
        download.read_transcripts(str(tmp_path / 'LibriSpeech' / 'dev-clean'))


@pytest.mark.parametrize('sample_rate, channels, problem', [
    (8000, 1, 'expected 16000 Hz audio, found 8000 Hz'),
    (16000, 2, 'expected mono audio, found 2 channels'),
])
def test_conversion_refuses_audio_that_is_not_16k_mono(tmp_path, sample_rate, channels,
                                                       problem):
    flac = str(tmp_path / 'odd.flac')
    audio = np.zeros((800, channels), dtype=np.int16)
    soundfile.write(flac, audio, sample_rate, subtype='PCM_16')
    wav = str(tmp_path / 'odd.wav')
    with pytest.raises(ValueError, match='^%s: %s$' % (re.escape(flac), problem)):
        download.convert_flac_to_wav(flac, wav)
    assert os.listdir(str(tmp_path)) == ['odd.flac']
