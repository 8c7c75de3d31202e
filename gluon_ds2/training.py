"""Training: data, model, the loop, evaluation cadence, checkpoints, early stop.

One step, in order: forward on each device's slice of the batch, CTC loss,
backward of the loss averaged over the batch, allreduce (devices, then Horovod
ranks), global-norm clip, skip if the norm is not finite, optimizer update.

``run(cfg)`` starts fresh or resumes ``cfg.train.model_dir``'s latest
checkpoint at the same epoch, batch position, step and optimizer state
(:mod:`gluon_ds2.resume` decides which checkpoint and where to pick up).

``<model_dir>/metrics.jsonl`` gets one JSON object per line: every
``--log_every`` steps a ``kind: "train"`` record (``step``, ``epoch``, ``loss``
averaged since the last record, ``grad_norm``, ``lr``, ``utterances_per_s``,
``audio_s_per_s``, ``time``), and after each evaluation a ``kind: "eval"``
record per evaluation set (``split``: ``"eval"`` for ``--eval_data_dir``, else
its ``--extra_eval_data_dirs`` name; ``step``, ``epoch``, ``time`` and the keys
of :meth:`~gluon_ds2.metrics.ErrorRateAccumulator.result`). Early stop and the
best checkpoint follow the ``"eval"`` set alone. The curves of
``training_curves.png`` are drawn from it.
"""
import collections
import functools
import logging
import os
import signal
import time

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from . import checkpoint as ckpt
from .augment import WaveformAugment
from .batchify import make_dataloader
from .config import PRIMARY_EVAL_SPLIT, parse_extra_eval_sets
from .curves import MetricsLog, plot_curves
from .dataset import SpeechDataset, load_entries
from .decoder import greedy_decode_batch
from .devices import ctc_label_limit, describe_devices, select_devices
from .distributed import setup as setup_distributed
from .loss import CTCLoss
from .model import DeepSpeech2, output_length
from .precision import setup_precision
from .progress import progress_bar
from .resume import initial_state, restore_checkpoint
from .sampler import EpochKeyedBatches, SortagradSampler, sorted_batches
from .scoring import evaluate
from .vocab import Vocabulary

__all__ = ['train_step', 'train_one_epoch', 'make_train_loader', 'build_model',
           'checkpoint_meta', 'run', 'TrainingStopped']

logger = logging.getLogger(__name__)

MAX_CONSECUTIVE_NONFINITE = 20


class TrainingStopped(RuntimeError):
    """Training cannot go on (e.g. the loss stays NaN); the message says why."""


# Batches are padded to a multiple of this many frames (0.32 s at 10 ms): a
# few dozen distinct shapes reach the hybridized graph instead of one per batch.
PAD_FRAMES_TO = 32


def _make_loader(dataset, batch_sampler, num_workers, round_to=PAD_FRAMES_TO):
    # Workers ignore Ctrl-C and SIGTERM; this process handles them (batchify's note).
    return make_dataloader(dataset, batch_sampler, num_workers=num_workers, round_to=round_to)


def _mark_zero_gradients(params, devices):
    """Zero gradients on ``devices`` that took no slice, marked fresh as backward would.

    A process or device without data still joins the reduction (the ranks
    would fall out of step otherwise), adding nothing; ``update()`` refuses
    gradients that backward did not write unless they are marked fresh.
    """
    for param in params:
        for data, grad in zip(param.list_data(), param.list_grad()):
            if grad.context in devices:
                grad[:] = 0
                data._fresh_grad = True


