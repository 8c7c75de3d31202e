"""
    python data/download.py --data_dir /tmp/librispeech_data
    python data/download.py --data_dir /tmp/librispeech_data --splits dev-clean,test-clean
    python data/download.py --data_dir /tmp/librispeech_data --mirror /mnt/openslr12 --workers 8

Download LibriSpeech (OpenSLR resource 12) and prepare it as the reference's
``data/download.py`` does: each split's FLAC files become 16 kHz mono 16-bit
WAV files and one manifest lists them (see :mod:`gluon_ds2.manifest`). The
layout is the reference's, so its run script's paths work unchanged::

    <data_dir>/<split>.tar.gz                           the tarball while it is needed
    <data_dir>/<split>/.extracted                       written once extraction finished: the
                                                        MD5 of the tarball it came from
    <data_dir>/<split>/LibriSpeech/<split>/<speaker>/<chapter>/*.flac, *.trans.txt
    <data_dir>/<split>/LibriSpeech/<split>-wav/<utterance>.wav
    <data_dir>/<split>/LibriSpeech/<split>.csv          the manifest, rows sorted by utterance id

Every step can be interrupted and run again: a download resumes from its
``.part`` file with an HTTP range request, a verified tarball is not fetched
again, a split extracted from a tarball with the expected checksum is not
extracted again (one from another tarball, such as an older demo corpus, is
deleted and redone), a WAV is written to a
temporary name and renamed (so an existing WAV is complete and is kept), and
the manifest comes out byte-identical. Tarballs are deleted once extracted
unless ``--keep_tarballs`` is given. To redo a split from scratch, delete
``<data_dir>/<split>``.

``--mirror`` is the official OpenSLR address by default; a regional mirror, a
``file://`` URL or a local directory holding the tarballs work the same way.
Tarballs are checked against MD5 checksums: for the official address the
published ones pinned in this script; for another mirror its own
``md5sum.txt`` when it has one, else the pinned ones; ``--md5_file``
overrides both.
"""
import argparse
import contextlib
import hashlib
import http.client
import logging
import multiprocessing
import os
import sys
import pathlib
import re
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request

import soundfile

from gluon_ds2.manifest import write_manifest
from gluon_ds2.progress import progress_bar
from gluon_ds2.vocab import normalize_transcript

__all__ = ['OFFICIAL_MIRROR', 'LIBRISPEECH_SPLITS', 'OFFICIAL_MD5', 'SAMPLE_RATE',
           'tarball_url', 'parse_md5_list', 'resolve_checksums', 'md5sum', 'download_file',
           'safe_extract', 'read_transcripts', 'convert_flac_to_wav', 'convert_split',
           'prepare_split', 'main']

logger = logging.getLogger(__name__)

OFFICIAL_MIRROR = 'http://www.openslr.org/resources/12'

LIBRISPEECH_SPLITS = ('train-clean-100', 'train-clean-360', 'train-other-500',
                      'dev-clean', 'dev-other', 'test-clean', 'test-other')

# MD5 of the official tarballs, as OpenSLR publishes them in
# resources/12/md5sum.txt; copied from PaddlePaddle/PaddleSpeech
# dataset/librispeech/librispeech.py and identical in the other public download
# scripts we compared.
OFFICIAL_MD5 = {
    'train-clean-100': '2a93770f6d5c6c964bc36631d331a522',
    'train-clean-360': 'c0e676e450a7ff2f54aeade5171606fa',
    'train-other-500': 'd1a0fd59409feb2c614ce4d30c387708',
    'dev-clean': '42e2234ba48799c1f50f24a7926300a1',
    'dev-other': 'c8d0bcc9cca99d4f8b62fcc847357931',
    'test-clean': '32fa31d27d2e1cad72775fee3f4849a9',
    'test-other': 'fb5a50374b501bb3bac4815ee91d3135',
}

SAMPLE_RATE = 16000

_CHUNK_BYTES = 1 << 20
_TIMEOUT_S = 60
_MD5_LINE = re.compile(r'([0-9a-fA-F]{32}) [ *](.+)')
_MD5_HEX = re.compile(r'[0-9a-f]{32}')
_TRANSCRIPT_LINE = re.compile(r'(\d+-\d+-\d+) (.*)')


def tarball_url(mirror, filename):
    """URL of ``filename`` on ``mirror`` (http(s) or file:// URL, or a local directory)."""
    scheme = urllib.parse.urlparse(mirror).scheme
    if scheme in ('http', 'https', 'file'):
        return mirror.rstrip('/') + '/' + filename
    if not os.path.isdir(mirror):
        raise ValueError('--mirror %r is neither an http(s):// or file:// URL nor an existing '
                         'directory' % (mirror,))
    return pathlib.Path(mirror).resolve().as_uri() + '/' + filename


