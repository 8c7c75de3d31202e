"""Re-running with the same ``--model_dir`` resumes: the three decisions, made here.

* **Which config wins.** The latest usable checkpoint's config, with the flags
  given on this command line on top. Flags that define the model or its
  features (``FIXED_ON_RESUME``) cannot change: a new model needs a new
  ``--model_dir``. Without a checkpoint: the defaults, with the flags on top.
* **Which checkpoint.** The newest checkpoint of the model directory that
  opens (:func:`gluon_ds2.checkpoint.load_latest` passes over damaged ones).
  Under Horovod rank 0 chooses and every rank loads that file, optimizer
  state included; the directory must be shared by the hosts.
* **Where training picks up.** The checkpoint's epoch, batch within the epoch,
  step and counters, and float16's loss scale; a checkpoint written at the end
  of an epoch continues with the next one.
"""
import logging
import os

from . import checkpoint as ckpt
from .config import Config, TrainConfig

__all__ = ['FIXED_ON_RESUME', 'run_config', 'restore_checkpoint', 'initial_state']

logger = logging.getLogger(__name__)

# Config groups that define the model or its inputs: a resumed run cannot change them.
FIXED_ON_RESUME = ('audio', 'model')


def run_config(explicit):
    """The run's config and whether it resumes.

    Parameters
    ----------
    explicit : dict
        ``{group: {flag: value}}`` given on the command line
        (:func:`gluon_ds2.config.explicit_flags`); ``train.model_dir`` picks the
        directory (default: the reference's).

    Returns
    -------
    (Config, resumed) : (Config, bool)
    """
    model_dir = explicit.get('train', {}).get('model_dir', TrainConfig().model_dir)
    found = ckpt.load_latest(model_dir) if os.path.isdir(model_dir) else None
    data = Config().to_json()
    if found is not None:
        path, meta, _ = found
        data = meta['config']
        for group in FIXED_ON_RESUME:
            for name, value in explicit.get(group, {}).items():
                if data[group][name] != value:
                    raise ValueError(
                        '--%s=%s differs from the checkpoint in %s (%s): a resumed run keeps its '
                        'model and features. Use a new --model_dir to train a different model.'
                        % (name, value, model_dir, data[group][name]))
    for group, values in explicit.items():
        data[group].update(values)
    data['train']['model_dir'] = model_dir
    return Config.from_json(data), found is not None


def restore_checkpoint(model_dir, dist, net, trainer, loss_scaler=None):
    """Load ``model_dir``'s latest usable checkpoint into ``net``, ``trainer`` and ``loss_scaler``.

    Every rank calls it; rank 0 chooses the file. Returns the checkpoint's
    meta dict, or None when there is nothing to resume. Broadcast the
    parameters afterwards. A checkpoint without a loss scale (a float32 or
    bfloat16 run, or one older than the scale's saving) leaves ``loss_scaler`` as it is.
    """
    found = ckpt.load_latest(model_dir) if dist.is_root else None
    path = dist.broadcast_object(found[0] if found else None, name='resume_path')
    if path is None:
        return None
    meta, archive = found[1:] if found else ckpt.read_checkpoint(path)
    ckpt.load_into(path, archive, net, trainer)
    if loss_scaler is not None and meta.get('loss_scaler'):
        loss_scaler.load_state_dict(meta['loss_scaler'])
    if dist.is_root:
        logger.info('resuming from %s (epoch %d, batch %d, step %d)', path, meta['epoch'] + 1,
                    meta['batch_in_epoch'], meta['global_step'])
    return meta


def initial_state(meta, batches_per_epoch):
    """The training loop's state: fresh, or picked up from a checkpoint's ``meta``.

    ``batches_per_epoch`` is this run's; an epoch the checkpoint finished
    continues with the next one.
    """
    state = dict(epoch=0, batch_in_epoch=0, global_step=0, nonfinite_steps=0,
                 consecutive_nonfinite=0, skipped_files=0, best_wer=None, last_eval=None,
                 stopped_early=False)
    if meta is not None:
        state.update({k: meta[k] for k in state if k in meta})
        if batches_per_epoch and state['batch_in_epoch'] >= batches_per_epoch:
            state['epoch'] += 1
            state['batch_in_epoch'] = 0
    return state