def train_step(net, trainer, loss_fn, batch, contexts, dist, clip_gradient, loss_scale=1.0):
    """One optimizer step on a padded batch, split over this process's devices.

    ``loss_scale`` multiplies the loss before backward (float16 training) and is
    divided out of the gradients before clipping and the update.

    The step waits for the device once, for the gradient norm and the loss
    together, and returns with the optimizer update still running: the caller
    fetches the next batch meanwhile.

    Returns
    -------
    (mean loss, gradient norm, finite) : (float, float, bool)
        ``finite`` is False when the step was skipped for a NaN/inf gradient;
        the decision is taken after the allreduce, so every rank agrees.
    """
    features, feature_lengths, labels, label_lengths, _ = batch
    params = [p for p in net.collect_params().values() if p.grad_req != 'null']
    # The forward pass updates the BatchNorm running statistics in place; a
    # skipped step must not leave its NaNs there, or every later evaluation is NaN.
    statistics = [p for p in net.collect_params().values() if p.grad_req == 'null']
    saved_statistics = [[data.copy() for data in p.list_data()] for p in statistics]
    # Every file of this rank's slice may have been unreadable (features None),
    # or the batch may be smaller than the device count: idle devices add zeros.
    count = 0 if features is None else features.shape[0]
    busy = contexts[:count]
    _mark_zero_gradients(params, contexts[len(busy):])
    losses = []
    if busy:
        # The lengths are an input, ready at once: reading them waits for nothing.
        out_lengths = mx.nd.array(output_length(feature_lengths.asnumpy().astype(np.int64)))
        split = functools.partial(gluon.utils.split_and_load, ctx_list=busy, even_split=False)
        with autograd.record():
            for x, xl, y, ol, yl in zip(split(features), split(feature_lengths), split(labels),
                                        split(out_lengths), split(label_lengths)):
                losses.append(loss_fn(net(x, xl), y, ol, yl))
            # Mean over this process's batch: summed over devices, averaged over ranks.
            objectives = [loss.sum() * (loss_scale / count) for loss in losses]
        autograd.backward(objectives)
        # Idle devices' BatchNorm statistics follow the first device's, so that
        # the average over devices is the busy devices' average.
        for param in statistics:
            first, *others = param.list_data()
            for data in others[len(busy) - 1:]:
                first.copyto(data)
    dist.allreduce_gradients(params)
    import gluonnlp
    # (1,): the global L2 norm of the (scaled) gradients, the same on every device.
    scaled_norm = gluonnlp.utils.grad_global_norm(params)
    if losses:
        loss_sum = mx.nd.add_n(*[loss.sum().as_in_context(scaled_norm.context)
                                 for loss in losses])
        scaled_norm, loss_sum = mx.nd.concat(scaled_norm, loss_sum, dim=0).asnumpy()
        mean_loss = float(loss_sum) / count
    else:
        scaled_norm, mean_loss = scaled_norm.asnumpy()[0], float('nan')
    norm = float(scaled_norm) / loss_scale
    finite = bool(np.isfinite(norm))
    if finite:
        # The clip folds into the optimizer's rescaling of the gradients (by
        # clip / loss_scale): no pass over the gradients of its own.
        clip = min(1.0, clip_gradient / norm) if clip_gradient > 0 and norm > 0 else 1.0
        trainer.update(loss_scale / clip)
    else:
        for param, saved in zip(statistics, saved_statistics):
            for data, copy in zip(param.list_data(), saved):
                copy.copyto(data)
    return mean_loss, norm, finite


