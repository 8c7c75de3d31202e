"""Read, combine and filter manifests in the reference's format (pandas).

A manifest is a tab-separated file with the header
``wav_filename<TAB>wav_filesize<TAB>transcript`` and one utterance per line: the
WAV path (the reference writes absolute paths), its size in bytes and its
lower-case transcript. Fields are never quoted, so a transcript may hold any
character except a tab or a line break.

:func:`read_manifest` returns a ``DataFrame`` with two more columns,
``manifest`` and ``source_line``, so that later stages can name the line a
problem came from. :func:`write_manifest` writes only the three columns.
"""
import csv
import itertools
import logging

import pandas as pd
import soundfile

from .atomic import atomic_write_text
from .progress import progress_bar

__all__ = ['MANIFEST_COLUMNS', 'read_manifest', 'read_manifests', 'write_manifest',
           'wav_duration', 'add_durations', 'filter_by_duration', 'combine_manifests']

logger = logging.getLogger(__name__)

MANIFEST_COLUMNS = ('wav_filename', 'wav_filesize', 'transcript')

# Malformed rows logged one by one in 'skip' mode; the rest are only counted.
_MAX_LOGGED_ROWS = 5


def _check_on_error(on_error):
    if on_error not in ('fail', 'skip'):
        raise ValueError("on_error must be 'fail' or 'skip', got %r" % (on_error,))


def _row_problem(fields):
    """What is wrong with the fields of one data line, or None."""
    if len(fields) != len(MANIFEST_COLUMNS):
        return 'expected %d tab-separated fields (%s), found %d' % (
            len(MANIFEST_COLUMNS), ', '.join(MANIFEST_COLUMNS), len(fields))
    wav_filename, wav_filesize, _ = fields
    if not wav_filename:
        return 'empty wav_filename'
    if not (wav_filesize.isascii() and wav_filesize.isdigit()):
        return 'wav_filesize must be a non-negative integer, found %r' % (wav_filesize,)
    return None


def _read_rows(reader, path, on_error):
    """Valid rows as (wav_filename, wav_filesize, transcript, line) tuples, and the skip count."""
    records, skipped = [], 0
    for fields in reader:
        problem = _row_problem(fields)
        if problem is None:
            records.append((fields[0], int(fields[1]), fields[2], reader.line_num))
            continue
        message = '%s, line %d: %s' % (path, reader.line_num, problem)
        if on_error == 'fail':
            raise ValueError(message + "; fix or delete the line, or read with on_error='skip'")
        if skipped < _MAX_LOGGED_ROWS:
            logger.warning('skipping malformed row: %s', message)
        skipped += 1
    return records, skipped


def read_manifest(path, on_error='fail'):
    """Read and validate one manifest.

    Lines are split with the ``csv`` module (``QUOTE_NONE``, tab-delimited)
    rather than ``pandas.read_csv`` because the ``csv`` reader knows the file
    line of every row, short rows included, which the error messages name.

    Parameters
    ----------
    path : str
        Manifest file.
    on_error : {'fail', 'skip'}
        A malformed row (wrong field count, empty path, non-integer size)
        raises ``ValueError`` naming ``path, line N``, or is dropped, logged
        and counted in ``df.attrs['skipped_rows']``. A bad header always raises.

    Returns
    -------
    pandas.DataFrame
        Columns ``wav_filename`` (str), ``wav_filesize`` (int64), ``transcript``
        (str, possibly empty), ``source_line`` (int64, 1-based line in the file)
        and ``manifest`` (str, ``path``).
    """
    _check_on_error(on_error)
    with open(path, encoding='utf-8', newline='') as f:
        reader = csv.reader(f, delimiter='\t', quoting=csv.QUOTE_NONE)
        try:
            header = next(reader, None)
            if header is None:
                raise ValueError('%s: empty file; a manifest starts with the header %r'
                                 % (path, '\t'.join(MANIFEST_COLUMNS)))
            if tuple(header) != MANIFEST_COLUMNS:
                raise ValueError('%s, line 1: expected the header %r, found %r'
                                 % (path, '\t'.join(MANIFEST_COLUMNS), '\t'.join(header)))
            records, skipped = _read_rows(reader, path, on_error)
        except csv.Error as err:
            raise ValueError('%s, line %d: %s' % (path, reader.line_num, err)) from None
    if skipped:
        logger.warning('%s: skipped %d malformed rows', path, skipped)
    df = pd.DataFrame.from_records(
        records, columns=list(MANIFEST_COLUMNS) + ['source_line'])
    df = df.astype({'wav_filename': str, 'wav_filesize': 'int64', 'transcript': str,
                    'source_line': 'int64'})
    df['manifest'] = str(path)
    df.attrs['skipped_rows'] = skipped
    return df


def read_manifests(paths, on_error='fail'):
    """Read several manifests into one frame, in the order given.

    Parameters
    ----------
    paths : str or list of str
        Manifest paths, or one string of comma-separated paths as the
        reference's ``--train_data_dir`` and ``--eval_data_dir`` accept.
    on_error : {'fail', 'skip'}
        As in :func:`read_manifest`; ``attrs['skipped_rows']`` is the total.

    Returns
    -------
    pandas.DataFrame
        The rows of all manifests, with a fresh ``RangeIndex``.
    """
    if isinstance(paths, str):
        paths = [p for p in paths.split(',') if p]
    paths = list(paths)
    if not paths:
        raise ValueError('no manifest paths given')
    frames = [read_manifest(p, on_error=on_error) for p in paths]
    df = pd.concat(frames, ignore_index=True)
    df.attrs['skipped_rows'] = sum(frame.attrs['skipped_rows'] for frame in frames)
    return df