def _open_url(url, offset=0):
    """Response for ``url`` from byte ``offset`` on; None if the server refuses the range."""
    headers = {'Range': 'bytes=%d-' % offset} if offset else {}
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                      timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            return None
        raise RuntimeError('%s: HTTP %d %s; check --mirror' % (url, err.code, err.reason)) \
            from None
    except urllib.error.URLError as err:
        raise RuntimeError('%s: %s; check --mirror and the network' % (url, err.reason)) \
            from None


def parse_md5_list(text, source):
    """``md5sum`` output (``<md5>  <file>`` lines) -> {file name: md5}."""
    checksums = {}
    for line_number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _MD5_LINE.fullmatch(line.strip())
        if match is None:
            raise ValueError('%s, line %d: expected "<32 hex digits>  <file name>", found %r'
                             % (source, line_number, line))
        checksums[os.path.basename(match.group(2))] = match.group(1).lower()
    return checksums


def _read_md5_list(location):
    """Checksums from a URL or local file; None if there is no such file."""
    url = location if urllib.parse.urlparse(location).scheme in ('http', 'https', 'file') \
        else pathlib.Path(location).resolve().as_uri()
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
            text = response.read().decode('utf-8')
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise RuntimeError('%s: HTTP %d %s' % (url, err.code, err.reason)) from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, FileNotFoundError):
            return None
        raise RuntimeError('%s: %s' % (url, err.reason)) from None
    return parse_md5_list(text, location)


def resolve_checksums(mirror, md5_file=None):
    """Expected MD5 of each split's tarball: {split: md5}.

    ``md5_file`` (path or URL) wins; else the mirror's ``md5sum.txt``, except on
    the official address, where the pinned :data:`OFFICIAL_MD5` are used without
    asking the server. A split missing from a list keeps its official checksum.
    """
    checksums = dict(OFFICIAL_MD5)
    if md5_file is not None:
        listed = _read_md5_list(md5_file)
        if listed is None:
            raise ValueError('--md5_file %s: no such file' % md5_file)
        source = md5_file
    elif mirror.rstrip('/').split('://', 1)[-1] == OFFICIAL_MIRROR.split('://', 1)[-1]:
        return checksums
    else:
        source = tarball_url(mirror, 'md5sum.txt')
        listed = _read_md5_list(source)
        if listed is None:
            logger.info('%s not found; checking tarballs against the official checksums',
                        source)
            return checksums
    # A mirror may add splits of its own (the demo corpus: train, dev, test).
    for name, md5 in listed.items():
        if name.endswith('.tar.gz'):
            checksums[name[:-len('.tar.gz')]] = md5
    logger.info('checking tarballs against %s', source)
    return checksums


def _hash_file(hasher, path):
    with open(path, 'rb') as f, progress_bar(total=os.path.getsize(path), unit='B',
                                             unit_scale=True, unit_divisor=1024,
                                             desc='md5 %s' % os.path.basename(path),
                                             leave=False) as bar:
        for chunk in iter(lambda: f.read(_CHUNK_BYTES), b''):
            hasher.update(chunk)
            bar.update(len(chunk))
    return hasher


def md5sum(path):
    """Hex MD5 digest of a file, read in 1 MiB chunks."""
    return _hash_file(hashlib.md5(), path).hexdigest()