class _Interrupt:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each step."""

    def __init__(self):
        self.signal = None

    def __enter__(self):
        self._previous = {s: signal.signal(s, self._handle)
                          for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        if self.signal is not None:  # a second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.signal = signum
        logger.warning('%s received: finishing this step, saving a checkpoint, then exiting',
                       signal.Signals(signum).name)

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def _audio_seconds(feature_lengths, cfg):
    # On the host: an NDArray sum would queue behind the running update and wait for it.
    return float(feature_lengths.asnumpy().sum()) * cfg.audio.stride_ms / 1000.0


def learning_rate_schedule(base_rate, train, batches_per_epoch):
    """The learning rate by state: ``rate(epoch, global_step)``.

    ``--lr_decay`` multiplies ``base_rate`` once per finished epoch; ``--lr_final`` instead
    moves it in a straight line from ``base_rate`` at step 0 to ``lr_final`` at step
    ``train_epochs * batches_per_epoch`` (and holds it after; with ``--scale_lr_by_workers``
    both ends are scaled alike). Both are functions of the saved state, set before every
    step, so a resumed run continues the schedule exactly.
    """
    if train.lr_final is None:
        return lambda epoch, step: base_rate * train.lr_decay ** epoch
    if train.lr_decay != 1.0:
        raise ValueError('--lr_final and --lr_decay=%s are two schedules; pass one of them'
                         % train.lr_decay)
    if train.lr_final < 0:
        raise ValueError('--lr_final must be >= 0, got %s' % train.lr_final)
    total = max(train.train_epochs * batches_per_epoch, 1)
    final = train.lr_final * base_rate / train.learning_rate if train.learning_rate else 0.0

    def rate(epoch, step):
        done = min(step / total, 1.0)
        return base_rate + (final - base_rate) * done
    return rate


def train_one_epoch(net, trainer, loss_fn, loader, contexts, dist, cfg, state, log, save,
                    interrupt, loss_scaler=None, lr_at=None):
    """Train until the loader is exhausted, max_steps is reached, or a signal arrives.

    ``state`` (epoch, batch_in_epoch, global_step, ...) is updated in place;
    ``save()`` writes a checkpoint of the current state. ``loss_scaler``
    (:class:`~gluon_ds2.precision.LossScaler`, float16) scales each step's loss.
    ``lr_at(epoch, global_step)``, if given, sets the learning rate before each step.
    """
    t = cfg.train
    bar = progress_bar(total=len(loader) + state['batch_in_epoch'],
                       initial=state['batch_in_epoch'], desc='epoch %d' % (state['epoch'] + 1),
                       unit='batch', disable=not dist.is_root, dynamic_ncols=True)
    window = dict(loss=0.0, steps=0, utterances=0, audio=0.0, start=time.time())
    epoch_batches = len(loader) + state['batch_in_epoch']
    for batch in loader:
        if batch[0] is None and dist.size == 1:  # every file of the batch was unreadable
            state['batch_in_epoch'] += 1
            continue
        state['skipped_files'] += len(batch[4])
        if lr_at is not None:
            trainer.set_learning_rate(lr_at(state['epoch'], state['global_step']))
        loss, norm, finite = train_step(net, trainer, loss_fn, batch, contexts, dist,
                                        t.clip_gradient,
                                        loss_scaler.scale if loss_scaler else 1.0)
        if loss_scaler:
            loss_scaler.update(finite)
        state['batch_in_epoch'] += 1
        bar.update(1)
        if not finite:
            state['nonfinite_steps'] += 1
            state['consecutive_nonfinite'] += 1
            logger.warning('step %d: non-finite loss/gradient, update skipped (%d so far)',
                           state['global_step'], state['nonfinite_steps'])
            if state['consecutive_nonfinite'] >= MAX_CONSECUTIVE_NONFINITE:
                bar.close()  # now, or it is redrawn below the error message at exit
                raise TrainingStopped(
                    '%d steps in a row had a NaN/inf loss or gradient; stopping. Lower '
                    '--learning_rate or --clip_gradient, or check the data (utterances '
                    'CTC cannot align are dropped; see the log).' % MAX_CONSECUTIVE_NONFINITE)
        else:
            state['consecutive_nonfinite'] = 0
            state['global_step'] += 1
            if np.isfinite(loss):
                window['loss'] += loss
                window['steps'] += 1
        if batch[0] is not None:
            window['utterances'] += batch[0].shape[0]
            window['audio'] += _audio_seconds(batch[1], cfg)
        elapsed = max(time.time() - window['start'], 1e-9)
        # The bar shows rank 0's figures times the number of ranks; the log has exact sums.
        bar.set_postfix(loss='%.2f' % loss,
                        utt_s='%.1f' % (window['utterances'] * dist.size / elapsed),
                        audio_s='%.1f' % (window['audio'] * dist.size / elapsed), refresh=False)
        if finite and state['global_step'] % t.log_every == 0:  # the same step on every rank
            loss_sum, steps, utterances, audio = dist.allreduce_sum(
                [window[k] for k in ('loss', 'steps', 'utterances', 'audio')], name='train_log')
            if steps:
                # Rates over the whole window, this allreduce included, and the next window
                # starts at this record's time: rate x (time since the last record) is exactly
                # what was trained, on any number of ranks (scripts/bench_horovod.py sums it).
                now = time.time()
                log(kind='train', step=state['global_step'], epoch=state['epoch'],
                    loss=loss_sum / steps, grad_norm=norm, lr=trainer.learning_rate,
                    utterances_per_s=utterances / (now - window['start']),
                    audio_s_per_s=audio / (now - window['start']), time=now)
                window = dict(loss=0.0, steps=0, utterances=0, audio=0.0, start=now)
        # The epoch's last step is saved once, by run(), with the epoch's eval WER.
        if t.checkpoint_every and finite and state['global_step'] % t.checkpoint_every == 0 \
                and state['batch_in_epoch'] < epoch_batches:
            save()
        # Ranks must stop on the same step, or the others would wait in allreduce.
        if dist.any(interrupt.signal is not None) or \
                (t.max_steps and state['global_step'] >= t.max_steps):
            break
    bar.close()


def make_train_loader(cfg, train_entries, waveform_augment, dist, round_to=PAD_FRAMES_TO):
    """train.py's training batches: Dataset (with its augmentation), sampler, DataLoader.

    Returns ``(sampler, loader)``; ``sampler.set_epoch()`` chooses each epoch's order.
    Batches are padded to a multiple of ``round_to`` frames.
    """
    d, t = cfg.data, cfg.train
    augment = dict(freq_masks=d.freq_masks, freq_mask_width=d.freq_mask_width,
                   time_masks=d.time_masks, time_mask_width=d.time_mask_width) \
        if d.freq_masks or d.time_masks else None
    train_set = SpeechDataset(train_entries, cfg.audio, on_error=d.on_bad_input,
                              augment=augment, seed=t.seed, waveform_augment=waveform_augment,
                              output_length=output_length)
    sampler = SortagradSampler(train_set.lengths, t.batch_size, sortagrad=d.sortagrad,
                               seed=t.seed, num_parts=dist.size, part_index=dist.rank,
                               epoch_lengths=train_set.epoch_lengths)
    keyed = augment or waveform_augment
    loader = _make_loader(train_set, EpochKeyedBatches(sampler) if keyed else sampler,
                          d.num_workers, round_to)
    return sampler, loader


def hybridize_for_training(net):
    """Hybridize a network that trains: its batch shapes vary, and a static graph
    (:func:`gluon_ds2.export.hybridize_for_inference`) measured no faster here."""
    net.hybridize(static_alloc=True, static_shape=False)


def build_model(cfg, num_classes, contexts):
    """DeepSpeech2 with its parameters created on ``contexts``, hybridized as training runs it."""
    net = DeepSpeech2.from_config(cfg.model, num_classes, cfg.audio.num_bins)
    net.initialize(ctx=contexts)  # each layer has the reference's initializer
    hybridize_for_training(net)
    # Deferred initialization: a forward pass on every rank creates the
    # parameters before they are broadcast from rank 0. In training mode: on
    # CPU an inference pass leaves the conv weights in MKL-DNN's blocked layout,
    # which Horovod's ops cannot read ("We can't generate TBlob for MKLDNN
    # data"). Its BatchNorm update of zeros takes running_var from 1 to 0.997.
    probe = mx.nd.zeros((1, 1, 64, cfg.audio.num_bins))
    with autograd.train_mode():
        for ctx in contexts:
            net(probe.as_in_context(ctx), mx.nd.array([64], ctx=ctx))
    return net


def checkpoint_meta(state, cfg, vocab, num_parts, loss_scaler=None):
    """What a checkpoint records besides the weights: the loop's state, config, vocabulary.

    With float16 the loss scaler's state too, so a resumed run keeps its scale.
    """
    return dict(state, config=cfg.to_json(), vocabulary=vocab.to_list(), num_parts=num_parts,
                mxnet_version=mx.__version__, time=time.time(),
                loss_scaler=loss_scaler.state_dict() if loss_scaler else None)


EvalSet = collections.namedtuple('EvalSet', ['name', 'entries', 'batches', 'loader'])


def _eval_set(name, manifests, cfg, vocab, dist):
    """An evaluation set: its checked entries, this rank's batches and their loader.

    Returns (EvalSet, drop counts).
    """
    # No output_length here: an utterance CTC cannot align cannot be trained on,
    # but it can be decoded and scored, and evaluate.py scores it.
    entries, dropped = load_entries(manifests, vocab, cfg.audio, on_error=cfg.data.on_bad_input,
                                    progress=dist.is_root)
    dataset = SpeechDataset(entries, cfg.audio, on_error=cfg.data.on_bad_input)
    batches = sorted_batches(dataset.lengths, cfg.train.batch_size // dist.size,
                             num_parts=dist.size, part_index=dist.rank)
    loader = _make_loader(dataset, batches, cfg.data.num_workers)
    return EvalSet(name, entries, batches, loader), dropped


def _eval_sets(named, cfg, vocab, dist):
    """EvalSets of ``[(name, manifests), ...]``: --eval_data_dir's first, then the extra sets.

    An extra set's manifest that cannot be read is an error naming its flag.
    """
    sets = []
    for name, manifests in named:
        try:
            eval_set, dropped = _eval_set(name, manifests, cfg, vocab, dist)
        except (ValueError, OSError) as err:
            if name == PRIMARY_EVAL_SPLIT:
                raise
            raise ValueError('--extra_eval_data_dirs: %s=%s: %s' % (name, manifests, err)) \
                from None
        if dist.is_root:
            logger.info('%s: %d utterances (dropped %s)', name, len(eval_set.entries),
                        dict(dropped) or 'none')
        sets.append(eval_set)
    return sets


def _evaluate_all(net, eval_set, contexts, dist, vocab):
    """WER/CER over a whole eval set: each rank decodes its part, counts are summed."""
    decode = functools.partial(greedy_decode_batch, vocab=vocab)
    accumulator, _, _ = evaluate(net, eval_set.loader, eval_set.batches, eval_set.entries,
                                 contexts, decode, progress=dist.is_root)
    totals = dist.allreduce_sum(accumulator.to_vector(), name='eval_counts.' + eval_set.name)
    return type(accumulator).from_vector(totals).result()


def _evaluate_and_log(net, eval_set, contexts, dist, vocab, log, step, epoch):
    """Score ``eval_set``, write its metrics record and log line; returns the result dict."""
    result = _evaluate_all(net, eval_set, contexts, dist, vocab)
    log(kind='eval', split=eval_set.name, step=step, epoch=epoch, time=time.time(), **result)
    if dist.is_root:
        logger.info('epoch %d, %s: WER %.4f CER %.4f (corpus); mean per utterance: WER %.4f '
                    'CER %.4f', epoch, eval_set.name, result['wer'], result['cer'],
                    result['mean_wer'], result['mean_cer'])
    return result


def run(cfg):
    """Train as configured; returns the final state dict (rank 0's view)."""
    dist = setup_distributed()
    t = cfg.train
    # Fail before reading any data if the ranks cannot share --batch_size.
    SortagradSampler([], t.batch_size, num_parts=dist.size)
    if not dist.is_root:  # rank 0 reports progress; the others only warn
        logging.getLogger(__package__).setLevel(logging.WARNING)
    learning_rate = t.learning_rate * (dist.size if t.scale_lr_by_workers else 1)
    waveform_augment = WaveformAugment.from_config(cfg.data)  # bad flags fail here, at once
    learning_rate_schedule(learning_rate, t, 1)  # so do bad learning-rate flags
    named_eval_sets = [(PRIMARY_EVAL_SPLIT, cfg.data.eval_data_dir)] + \
        parse_extra_eval_sets(cfg.data.extra_eval_data_dirs)
    mx.random.seed(t.seed + dist.rank)
    np.random.seed(t.seed)
    vocab = Vocabulary.from_file(cfg.data.vocabulary_file)
    contexts = select_devices(t.devices, t.num_gpus, dist.local_rank, dist.local_size)
    ckpt.check_keep(t.keep_checkpoints)
    if dist.is_root:
        os.makedirs(t.model_dir, exist_ok=True)
        ckpt.remove_partial_writes(t.model_dir)
        logger.info('%s; %s', describe_devices(contexts), dist.describe())

    train_entries, dropped = load_entries(
        cfg.data.train_data_dir, vocab, cfg.audio, on_error=cfg.data.on_bad_input,
        output_length=output_length, max_duration=cfg.data.max_duration, progress=dist.is_root,
        max_label_length=ctc_label_limit(contexts))
    if dist.is_root:
        logger.info('train: %d utterances, %.2f h (dropped %s)', len(train_entries),
                    sum(e['duration'] for e in train_entries) / 3600, dict(dropped) or 'none')
    eval_sets = _eval_sets(named_eval_sets, cfg, vocab, dist)

    sampler, train_loader = make_train_loader(cfg, train_entries, waveform_augment, dist)

    loss_scaler = setup_precision(t.dtype, contexts)  # before the model is built
    net = build_model(cfg, vocab.num_classes, contexts)
    trainer = dist.make_trainer(net.collect_params(), 'adam', {'learning_rate': learning_rate})
    meta = restore_checkpoint(t.model_dir, dist, net, trainer, loss_scaler)
    dist.broadcast_parameters(net.collect_params())
    state = initial_state(meta, sampler.num_batches())
    lr_at = learning_rate_schedule(learning_rate, t, sampler.num_batches())

    metrics_path = os.path.join(t.model_dir, 'metrics.jsonl')
    metrics = MetricsLog(metrics_path)
    if dist.is_root:
        # Steps after the checkpoint we resume from were lost; their records go too.
        metrics.truncate_after(state['global_step'])

    def log(**record):
        if dist.is_root:
            metrics.write(**record)

    saved_position = [None]  # (epoch, batch_in_epoch, global_step) of the last save

    def save(wer=None):
        # A stop (signal or --max_steps) on a --checkpoint_every step would save the same
        # position twice; the same on every rank, so every rank skips it alike.
        position = (state['epoch'], state['batch_in_epoch'], state['global_step'])
        if wer is None and position == saved_position[0]:
            return
        saved_position[0] = position
        dist.average_running_statistics(net.collect_params())  # every rank calls save()
        if not dist.is_root:
            return
        path = ckpt.save_checkpoint(t.model_dir, net, trainer,
                                    checkpoint_meta(state, cfg, vocab, dist.size, loss_scaler),
                                    keep=t.keep_checkpoints, wer=wer)
        logger.info('saved %s', path)

    loss_fn = CTCLoss()
    if t.max_steps and state['global_step'] >= t.max_steps and dist.is_root:
        logger.info('step %d: --max_steps=%d reached already; nothing to train (pass a larger '
                    '--max_steps to go on)', state['global_step'], t.max_steps)
    with _Interrupt() as interrupt:
        while state['epoch'] < t.train_epochs and not (
                t.max_steps and state['global_step'] >= t.max_steps):
            sampler.set_epoch(state['epoch'], start_batch=state['batch_in_epoch'])
            train_one_epoch(net, trainer, loss_fn, train_loader, contexts, dist, cfg, state, log,
                            save, interrupt, loss_scaler, lr_at)
            if state['batch_in_epoch'] < sampler.num_batches():  # signal or max_steps
                save()
                break
            epoch_done = state['epoch'] + 1
            wer = None
            if epoch_done % t.epochs_between_evals == 0 or epoch_done == t.train_epochs:
                dist.average_running_statistics(net.collect_params())
                # eval_sets[0] is --eval_data_dir: it alone decides early stop and the best.
                results = [_evaluate_and_log(net, eval_set, contexts, dist, vocab, log,
                                             state['global_step'], epoch_done)
                           for eval_set in eval_sets]
                result = results[0]
                wer = result['wer']
                state['last_eval'] = result
                if state['best_wer'] is None or wer < state['best_wer']:
                    state['best_wer'] = wer
            state['epoch'] = epoch_done
            state['batch_in_epoch'] = 0
            if t.wer_threshold is not None and wer is not None and wer <= t.wer_threshold:
                state['stopped_early'] = True
            save(wer=wer)
            if state['stopped_early']:
                if dist.is_root:
                    logger.info('WER %.4f <= --wer_threshold=%s: stopping early', wer,
                                t.wer_threshold)
                break
            if t.max_steps and state['global_step'] >= t.max_steps:
                break
    if dist.is_root:
        plot = plot_curves(metrics_path, os.path.join(t.model_dir, 'training_curves.png'))
        if plot:
            logger.info('training curves: %s', plot)
    state['interrupted_by'] = interrupt.signal
    return state