def _manifest_lines(rows, path):
    """Formatted data lines; refuses values that would break the format."""
    for index, (wav_filename, wav_filesize, transcript) in enumerate(rows):
        where = '%s: row %d (counting from 0)' % (path, index)
        for column, value in (('wav_filename', wav_filename), ('transcript', transcript)):
            if not isinstance(value, str):
                raise ValueError('%s: %s must be a string, got %r' % (where, column, value))
            if '\t' in value or '\n' in value or '\r' in value:
                raise ValueError('%s: %s %r holds a tab or line break, which the manifest '
                                 'format cannot store' % (where, column, value))
        if not wav_filename:
            raise ValueError('%s: empty wav_filename' % where)
        try:
            size = int(wav_filesize)
        except (TypeError, ValueError):
            size = None
        if size is None or size != wav_filesize or size < 0:
            raise ValueError('%s: wav_filesize must be a non-negative integer, got %r'
                             % (where, wav_filesize))
        yield '%s\t%d\t%s\n' % (wav_filename, size, transcript)


def write_manifest(rows, path):
    """Write a manifest atomically and deterministically.

    The file is written to a temporary name, synced and renamed over ``path``
    (:func:`~gluon_ds2.atomic.atomic_write_text`), so readers see the old file
    or the new one, never a part. The same rows give a byte-identical file: UTF-8, ``\\n`` line
    endings, rows in the order given. A file that already holds exactly these rows is left
    alone, modification time included, so what is made from it (run.sh's Flite splits) is
    not thought out of date.

    Parameters
    ----------
    rows : pandas.DataFrame or iterable of (str, int, str)
        A frame with at least the columns of :data:`MANIFEST_COLUMNS` (others,
        such as ``source_line``, are not written), or
        ``(wav_filename, wav_filesize, transcript)`` tuples.
    path : str
        Output file; its directory is created if needed.
    """
    if isinstance(rows, pd.DataFrame):
        missing = [c for c in MANIFEST_COLUMNS if c not in rows.columns]
        if missing:
            raise ValueError('cannot write manifest %s: the frame lacks columns %s'
                             % (path, ', '.join(missing)))
        rows = rows[list(MANIFEST_COLUMNS)].itertuples(index=False, name=None)
    text = ''.join(itertools.chain(['\t'.join(MANIFEST_COLUMNS) + '\n'],
                                   _manifest_lines(rows, path)))
    try:
        with open(path, encoding='utf-8', newline='') as f:
            if f.read() == text:
                return  # unchanged: leave the file, and its modification time, as they are
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write_text(path, text)


def wav_duration(path):
    """Duration in seconds, from the audio file's header (no decoding)."""
    info = soundfile.info(path)
    return info.frames / info.samplerate


def _where(row):
    if 'manifest' in row._fields:
        return '%s, line %d' % (row.manifest, row.source_line)
    return 'row %d' % row.Index


def add_durations(df, progress=True):
    """Copy of ``df`` with a ``duration`` column (seconds) read from each WAV header.

    Raises ``RuntimeError`` naming the manifest line of a missing or unreadable file.
    """
    durations = []
    rows = df.itertuples()
    if progress:
        rows = progress_bar(rows, total=len(df), desc='reading WAV headers', unit='file',
                            leave=False)
    for row in rows:
        try:
            durations.append(wav_duration(row.wav_filename))
        except (RuntimeError, OSError) as err:
            raise RuntimeError('%s: cannot read the audio header of %s (%s); re-run '
                               'data/download.py or fix the manifest'
                               % (_where(row), row.wav_filename, err)) from None
    out = df.copy()
    out['duration'] = pd.Series(durations, index=df.index, dtype='float64')
    return out


def filter_by_duration(df, max_duration):
    """Keep utterances of at most ``max_duration`` seconds.

    Like the reference's run script (``soxi -D`` then ``x <= maxlen``), an
    utterance exactly ``max_duration`` long is kept. Durations come from the
    ``duration`` column, which :func:`add_durations` adds when it is missing.

    Returns
    -------
    kept : pandas.DataFrame
        The kept rows in their original order, with a fresh ``RangeIndex``.
    dropped : int
        How many rows were longer.
    """
    if not max_duration > 0:
        raise ValueError('max_duration must be a positive number of seconds, got %r'
                         % (max_duration,))
    if 'duration' not in df.columns:
        df = add_durations(df)
    keep = df['duration'] <= max_duration
    return df[keep].reset_index(drop=True), int((~keep).sum())


def combine_manifests(paths, output, max_duration=None):
    """Concatenate manifests, optionally drop long utterances, write ``output``.

    Every WAV header is read (for the durations), so a missing file is reported
    here, with its manifest line, rather than during training.

    Parameters
    ----------
    paths : str or list of str
        Input manifests (see :func:`read_manifests`).
    output : str
        Combined manifest to write.
    max_duration : float or None
        Drop utterances longer than this many seconds.

    Returns
    -------
    kept : pandas.DataFrame
        The rows written, with a ``duration`` column.
    dropped : int
        Rows dropped for being longer than ``max_duration``.
    """
    df = add_durations(read_manifests(paths))
    dropped = 0
    if max_duration is not None:
        df, dropped = filter_by_duration(df, max_duration)
    write_manifest(df, output)
    logger.info('wrote %s: %d rows kept, %d dropped', output, len(df), dropped)
    return df, dropped
