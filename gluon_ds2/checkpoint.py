"""Self-describing checkpoints, written atomically.

A checkpoint is one file, ``ckpt-<step>.ckpt``: an uncompressed zip holding
``params`` (``save_parameters``), ``trainer`` (optimizer state, optional) and
``meta.json`` (the full :class:`~gluon_ds2.config.Config`, the vocabulary,
epoch, position in the epoch's batch order, global step, metrics). The config
and vocabulary are enough to rebuild the model, so ``evaluate.py`` and
transcription need no flags.

Every file is written to a temporary name, fsynced and renamed, so a crash or
``kill -9`` leaves either the old file or the new one. ``checkpoints.json``
indexes a model directory: the kept checkpoints, ``latest`` and ``best`` (by
eval WER).
"""
import json
import logging
import os
import tempfile
import zipfile


__all__ = ['FORMAT_VERSION', 'CheckpointError', 'atomic_write', 'save_checkpoint',
           'read_checkpoint', 'load_into', 'load_latest', 'resolve_checkpoint', 'read_index']

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
INDEX_FILE = 'checkpoints.json'


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file."""


def atomic_write(path, write):
    """Call ``write(file_object)`` on a temp file beside ``path``, fsync, rename."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.' + os.path.basename(path) + '.')
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_index(model_dir):
    """``checkpoints.json`` of a model directory (empty index if none)."""
    path = os.path.join(model_dir, INDEX_FILE)
    if not os.path.exists(path):
        return {'checkpoints': [], 'latest': None, 'best': None}
    with open(path) as f:
        return json.load(f)


def _write_json(path, data):
    atomic_write(path, lambda f: f.write(json.dumps(data, indent=2, sort_keys=True).encode()))


def save_checkpoint(model_dir, net, trainer, meta, keep=3, wer=None):
    """Write ``ckpt-<global_step>.ckpt`` and update the index.

    Parameters
    ----------
    model_dir : str
    net : gluon.Block
    trainer : gluon.Trainer or None
    meta : dict
        JSON-serializable; must hold ``global_step``. ``format_version`` is added.
    keep : int
        Recent checkpoints to keep; the best by ``wer`` is kept as well.
    wer : float or None
        Eval WER of this checkpoint, if it was evaluated.

    Returns
    -------
    str
        Path of the checkpoint written.
    """
    step = int(meta['global_step'])
    name = 'ckpt-%08d.ckpt' % step
    path = os.path.join(model_dir, name)
    meta = dict(meta, format_version=FORMAT_VERSION, wer=wer)
    with tempfile.TemporaryDirectory(dir=model_dir if os.path.isdir(model_dir) else None) as tmp:
        params_path = os.path.join(tmp, 'params')
        net.save_parameters(params_path)
        trainer_path = None
        if trainer is not None:
            trainer_path = os.path.join(tmp, 'trainer')
            trainer.save_states(trainer_path)

        def write(f):
            with zipfile.ZipFile(f, 'w', zipfile.ZIP_STORED) as archive:
                archive.writestr('meta.json', json.dumps(meta, indent=2, sort_keys=True))
                archive.write(params_path, 'params')
                if trainer_path is not None:
                    archive.write(trainer_path, 'trainer')
        atomic_write(path, write)

    index = read_index(model_dir)
    entries = [e for e in index['checkpoints'] if e['name'] != name]
    entries.append({'name': name, 'global_step': step, 'epoch': meta.get('epoch'), 'wer': wer})
    entries.sort(key=lambda e: e['global_step'])
    scored = [e for e in entries if e['wer'] is not None]
    best = min(scored, key=lambda e: (e['wer'], -e['global_step']))['name'] if scored else None
    kept = {e['name'] for e in entries[-keep:]} | ({best} if best else set())
    index = {'checkpoints': [e for e in entries if e['name'] in kept], 'latest': name,
             'best': best}
    _write_json(os.path.join(model_dir, INDEX_FILE), index)
    for entry in entries:
        if entry['name'] not in kept:
            stale = os.path.join(model_dir, entry['name'])
            if os.path.exists(stale):
                os.unlink(stale)
    return path


def read_checkpoint(path):
    """Open a checkpoint: returns (meta dict, zipfile.ZipFile); raises CheckpointError."""
    try:
        archive = zipfile.ZipFile(path)
        meta = json.loads(archive.read('meta.json'))
        names = set(archive.namelist())
        if archive.testzip() is not None or 'params' not in names:
            raise zipfile.BadZipFile('damaged member')
    except FileNotFoundError:
        raise CheckpointError('%s: checkpoint not found' % path) from None
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as err:
        raise CheckpointError('%s: not a readable gluon-ds2 checkpoint (%s)' % (path, err)) \
            from None
    version = meta.get('format_version')
    if version != FORMAT_VERSION:
        raise CheckpointError('%s: checkpoint format version %r, this gluon-ds2 reads version '
                              '%d' % (path, version, FORMAT_VERSION))
    return meta, archive


def load_into(path, archive, net, trainer=None, ctx=None):
    """Load a checkpoint's parameters (and optimizer state) into ``net`` / ``trainer``."""
    with tempfile.TemporaryDirectory() as tmp:
        archive.extract('params', tmp)
        try:
            net.load_parameters(os.path.join(tmp, 'params'), ctx=ctx)
        except (AssertionError, ValueError, RuntimeError) as err:
            raise CheckpointError('%s: parameters do not fit the model (%s)' % (path, err)) \
                from None
        if trainer is not None and 'trainer' in archive.namelist():
            archive.extract('trainer', tmp)
            trainer.load_states(os.path.join(tmp, 'trainer'))


def resolve_checkpoint(path, which='latest'):
    """A checkpoint file, or a model directory's ``latest``/``best`` checkpoint."""
    if not os.path.isdir(path):
        return path
    index = read_index(path)
    name = index.get(which)
    if name is None:
        raise CheckpointError('%s: no %s checkpoint in this model directory (%s)'
                              % (path, which, 'nothing saved yet' if not index['checkpoints']
                                 else 'no evaluated checkpoint'))
    return os.path.join(path, name)


def load_latest(model_dir):
    """Newest checkpoint of ``model_dir`` that opens; broken ones are reported and passed over.

    Returns
    -------
    (path, meta, archive) or None when the directory holds no usable checkpoint.
    """
    index = read_index(model_dir)
    for entry in sorted(index['checkpoints'], key=lambda e: -e['global_step']):
        path = os.path.join(model_dir, entry['name'])
        try:
            meta, archive = read_checkpoint(path)
        except CheckpointError as err:
            logger.warning('%s; trying the previous checkpoint', err)
            continue
        return path, meta, archive
    return None