def _fetch(url, part_path):
    """Download ``url`` into ``part_path``, resuming it if it exists; returns the MD5.

    The digest is computed while the bytes arrive (after hashing what an earlier
    run left), so a 30 GB tarball is not read back a second time.
    """
    offset = os.path.getsize(part_path) if os.path.exists(part_path) else 0
    response = _open_url(url, offset)
    if response is None:
        logger.warning('%s refused to resume %s at byte %d; downloading from the start',
                       url, part_path, offset)
        offset = 0
        response = _open_url(url)
    with response:
        if offset and response.status != 206:
            # Servers without range support (and file:// URLs) send the whole file.
            logger.info('%s sent the whole file instead of bytes %d-; downloading from the '
                        'start', url, offset)
            offset = 0
        elif offset and not response.headers.get('Content-Range', '').startswith(
                'bytes %d-' % offset):
            raise RuntimeError('%s answered a request for bytes %d- with Content-Range %r; '
                               'delete %s and run again' % (
                                   url, offset, response.headers.get('Content-Range'), part_path))
        length = response.headers.get('Content-Length')
        total = offset + int(length) if length is not None else None
        hasher = _hash_file(hashlib.md5(), part_path) if offset else hashlib.md5()
        received = offset
        with open(part_path, 'ab' if offset else 'wb') as out, \
                progress_bar(total=total, initial=offset, unit='B', unit_scale=True,
                             unit_divisor=1024, desc=os.path.basename(part_path)) as bar:
            while True:
                try:
                    chunk = response.read(_CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as err:
                    raise RuntimeError('download of %s stopped after %d bytes (%s); run again '
                                       'to resume from %s' % (url, received, err, part_path)) \
                        from None
                if not chunk:
                    break
                out.write(chunk)
                hasher.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received != total:
        raise RuntimeError('download of %s ended after %d of %d bytes; run again to resume '
                           'from %s' % (url, received, total, part_path))
    return hasher.hexdigest()


def download_file(url, dest, expected_md5=None):
    """Download ``url`` to ``dest`` through ``dest + '.part'``, resuming and verifying.

    An existing ``dest`` whose MD5 matches is kept (with no ``expected_md5``, any
    existing ``dest`` is). One that does not match is renamed ``dest + '.bad'``
    and fetched again. A fresh download that does not match is renamed
    ``dest + '.bad'`` and raises ``RuntimeError``, so it is never extracted.

    Returns
    -------
    str
        ``dest``.
    """
    if os.path.exists(dest):
        if expected_md5 is None:
            logger.info('%s exists; not downloading it again', dest)
            return dest
        actual = md5sum(dest)
        if actual == expected_md5:
            logger.info('%s exists and its md5 matches; not downloading it again', dest)
            return dest
        os.replace(dest, dest + '.bad')
        logger.warning('%s has md5 %s, expected %s; renamed it %s and downloading it again',
                       dest, actual, expected_md5, dest + '.bad')
    part_path = dest + '.part'
    logger.info('downloading %s to %s', url, dest)
    actual = _fetch(url, part_path)
    if expected_md5 is not None and actual != expected_md5:
        os.replace(part_path, dest + '.bad')
        raise RuntimeError(
            '%s (from %s): md5 %s does not match the expected %s; renamed it %s and did not '
            'extract it. Delete it and run again to download afresh, or pass --md5_file if '
            'this mirror serves other tarballs than the official ones'
            % (dest, url, actual, expected_md5, dest + '.bad'))
    os.replace(part_path, dest)
    return dest


def _member_problem(member, dest):
    """Why ``member`` must not be extracted under ``dest``, or None."""
    if os.path.isabs(member.name) or member.name.startswith(('/', '\\')):
        return 'it has an absolute path'
    target = os.path.normpath(os.path.join(dest, member.name))
    if os.path.commonpath([dest, target]) != dest:
        return 'it would be written outside %s' % dest
    # LibriSpeech holds only directories and regular files; refusing every link
    # and device keeps a link from redirecting a later member outside dest.
    if member.issym() or member.islnk():
        return 'it is a link to %r; links are not extracted' % member.linkname
    if not (member.isfile() or member.isdir()):
        return 'it is neither a regular file nor a directory'
    return None


def safe_extract(tar_path, dest):
    """Extract ``tar_path`` into ``dest``, refusing members that could escape it.

    Every member is checked before anything is written (absolute paths, ``..``
    components, links, devices), so a bad archive leaves ``dest`` untouched.
    A gzip tarball is therefore decompressed twice: once to check, once to extract.
    """
    dest = os.path.abspath(dest)
    # Python versions with extraction filters get the 'data' filter as a second guard.
    filter_kwargs = {'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}
    with tarfile.open(tar_path, 'r:*') as tar:
        members = tar.getmembers()
        for member in members:
            problem = _member_problem(member, dest)
            if problem is not None:
                raise ValueError('%s: refusing to extract member %r: %s. Nothing was '
                                 'extracted; this is not an intact LibriSpeech tarball'
                                 % (tar_path, member.name, problem))
        os.makedirs(dest, exist_ok=True)
        for member in progress_bar(members, desc='extracting %s' % os.path.basename(tar_path),
                                   unit='file'):
            tar.extract(member, dest, **filter_kwargs)


def read_transcripts(source_dir):
    """Transcripts of a LibriSpeech split: {utterance id: (flac path, transcript)}.

    Reads every ``<speaker>-<chapter>.trans.txt`` under ``source_dir``; each
    line is ``<utterance id> <TRANSCRIPT>``. Transcripts are normalized with
    :func:`gluon_ds2.vocab.normalize_transcript`. A malformed line, a repeated
    utterance id or a missing FLAC raises ``ValueError`` naming file and line.
    """
    utterances = {}
    for root, dirs, files in os.walk(source_dir):
        dirs.sort()
        for name in sorted(f for f in files if f.endswith('.trans.txt')):
            trans_path = os.path.join(root, name)
            with open(trans_path, encoding='utf-8') as f:
                for line_number, line in enumerate(f, 1):
                    where = '%s, line %d' % (trans_path, line_number)
                    match = _TRANSCRIPT_LINE.fullmatch(line.rstrip('\r\n'))
                    if match is None or not match.group(2).strip():
                        raise ValueError('%s: expected "<speaker>-<chapter>-<utterance> '
                                         '<TRANSCRIPT>", found %r' % (where, line))
                    utterance_id, text = match.groups()
                    flac_path = os.path.join(root, utterance_id + '.flac')
                    if not os.path.isfile(flac_path):
                        raise ValueError('%s: no audio file %s for utterance %s; the split is '
                                         'incomplete, delete %s and run again'
                                         % (where, flac_path, utterance_id, source_dir))
                    if utterance_id in utterances:
                        raise ValueError('%s: utterance %s is listed twice'
                                         % (where, utterance_id))
                    utterances[utterance_id] = (flac_path, normalize_transcript(text))
    if not utterances:
        raise ValueError('%s: no *.trans.txt transcripts found' % source_dir)
    return utterances


def convert_flac_to_wav(flac_path, wav_path):
    """Write ``flac_path`` as 16-bit PCM WAV at ``wav_path``, atomically.

    LibriSpeech is 16 kHz mono; audio of another rate or channel count raises
    ``ValueError`` rather than being resampled or downmixed behind the user's back.
    """
    audio, sample_rate = soundfile.read(flac_path, dtype='int16', always_2d=True)
    if sample_rate != SAMPLE_RATE:
        raise ValueError('%s: expected %d Hz audio, found %d Hz'
                         % (flac_path, SAMPLE_RATE, sample_rate))
    if audio.shape[1] != 1:
        raise ValueError('%s: expected mono audio, found %d channels'
                         % (flac_path, audio.shape[1]))
    tmp_path = '%s.tmp-%d' % (wav_path, os.getpid())
    soundfile.write(tmp_path, audio, sample_rate, subtype='PCM_16', format='WAV')
    os.replace(tmp_path, wav_path)


def _convert_job(paths):
    convert_flac_to_wav(*paths)


def convert_split(source_dir, wav_dir, workers=1):
    """Convert a split's FLAC files to WAV; returns its manifest rows.

    Parameters
    ----------
    source_dir : str
        ``.../LibriSpeech/<split>``, with the speaker/chapter tree.
    wav_dir : str
        Output directory, one ``<utterance id>.wav`` per utterance; existing
        WAV files are complete (see :func:`convert_flac_to_wav`) and kept.
    workers : int
        Conversion processes.

    Returns
    -------
    list of (str, int, str)
        ``(absolute wav path, wav size in bytes, transcript)`` sorted by utterance id.
    """
    utterances = read_transcripts(source_dir)
    os.makedirs(wav_dir, exist_ok=True)
    wav_paths = {u: os.path.abspath(os.path.join(wav_dir, u + '.wav')) for u in utterances}
    jobs = [(utterances[u][0], wav_paths[u]) for u in sorted(utterances)
            if not os.path.exists(wav_paths[u])]
    logger.info('%s: %d utterances, %d to convert', source_dir, len(utterances), len(jobs))
    with (multiprocessing.Pool(workers) if workers > 1 and len(jobs) > 1
          else contextlib.nullcontext()) as pool:
        done = pool.imap_unordered(_convert_job, jobs, chunksize=8) if pool is not None \
            else map(_convert_job, jobs)
        for _ in progress_bar(done, total=len(jobs), desc='FLAC -> WAV', unit='file'):
            pass
    return [(wav_paths[u], os.path.getsize(wav_paths[u]), utterances[u][1])
            for u in sorted(utterances)]


def _read_marker(path):
    """MD5 recorded in a split's ``.extracted`` marker; '' if it has none, None if no marker.

    Markers of earlier versions hold the split's name: they name no checksum, so
    that extraction is done again.
    """
    try:
        with open(path) as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    return text if _MD5_HEX.fullmatch(text) else ''


def prepare_split(split, data_dir, mirror=OFFICIAL_MIRROR, expected_md5=None, workers=1,
                  keep_tarball=False):
    """Download, extract and convert one split and write its manifest.

    Returns
    -------
    manifest_path : str
        ``<data_dir>/<split>/LibriSpeech/<split>.csv``.
    rows : int
        Utterances in the manifest.
    """
    split_dir = os.path.join(data_dir, split)
    librispeech_dir = os.path.join(split_dir, 'LibriSpeech')
    extracted_marker = os.path.join(split_dir, '.extracted')
    tarball = os.path.join(data_dir, split + '.tar.gz')
    extracted_from = _read_marker(extracted_marker)
    if extracted_from is not None and expected_md5 in (None, extracted_from):
        logger.info('%s is already extracted', split_dir)
    else:
        if extracted_from is not None:
            logger.info('%s was extracted from another tarball (md5 %s, expected %s): '
                        'extracting it again', split_dir, extracted_from, expected_md5)
            shutil.rmtree(split_dir)
        os.makedirs(data_dir, exist_ok=True)
        download_file(tarball_url(mirror, split + '.tar.gz'), tarball, expected_md5)
        safe_extract(tarball, split_dir)
        if not os.path.isdir(os.path.join(librispeech_dir, split)):
            raise ValueError('%s holds no LibriSpeech/%s/ directory; is --mirror a LibriSpeech '
                             'mirror?' % (tarball, split))
        with open(extracted_marker + '.tmp', 'w') as f:
            f.write('%s\n' % (expected_md5 or ''))
        os.replace(extracted_marker + '.tmp', extracted_marker)
        if not keep_tarball:
            os.remove(tarball)
    rows = convert_split(os.path.join(librispeech_dir, split),
                         os.path.join(librispeech_dir, split + '-wav'), workers)
    manifest_path = os.path.join(librispeech_dir, split + '.csv')
    write_manifest(rows, manifest_path)
    return manifest_path, len(rows)


def _split_list(text):
    splits = [s for s in text.split(',') if s]
    if not splits:
        raise argparse.ArgumentTypeError('no split named; choose from %s (or the splits a '
                                         "mirror's md5sum.txt lists)" % ','.join(LIBRISPEECH_SPLITS))
    return splits


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError('must be at least 1, got %d' % value)
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data_dir', default='/tmp/librispeech_data',
                        help='directory to download data and extract the tarballs into '
                             '(default: %(default)s)')
    which = parser.add_mutually_exclusive_group()
    which.add_argument('--splits', type=_split_list, default=list(LIBRISPEECH_SPLITS),
                       help='comma-separated splits (default: all seven)')
    which.add_argument('--train_only', action='store_true',
                       help='only the training splits (the reference\'s flag)')
    which.add_argument('--dev_only', action='store_true',
                       help='only dev-clean and dev-other (the reference\'s flag)')
    which.add_argument('--test_only', action='store_true',
                       help='only test-clean and test-other (the reference\'s flag)')
    parser.add_argument('--mirror', default=OFFICIAL_MIRROR,
                        help='http(s):// or file:// URL, or a local directory, holding '
                             '<split>.tar.gz (default: %(default)s)')
    parser.add_argument('--md5_file', default=None,
                        help='md5sum-style checksum list (path or URL) for the tarballs '
                             '(default: the mirror\'s md5sum.txt, or the pinned official '
                             'checksums)')
    parser.add_argument('--workers', type=_positive_int, default=os.cpu_count(),
                        help='FLAC -> WAV conversion processes (default: %(default)s)')
    parser.add_argument('--keep_tarballs', action='store_true',
                        help='keep each tarball after extracting it')
    args = parser.parse_args(argv)
    if args.train_only:
        args.splits = [s for s in LIBRISPEECH_SPLITS if s.startswith('train')]
    elif args.dev_only:
        args.splits = ['dev-clean', 'dev-other']
    elif args.test_only:
        args.splits = ['test-clean', 'test-other']
    return args


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    try:
        checksums = resolve_checksums(args.mirror, args.md5_file)
        unknown = [split for split in args.splits if split not in checksums]
        if unknown:
            raise ValueError('unknown split(s) %s: no checksum for them in the official list or '
                             'the mirror\'s; known: %s' % (', '.join(unknown),
                                                          ','.join(sorted(checksums))))
        for split in args.splits:
            manifest_path, rows = prepare_split(split, args.data_dir, args.mirror,
                                                checksums[split], args.workers,
                                                args.keep_tarballs)
            print('%s: %d utterances in %s' % (split, rows, manifest_path))
    except (ValueError, RuntimeError, OSError) as err:
        print('download.py: error: %s' % err, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
