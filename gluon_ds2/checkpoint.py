"""Self-describing checkpoints, written atomically.

A checkpoint is one file, ``ckpt-<step>.ckpt``: an uncompressed zip holding
``params`` (``save_parameters``), the optimizer state (optional: ``optimizer``,
a pickle of the updater's state and optimizer whose arrays are kept apart in
``optimizer_arrays``, an ``mx.nd.save`` file) and ``meta.json`` (the full
:class:`~gluon_ds2.config.Config`, the vocabulary, epoch, position in the
epoch's batch order, global step, metrics). The config and vocabulary are
enough to rebuild the model, so ``evaluate.py`` and transcription need no
flags.

Every file is written to a temporary name, fsynced and renamed (:mod:`gluon_ds2.atomic`),
so a crash or ``kill -9`` leaves either the old file or the new one (and temporary files,
which :func:`remove_partial_writes` clears at the next start).
``checkpoints.json`` indexes a model directory: the kept checkpoints,
``latest`` and ``best`` (by eval WER), and ``averaged``: a model whose weights
are the mean of the last kept checkpoints' (``ckpt-<step>-avg<n>.ckpt``, no
optimizer state; :func:`save_averaged`). It is never resumed from, and it is
``best`` only if its eval WER is lower than every trained checkpoint's.
"""
import io
import json
import logging
import os
import pickle
import re
import shutil
import tempfile
import zipfile

import mxnet as mx

from .atomic import atomic_write, atomic_write_text, temp_prefix
from .model import pack_legacy_parameters

__all__ = ['FORMAT_VERSION', 'CheckpointError', 'save_checkpoint',
           'read_checkpoint', 'load_into', 'load_latest', 'resolve_checkpoint', 'read_index',
           'remove_partial_writes', 'check_keep', 'average_parameters', 'save_averaged']

logger = logging.getLogger(__name__)

# Version 2 stores the optimizer state as 'optimizer' + 'optimizer_arrays'; version 1's
# 'trainer' member (Trainer.save_states) is still read.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
INDEX_FILE = 'checkpoints.json'


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file."""


def read_index(model_dir):
    """``checkpoints.json`` of a model directory (empty index if none)."""
    path = os.path.join(model_dir, INDEX_FILE)
    if not os.path.exists(path):
        return {'checkpoints': [], 'latest': None, 'best': None}
    with open(path) as f:
        return json.load(f)


def _write_json(path, data):
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True))


def check_keep(keep):
    """``--keep_checkpoints`` must keep the latest checkpoint: a resumed run starts from it."""
    if keep < 1:
        raise ValueError('--keep_checkpoints=%d: keep at least 1 (the latest checkpoint, which '
                         'a resumed run starts from; the best is kept as well)' % keep)


def _write_archive(path, net, trainer, meta):
    """The checkpoint zip at ``path``: meta.json, params, and the optimizer if ``trainer``."""
    # MXNet writes to file names only: the parameters and optimizer arrays go
    # through temporary files beside the checkpoint, then into the zip.
    temps = []
    try:
        for _ in range(2):
            fd, temp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=temp_prefix(path))
            os.close(fd)
            temps.append(temp)
        params_path, arrays_path = temps
        net.save_parameters(params_path)
        optimizer = None
        if trainer is not None:
            optimizer, arrays = _dump_optimizer(trainer)
            mx.nd.save(arrays_path, arrays)

        def write(f):
            with zipfile.ZipFile(f, 'w', zipfile.ZIP_STORED) as archive:
                archive.writestr('meta.json', json.dumps(meta, indent=2, sort_keys=True))
                archive.write(params_path, 'params')
                if optimizer is not None:
                    archive.writestr('optimizer', optimizer)
                    archive.write(arrays_path, 'optimizer_arrays')
        atomic_write(path, write)
    finally:
        for temp in temps:
            os.unlink(temp)


def _best_trained(entries):
    """Name of the index entry with the lowest eval WER (the later one on a tie), or None."""
    scored = [e for e in entries if e['wer'] is not None]
    return min(scored, key=lambda e: (e['wer'], -e['global_step']))['name'] if scored else None


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
    check_keep(keep)
    step = int(meta['global_step'])
    name = 'ckpt-%08d.ckpt' % step
    path = os.path.join(model_dir, name)
    meta = dict(meta, format_version=FORMAT_VERSION, wer=wer)
    os.makedirs(model_dir, exist_ok=True)
    _write_archive(path, net, trainer, meta)

    index = read_index(model_dir)
    entries = [e for e in index['checkpoints'] if e['name'] != name]
    entries.append({'name': name, 'global_step': step, 'epoch': meta.get('epoch'), 'wer': wer})
    entries.sort(key=lambda e: e['global_step'])
    best = _best_trained(entries)
    kept = {e['name'] for e in entries[-keep:]} | ({best} if best else set())
    previous_average = index.get('averaged')
    index = {'checkpoints': [e for e in entries if e['name'] in kept], 'latest': name,
             'best': best}
    _write_json(os.path.join(model_dir, INDEX_FILE), index)
    # An averaged model is of checkpoints older than this one: superseded.
    _remove(model_dir, [e['name'] for e in entries if e['name'] not in kept] +
            ([previous_average['name']] if previous_average else []))
    return path


def _remove(model_dir, names):
    """Delete the files ``names`` of ``model_dir`` that exist."""
    for name in names:
        path = os.path.join(model_dir, name)
        if os.path.exists(path):
            os.unlink(path)


def average_parameters(paths):
    """The element-wise mean of checkpoints' parameters, BatchNorm statistics included.

    Averaging the last checkpoints of a run smooths the noise of its last updates, as
    icefall and ESPnet recipes do before decoding. The checkpoints must be of one model:
    the same model and audio configuration, the same parameter names and shapes.

    Returns
    -------
    dict
        Parameter name (as ``save_parameters`` writes it) -> float32 NDArray.
    """
    if len(paths) < 2:
        raise ValueError('averaging needs at least two checkpoints, got %d' % len(paths))
    sums, first = None, None
    for path in paths:
        meta, archive = read_checkpoint(path)
        try:
            arrays = mx.nd.load_frombuffer(archive.read('params'))
        except (zipfile.BadZipFile, KeyError, mx.MXNetError) as err:
            raise CheckpointError('%s: not a readable gluon-ds2 checkpoint (%s)' % (path, err)) \
                from None
        model = {k: meta.get('config', {}).get(k) for k in ('model', 'audio')}
        if first is None:
            sums, first = {k: v.astype('float64') for k, v in arrays.items()}, (path, model)
            continue
        if model != first[1]:
            raise CheckpointError('%s: another model than %s (its model or audio configuration '
                                  'differs); only checkpoints of one run can be averaged'
                                  % (path, first[0]))
        shapes = {k: v.shape for k, v in arrays.items()}
        if shapes != {k: v.shape for k, v in sums.items()}:
            raise CheckpointError('%s: its parameters differ from those of %s in names or '
                                  'shapes' % (path, first[0]))
        for k, v in arrays.items():
            sums[k] += v.astype('float64')
    return {k: (v / len(paths)).astype('float32') for k, v in sums.items()}


def save_averaged(model_dir, net, meta, sources, wer=None):
    """Write ``net`` (averaged weights) as ``ckpt-<step>-avg<n>.ckpt`` and index it.

    Parameters
    ----------
    model_dir : str
    net : gluon.Block
        Holding the mean of the ``sources`` checkpoints' parameters.
    meta : dict
        The newest source's metadata (config, vocabulary, step); ``averaged_from`` is added.
    sources : list of str
        Names of the averaged checkpoints, in this directory.
    wer : float or None
        Its eval WER, on the set the trained checkpoints were scored on. If lower than
        every trained checkpoint's, the index's ``best`` becomes this model.

    Returns
    -------
    str
        Path of the checkpoint written.
    """
    name = 'ckpt-%08d-avg%d.ckpt' % (int(meta['global_step']), len(sources))
    path = os.path.join(model_dir, name)
    meta = dict(meta, format_version=FORMAT_VERSION, wer=wer, averaged_from=list(sources))
    _write_archive(path, net, None, meta)
    index = read_index(model_dir)
    previous = index.get('averaged')
    index['averaged'] = {'name': name, 'global_step': int(meta['global_step']),
                         'averaged_from': list(sources), 'wer': wer}
    best = _best_trained(index['checkpoints'])
    best_wer = {e['name']: e['wer'] for e in index['checkpoints']}.get(best)
    index['best'] = name if wer is not None and (best is None or wer < best_wer) else best
    _write_json(os.path.join(model_dir, INDEX_FILE), index)
    if previous and previous['name'] != name:
        _remove(model_dir, [previous['name']])
    return path


# What a killed save leaves: ``atomic_write``'s temporary files (``.ckpt-<step>.ckpt.<random>``,
# ``.ckpt-<step>-avg<n>.ckpt.<random>``,
# ``.checkpoints.json.<random>``), and the ``tmp<random>`` directories of versions before 2.
_PARTIAL_FILE = re.compile(r'^\.(ckpt-\d+(-avg\d+)?\.ckpt|%s)\.[A-Za-z0-9_]+$'
                           % re.escape(INDEX_FILE))
_PARTIAL_DIR = re.compile(r'^tmp[A-Za-z0-9_]+$')


def remove_partial_writes(model_dir):
    """Delete the temporary files of saves that were killed; returns their names.

    Call it before this job's first save: the files of a save in progress
    look the same.
    """
    removed = []
    for entry in os.scandir(model_dir) if os.path.isdir(model_dir) else ():
        if entry.is_file() and _PARTIAL_FILE.match(entry.name):
            os.unlink(entry.path)
        elif entry.is_dir() and _PARTIAL_DIR.match(entry.name) and \
                set(os.listdir(entry.path)) <= {'params', 'trainer'}:
            shutil.rmtree(entry.path)
        else:
            continue
        removed.append(entry.name)
    if removed:
        logger.info('%s: removed %d temporary file(s) of an interrupted save: %s', model_dir,
                    len(removed), ', '.join(sorted(removed)))
    return sorted(removed)


def read_checkpoint(path):
    """Open a checkpoint: returns (meta dict, zipfile.ZipFile); raises CheckpointError.

    Only the zip's directory and ``meta.json`` are read here; the members'
    checksums are checked when :func:`load_into` reads them, so a checkpoint
    is read once, not once to check it and again to load it.
    """
    try:
        archive = zipfile.ZipFile(path)
        meta = json.loads(archive.read('meta.json'))
        if 'params' not in archive.namelist():
            raise zipfile.BadZipFile('no params member')
    except FileNotFoundError:
        raise CheckpointError('%s: checkpoint not found' % path) from None
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as err:
        raise CheckpointError('%s: not a readable gluon-ds2 checkpoint (%s)' % (path, err)) \
            from None
    version = meta.get('format_version')
    if version not in READABLE_VERSIONS:
        raise CheckpointError('%s: checkpoint format version %r, this gluon-ds2 reads versions '
                              '%s' % (path, version, ', '.join(map(str, READABLE_VERSIONS))))
    return meta, archive


class _ArrayPickler(pickle.Pickler):
    """Pickles an object with its NDArrays set aside in ``arrays`` (saved by ``mx.nd.save``).

    MXNet's own NDArray pickling is slow at this size: 7 s for the reference
    model's Adam state, against 0.3 s for ``mx.nd.save``.
    """

    def __init__(self, file):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.arrays = {}

    def persistent_id(self, obj):
        if isinstance(obj, mx.nd.NDArray):
            key = 'array%d' % len(self.arrays)
            self.arrays[key] = obj
            return key
        return None


class _ArrayUnpickler(pickle.Unpickler):
    def __init__(self, file, arrays):
        super().__init__(file)
        self.arrays = arrays

    def persistent_load(self, key):
        return self.arrays[key]


def _dump_optimizer(trainer):
    """(pickle bytes, {key: NDArray}): what ``Trainer.save_states`` writes, arrays apart."""
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    if trainer._params_to_init:
        trainer._init_params()
    updater = trainer._updaters[0]
    buffer = io.BytesIO()
    pickler = _ArrayPickler(buffer)
    pickler.dump((updater.states, updater.optimizer))
    return buffer.getvalue(), pickler.arrays


def _load_optimizer(trainer, pickled, arrays):
    """The inverse of :func:`_dump_optimizer`, as ``Trainer.load_states`` sets a state file."""
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    if trainer._params_to_init:
        trainer._init_params()
    optimizer = None
    for updater in trainer._updaters:
        # Each device's updater gets its own state; it is moved to that device
        # at the first update (states_synced False).
        updater.states, updater.optimizer = _ArrayUnpickler(io.BytesIO(pickled), arrays).load()
        updater.optimizer = optimizer = optimizer or updater.optimizer
        updater.states_synced = dict.fromkeys(updater.states, False)
    trainer._optimizer = optimizer
    optimizer.param_dict = dict(enumerate(trainer._params))


def load_into(path, archive, net, trainer=None, ctx=None):
    """Load a checkpoint's parameters (and optimizer state) into ``net`` / ``trainer``."""
    names = archive.namelist()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            params = archive.extract('params', tmp)
            legacy = False
            try:
                try:
                    net.load_parameters(params, ctx=ctx)
                except AssertionError:
                    # A parameter is missing: a checkpoint from before the packed RNN
                    # layout holds it under its old names. Only then is the file read twice.
                    arrays, legacy = pack_legacy_parameters(mx.nd.load(params))
                    if not legacy:
                        raise
                    mx.nd.save(params, arrays)
                    net.load_parameters(params, ctx=ctx)
            except (AssertionError, ValueError, RuntimeError, mx.MXNetError) as err:
                raise CheckpointError('%s: parameters do not fit the model (%s)' % (path, err)) \
                    from None
            if trainer is not None and legacy:
                # Adam's moments are indexed by parameter; the old layout had four
                # RNN parameters where there is one now, so they cannot be mapped.
                logger.warning('%s predates the packed RNN layout: its parameters were '
                               'converted; the optimizer state starts afresh', path)
            elif trainer is not None and 'optimizer' in names:
                arrays_bytes = archive.read('optimizer_arrays')
                arrays = mx.nd.load_frombuffer(arrays_bytes) if arrays_bytes else {}
                _load_optimizer(trainer, archive.read('optimizer'), arrays)
            elif trainer is not None and 'trainer' in names:  # format version 1
                archive.extract('trainer', tmp)
                trainer.load_states(os.path.join(tmp, 'trainer'))
    except (zipfile.BadZipFile, KeyError) as err:  # a member's checksum or the zip is damaged
        raise CheckpointError('%s: not a readable gluon-ds2 checkpoint (%s)' % (path, err)) \
            from None


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

