"""train.py end to end on the demo corpus: it learns, it resumes exactly after a kill or a
signal, it skips non-finite steps without harm, and it logs what it did.

The runs are subprocesses, as a user starts them, with tiny models and one OpenMP
thread. Training in the training process (``--num_workers=0``) is deterministic on CPU,
which the resume tests rely on.
"""
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import types
import zipfile
import zlib
from unittest import mock

import mxnet as mx
import numpy as np
import pytest
import soundfile
from mxnet import gluon

from conftest import REPO_ROOT, edit_distance
from gluon_ds2.batchify import SpeechBatchify, as_ndarrays
from gluon_ds2.checkpoint import read_checkpoint, read_index
from gluon_ds2.config import Config
from gluon_ds2.dataset import SpeechDataset, load_entries
from gluon_ds2.distributed import Distributed
from gluon_ds2.inference import load_model
from gluon_ds2.loss import CTCLoss
from gluon_ds2.manifest import read_manifest, write_manifest
from gluon_ds2.model import DeepSpeech2, output_length
from gluon_ds2.training import (MAX_CONSECUTIVE_NONFINITE, TrainingStopped, train_one_epoch,
                                train_step)
from gluon_ds2.vocab import Vocabulary

TINY_MODEL = ('--rnn_hidden_size=32', '--rnn_hidden_layers=1', '--conv_filters=4',
              '--max_freq=4000')
ENV = dict(os.environ, OMP_NUM_THREADS='1')
TRAIN_RECORD_KEYS = {'kind', 'step', 'epoch', 'loss', 'grad_norm', 'lr', 'utterances_per_s',
                     'audio_s_per_s', 'time'}
EVAL_RECORD_KEYS = {'kind', 'split', 'step', 'epoch', 'time', 'wer', 'cer', 'mean_wer', 'mean_cer',
                    'utterances', 'word_edits', 'reference_words', 'char_edits',
                    'reference_chars'}


def train_command(model_dir, train_manifest, eval_manifest, *flags):
    return [sys.executable, str(REPO_ROOT / 'train.py'), '--train_data_dir=%s' % train_manifest,
            '--eval_data_dir=%s' % eval_manifest, '--model_dir=%s' % model_dir,
            '--num_threads=1', *flags]


def run(command, timeout=300):
    return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=timeout)


def records(model_dir, kind=None):
    with open(os.path.join(model_dir, 'metrics.jsonl')) as f:
        lines = [json.loads(line) for line in f]
    return [r for r in lines if kind is None or r['kind'] == kind]


def checkpoint_params(path):
    """A checkpoint's parameters (BatchNorm statistics included) as numpy arrays."""
    with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory() as tmp:
        return {name: value.asnumpy()
                for name, value in mx.nd.load(archive.extract('params', tmp)).items()}


def latest_checkpoint(model_dir):
    return os.path.join(model_dir, read_index(model_dir)['latest'])


def shortest(manifest, count, path):
    """A manifest of the ``count`` smallest WAV files of ``manifest``."""
    frame = read_manifest(str(manifest)).sort_values('wav_filesize', kind='mergesort')
    write_manifest(frame.head(count), str(path))
    return path


@pytest.mark.slow
def test_it_learns_a_few_utterances_by_heart(demo_manifests, tmp_path):
    """Overfitting proves that loss, lengths, labels and decoder agree with each other.

    Most of the steps wait for the BatchNorm running statistics (momentum 0.997, as in
    the reference) to catch up: the training-mode outputs are right much earlier.
    """
    utterances = shortest(demo_manifests['train'], 4, tmp_path / 'four.csv')
    model_dir = tmp_path / 'model'
    result = run(train_command(
        model_dir, utterances, utterances, '--rnn_hidden_size=128', '--rnn_hidden_layers=2',
        '--conv_filters=16', '--max_freq=4000', '--learning_rate=2e-3', '--batch_size=1',
        '--num_workers=0', '--train_epochs=250', '--epochs_between_evals=10',
        '--wer_threshold=0.15', '--checkpoint_every=0', '--log_every=20'))
    assert result.returncode == 0, result.stderr
    assert '<= --wer_threshold=0.15: stopping early' in result.stderr
    evals = records(model_dir, 'eval')
    assert evals[0]['cer'] > 0.5  # it did not know them from the start
    final = evals[-1]
    assert final['cer'] < 0.1
    assert final['step'] < 250 * 4

    # Independently: the saved model, decoded by evaluate.py in padded batches.
    output = tmp_path / 'results.jsonl'
    scored = run([sys.executable, str(REPO_ROOT / 'evaluate.py'), str(model_dir),
                  '--which=latest', '--batch_size=4', '--num_workers=0',
                  '--output=%s' % output])
    assert scored.returncode == 0, scored.stderr
    assert re.search(r'^CER \(corpus\)\s+%s ' % re.escape('%.4f' % final['cer']), scored.stdout,
                     re.M), scored.stdout
    with open(output) as f:
        results = [json.loads(line) for line in f]
    assert len(results) == 4
    char_edits = sum(edit_distance(r['reference'], r['hypothesis']) for r in results)
    reference_chars = sum(len(r['reference']) for r in results)
    assert (char_edits, reference_chars) == (final['char_edits'], final['reference_chars'])


@pytest.mark.slow
def test_epochs_between_evals_sets_the_cadence_not_the_number_of_epochs(demo_manifests,
                                                                         tmp_path):
    """--train_epochs=3 --epochs_between_evals=2 trains 3 epochs and evaluates after epochs
    2 and 3 (the last is always evaluated). The reference would train 3 // 2 = 1 epoch: each
    of its train_epochs // epochs_between_evals cycles is one pass over the data."""
    utterances = shortest(demo_manifests['train'], 4, tmp_path / 'four.csv')
    model_dir = tmp_path / 'model'
    result = run(train_command(model_dir, utterances, utterances, *TINY_MODEL,
                               '--batch_size=4', '--num_workers=0', '--log_every=1',
                               '--train_epochs=3', '--epochs_between_evals=2'))
    assert result.returncode == 0, result.stderr
    assert [r['epoch'] for r in records(model_dir, 'train')] == [0, 1, 2]  # one batch each
    assert [(r['epoch'], r['step']) for r in records(model_dir, 'eval')] == [(2, 2), (3, 3)]


@pytest.fixture(scope='module')
def reference_run(demo_manifests, tmp_path_factory):
    """Nine uninterrupted steps of a tiny model (6 batches of 4 per epoch), and its model dir."""
    model_dir = tmp_path_factory.mktemp('reference_run') / 'model'
    flags = TINY_MODEL + ('--batch_size=4', '--num_workers=0', '--learning_rate=1e-3',
                          '--log_every=1')
    result = run(train_command(model_dir, demo_manifests['train'], demo_manifests['dev'],
                               *flags, '--max_steps=9'))
    assert result.returncode == 0, result.stderr
    return types.SimpleNamespace(model_dir=str(model_dir), flags=flags, result=result)


@pytest.mark.slow
def test_resumed_run_ends_with_the_same_weights(reference_run, demo_manifests, tmp_path):
    """Stopped at step 4 (mid-epoch) and resumed to step 9: the weights of a run never stopped.

    Data order, Adam's moments and update count, and the BatchNorm statistics all have
    to come back for this to hold.
    """
    model_dir = tmp_path / 'model'
    command = train_command(model_dir, demo_manifests['train'], demo_manifests['dev'],
                            *reference_run.flags)
    first = run(command + ['--max_steps=4', '--checkpoint_every=2'])
    assert first.returncode == 0, first.stderr
    # Step 4 is both a --checkpoint_every step and the stop: saved once.
    assert re.findall(r'saved \S*ckpt-(\d+)\.ckpt', first.stderr) == ['00000002', '00000004']
    assert read_index(str(model_dir))['latest'] == 'ckpt-00000004.ckpt'
    second = run(command + ['--max_steps=9'])
    assert second.returncode == 0, second.stderr
    assert 'resuming from %s (epoch 1, batch 4, step 4)' % (model_dir / 'ckpt-00000004.ckpt') \
        in second.stderr

    expected = checkpoint_params(latest_checkpoint(reference_run.model_dir))
    resumed = checkpoint_params(latest_checkpoint(str(model_dir)))
    assert latest_checkpoint(str(model_dir)).endswith('ckpt-00000009.ckpt')
    assert expected.keys() == resumed.keys()
    for name in expected:
        np.testing.assert_array_equal(resumed[name], expected[name], err_msg=name)
    # The same losses step by step, and the same evaluation at the end of epoch 1.
    assert [(r['step'], r['loss']) for r in records(str(model_dir), 'train')] == \
        [(r['step'], r['loss']) for r in records(reference_run.model_dir, 'train')]
    assert [r['wer'] for r in records(str(model_dir), 'eval')] == \
        [r['wer'] for r in records(reference_run.model_dir, 'eval')]

    # The same command again: step 9 is --max_steps, so nothing is trained or saved.
    logged = records(str(model_dir))
    third = run(command + ['--max_steps=9'])
    assert third.returncode == 0, third.stderr
    assert 'step 9: --max_steps=9 reached already; nothing to train' in third.stderr
    assert records(str(model_dir)) == logged
    assert 'saved' not in third.stderr


@pytest.mark.slow
@pytest.mark.parametrize('schedule, expected_lr', [
    ('--lr_final=1e-4', lambda step: 1e-3 - 9e-4 * (step - 1) / 12),  # a line over 12 steps
    ('--lr_decay=0.5', lambda step: 1e-3 if step <= 6 else 5e-4),     # halved after epoch 1
], ids=['lr_final', 'lr_decay'])
def test_learning_rate_schedule_is_logged_and_resumes_exactly(demo_manifests, tmp_path,
                                                              schedule, expected_lr):
    """The logged rate follows the schedule step by step; stopped at step 5 and resumed,
    the run ends with the weights and records of a run never stopped."""
    flags = TINY_MODEL + ('--batch_size=4', '--num_workers=0', '--learning_rate=1e-3',
                          '--log_every=1', '--train_epochs=2', schedule,
                          '--checkpoint_every=0')
    whole, parts = tmp_path / 'whole', tmp_path / 'parts'
    result = run(train_command(whole, demo_manifests['train'], demo_manifests['dev'], *flags))
    assert result.returncode == 0, result.stderr
    steps = [(r['step'], r['lr']) for r in records(str(whole), 'train')]
    assert [s for s, _ in steps] == list(range(1, 13))  # 24 utterances, batches of 4, 2 epochs
    for step, lr in steps:  # the rate set before the step that made it
        assert lr == pytest.approx(expected_lr(step), rel=1e-12), step

    command = train_command(parts, demo_manifests['train'], demo_manifests['dev'], *flags)
    assert run(command + ['--max_steps=5']).returncode == 0
    result = run(command + ['--max_steps=12'])  # the checkpoint's config keeps max_steps=5
    assert result.returncode == 0, result.stderr
    assert records(str(parts), 'train') == [dict(r, time=mock.ANY, utterances_per_s=mock.ANY,
                                                 audio_s_per_s=mock.ANY)
                                            for r in records(str(whole), 'train')]
    expected = checkpoint_params(latest_checkpoint(str(whole)))
    resumed = checkpoint_params(latest_checkpoint(str(parts)))
    for name in expected:
        np.testing.assert_array_equal(resumed[name], expected[name], err_msg=name)


@pytest.mark.parametrize('flags, message', [
    (('--lr_final=0', '--lr_decay=0.9'),
     '--lr_final and --lr_decay=0.9 are two schedules; pass one of them'),
    (('--lr_final=-1e-4',), '--lr_final must be >= 0, got -0.0001'),
])
def test_bad_learning_rate_schedule_is_refused_before_training(demo_manifests, tmp_path, flags,
                                                              message):
    result = run(train_command(tmp_path / 'model', demo_manifests['train'],
                               demo_manifests['dev'], *TINY_MODEL, *flags))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == 'train.py: error: ' + message


@pytest.mark.slow
def test_metrics_log_and_training_curves(reference_run, demo_manifests):
    train = records(reference_run.model_dir, 'train')
    evals = records(reference_run.model_dir, 'eval')
    assert [r['step'] for r in train] == list(range(1, 10))  # --log_every=1
    assert [r['epoch'] for r in train] == [0] * 6 + [1] * 3
    for record in train:
        assert set(record) == TRAIN_RECORD_KEYS
        assert record['loss'] > 0 and np.isfinite(record['grad_norm'])
        assert record['lr'] == 1e-3 and record['utterances_per_s'] > 0
    assert len(evals) == 1 and set(evals[0]) == EVAL_RECORD_KEYS
    assert (evals[0]['split'], evals[0]['step'], evals[0]['epoch']) == ('eval', 6, 1)
    dev = read_manifest(str(demo_manifests['dev']))
    assert evals[0]['utterances'] == len(dev)
    assert evals[0]['reference_words'] == sum(len(t.split()) for t in dev.transcript)
    assert evals[0]['reference_chars'] == sum(len(t) for t in dev.transcript)
    assert evals[0]['cer'] == evals[0]['char_edits'] / evals[0]['reference_chars']

    # A valid PNG: signature, then chunks whose CRCs match, IHDR first and IEND last.
    with open(os.path.join(reference_run.model_dir, 'training_curves.png'), 'rb') as f:
        png = f.read()
    assert png[:8] == b'\x89PNG\r\n\x1a\n'
    position, chunks = 8, []
    while position < len(png):
        length, kind = struct.unpack('>I4s', png[position:position + 8])
        data = png[position + 8:position + 8 + length]
        crc, = struct.unpack('>I', png[position + 8 + length:position + 12 + length])
        assert zlib.crc32(kind + data) == crc, kind
        chunks.append((kind, data))
        position += 12 + length
    assert chunks[0][0] == b'IHDR' and chunks[-1][0] == b'IEND'
    width, height = struct.unpack('>II', chunks[0][1][:8])
    assert width > 100 and height > 100
    assert any(kind == b'IDAT' for kind, _ in chunks)


@pytest.mark.slow
def test_changing_the_model_on_resume_is_a_one_line_error(reference_run, demo_manifests,
                                                          tmp_path):
    model_dir = tmp_path / 'model'
    shutil.copytree(reference_run.model_dir, model_dir)
    result = run(train_command(model_dir, demo_manifests['train'], demo_manifests['dev'],
                               '--rnn_hidden_size=64'))
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        'train.py: error: --rnn_hidden_size=64 differs from the checkpoint in %s (32): a '
        'resumed run keeps its model and features. Use a new --model_dir to train a '
        'different model.' % model_dir)


@pytest.mark.slow
def test_extra_eval_sets_are_scored_each_epoch_as_evaluate_py_scores_them(demo_manifests,
                                                                          tmp_path):
    """--extra_eval_data_dirs: a record and a log line per set and epoch, with the counts
    evaluate.py finds for that epoch's checkpoint; the best checkpoint follows --eval_data_dir.
    """
    utterances = shortest(demo_manifests['train'], 4, tmp_path / 'four.csv')
    model_dir = tmp_path / 'model'
    result = run(train_command(
        model_dir, utterances, demo_manifests['dev'], *TINY_MODEL, '--batch_size=4',
        '--num_workers=0', '--train_epochs=2', '--learning_rate=1e-3',
        '--extra_eval_data_dirs=dev_ood=%s' % demo_manifests['dev_ood']))
    assert result.returncode == 0, result.stderr
    evals = records(str(model_dir), 'eval')
    assert [(r['epoch'], r['step'], r['split']) for r in evals] == [
        (1, 1, 'eval'), (1, 1, 'dev_ood'), (2, 2, 'eval'), (2, 2, 'dev_ood')]
    for record in evals:
        assert set(record) == EVAL_RECORD_KEYS
        assert 'epoch %d, %s: WER %.4f CER %.4f (corpus)' % (
            record['epoch'], record['split'], record['wer'], record['cer']) in result.stderr
    dev_ood = read_manifest(str(demo_manifests['dev_ood']))
    for record in evals[1::2]:
        assert record['utterances'] == len(dev_ood)
        assert record['reference_chars'] == sum(len(t) for t in dev_ood.transcript)

    # The checkpoints are ranked by the --eval_data_dir set's WER alone.
    primary = {r['step']: r['wer'] for r in evals if r['split'] == 'eval'}
    index = read_index(str(model_dir))
    assert {e['global_step']: e['wer'] for e in index['checkpoints']} == primary
    best_step = min(primary, key=lambda step: (primary[step], -step))
    assert index['best'] == 'ckpt-%08d.ckpt' % best_step

    # Independently: evaluate.py on the epoch-1 checkpoint (written right after its
    # evaluation, with the weights evaluated), scoring dev_ood in a different batch size.
    output = tmp_path / 'dev_ood.jsonl'
    scored = run([sys.executable, str(REPO_ROOT / 'evaluate.py'),
                  str(model_dir / 'ckpt-00000001.ckpt'),
                  '--eval_data_dir=%s' % demo_manifests['dev_ood'], '--batch_size=2',
                  '--num_workers=0', '--output=%s' % output])
    assert scored.returncode == 0, scored.stderr
    with open(output) as f:
        results = [json.loads(line) for line in f]
    epoch1 = evals[1]
    assert sum(edit_distance(r['reference'], r['hypothesis']) for r in results) == \
        epoch1['char_edits']
    assert sum(edit_distance(r['reference'].split(), r['hypothesis'].split())
               for r in results) == epoch1['word_edits']
    assert re.search(r'^CER \(corpus\)\s+%s ' % re.escape('%.4f' % epoch1['cer']),
                     scored.stdout, re.M), scored.stdout
    assert re.search(r'^WER \(corpus\)\s+%s ' % re.escape('%.4f' % epoch1['wer']),
                     scored.stdout, re.M), scored.stdout
    # The curve plot decodes as an image (the splits it draws: tests/test_curves.py).
    from matplotlib import image
    assert image.imread(str(model_dir / 'training_curves.png')).ndim == 3


@pytest.mark.parametrize('value, message', [
    ('dev_ood', "--extra_eval_data_dirs: bad item 'dev_ood': expected NAME=MANIFEST; give a "
                "comma-separated list of NAME=MANIFEST with distinct names"),
    ('dev_ood={missing}', "--extra_eval_data_dirs: dev_ood={missing}: [Errno 2] No such file "
                          "or directory: '{missing}'"),
], ids=['no_equals_sign', 'missing_manifest'])
def test_bad_extra_eval_data_dirs_stop_training_at_start_up(demo_manifests, tmp_path, value,
                                                            message):
    missing = str(tmp_path / 'missing.csv')
    model_dir = tmp_path / 'model'
    result = run(train_command(model_dir, demo_manifests['dev'], demo_manifests['dev'],
                               *TINY_MODEL, '--num_workers=0',
                               '--extra_eval_data_dirs=%s' % value.format(missing=missing)))
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == \
        'train.py: error: ' + message.format(missing=missing)
    assert not os.path.exists(os.path.join(model_dir, 'checkpoints.json'))


def wait_for(condition, process, timeout=120):
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, 'train.py ended early: %s' % process.communicate()[1]
        assert time.time() < deadline, 'timed out'
        time.sleep(0.02)


def start_training(command):
    # A session of its own, so that signals can go to its process group as from a terminal.
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV, start_new_session=True)


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_checkpoint(demo_manifests, tmp_path):
    model_dir = tmp_path / 'model'
    command = train_command(model_dir, demo_manifests['train'], demo_manifests['dev'],
                            *TINY_MODEL, '--batch_size=1', '--train_epochs=1',
                            '--checkpoint_every=3', '--log_every=1', '--num_workers=1')
    process = start_training(command)
    wait_for(lambda: read_index(str(model_dir))['latest'] is not None, process)
    os.killpg(process.pid, signal.SIGKILL)  # the training process and its data workers
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    index = read_index(str(model_dir))
    step = next(e['global_step'] for e in index['checkpoints'] if e['name'] == index['latest'])
    assert 0 < step < 24  # mid-epoch: 24 utterances, batches of 1
    logged_before = len(records(str(model_dir)))

    result = run(command)
    assert result.returncode == 0, result.stderr
    assert 'resuming from %s (epoch 1, batch %d, step %d)' % (
        model_dir / ('ckpt-%08d.ckpt' % step), step, step) in result.stderr
    resumed_steps = [r['step'] for r in records(str(model_dir))[logged_before:]
                     if r['kind'] == 'train']
    assert resumed_steps == list(range(step + 1, 25))
    assert [(r['epoch'], r['step']) for r in records(str(model_dir), 'eval')] == [(1, 24)]
    # Every third step saved once; step 24 ends the epoch and is saved once, with its WER.
    saved = [int(n) for n in re.findall(r'saved \S*ckpt-(\d+)\.ckpt', result.stderr)]
    assert saved == [s for s in range(step + 1, 25) if s % 3 == 0]
    index = read_index(str(model_dir))
    assert index['latest'] == 'ckpt-00000024.ckpt'
    for entry in index['checkpoints']:
        path = str(model_dir / entry['name'])
        meta, _ = read_checkpoint(path)
        assert meta['global_step'] == entry['global_step']
        load_model(path, [mx.cpu()])


@pytest.mark.slow
@pytest.mark.parametrize('signum, to_group', [
    (signal.SIGTERM, False),  # kill PID, docker stop
    (signal.SIGINT, True),    # Ctrl-C: the whole foreground process group
], ids=['SIGTERM', 'SIGINT'])
def test_signal_saves_a_checkpoint_and_exits(demo_manifests, tmp_path, signum, to_group):
    model_dir = tmp_path / 'model'
    process = start_training(train_command(
        model_dir, demo_manifests['train'], demo_manifests['dev'], *TINY_MODEL,
        '--batch_size=2', '--train_epochs=20', '--checkpoint_every=0', '--log_every=1',
        '--num_workers=1'))
    metrics = model_dir / 'metrics.jsonl'
    wait_for(lambda: metrics.exists() and metrics.stat().st_size > 0, process)
    if to_group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr
    assert 'Traceback' not in stderr
    assert '%s received: finishing this step, saving a checkpoint, then exiting' \
        % signal.Signals(signum).name in stderr
    last_step = records(str(model_dir), 'train')[-1]['step']
    path = latest_checkpoint(str(model_dir))
    assert path == str(model_dir / ('ckpt-%08d.ckpt' % last_step))
    assert 'saved %s' % path in stderr
    meta, _ = read_checkpoint(path)
    assert (meta['epoch'], meta['batch_in_epoch'], meta['global_step']) == \
        (0, last_step, last_step)


# --- non-finite steps -------------------------------------------------------------------

@pytest.fixture(scope='module')
def tiny_setup(demo_manifests):
    """A tiny model, its Adam trainer, and two real padded batches of the demo corpus."""
    cfg = Config()
    cfg.audio.max_freq = 4000
    vocab = Vocabulary.from_file(cfg.data.vocabulary_file)
    entries, _ = load_entries(str(demo_manifests['train']), vocab, cfg.audio,
                              output_length=output_length, progress=False)
    dataset = SpeechDataset(entries, cfg.audio)
    batchify = SpeechBatchify()
    batches = [as_ndarrays(batchify([dataset[0], dataset[1]])),
               as_ndarrays(batchify([dataset[2], dataset[3]]))]
    mx.random.seed(1)
    net = DeepSpeech2(vocab.num_classes, num_bins=cfg.audio.num_bins, rnn_hidden_size=16,
                      rnn_hidden_layers=2, conv_filters=4)
    net.initialize(mx.init.Xavier(magnitude=2.0))
    net.hybridize(static_alloc=True, static_shape=False)
    net(batches[0][0], batches[0][1])  # deferred initialization, as training.run does
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 1e-3},
                            update_on_kvstore=False)
    return types.SimpleNamespace(cfg=cfg, net=net, trainer=trainer, batches=batches)


def with_nan(batch):
    features = batch[0].copy()
    features[0, 0, 10, 5] = float('nan')  # one bin of one frame, as a corrupt file would give
    return (features,) + tuple(batch[1:])


def snapshot(net, trainer):
    params = {name: p.data().asnumpy() for name, p in net.collect_params().items()}
    states = trainer._updaters[0].states
    adam = {i: [s.asnumpy() for s in state] for i, state in states.items()}
    return params, adam, trainer.optimizer.num_update


def test_non_finite_step_is_skipped_and_changes_nothing(tiny_setup):
    s = tiny_setup
    step = lambda batch: train_step(s.net, s.trainer, CTCLoss(), batch, [mx.cpu()],
                                    Distributed(), 400.0)
    loss, norm, finite = step(s.batches[0])  # Adam has moments from here on
    assert finite and np.isfinite(loss) and np.isfinite(norm)
    before_params, before_adam, before_updates = snapshot(s.net, s.trainer)
    assert any('running_mean' in name for name in before_params)

    loss, norm, finite = step(with_nan(s.batches[1]))
    assert not finite and np.isnan(loss) and np.isnan(norm)
    after_params, after_adam, after_updates = snapshot(s.net, s.trainer)
    for name, value in before_params.items():  # weights and BatchNorm statistics alike
        np.testing.assert_array_equal(after_params[name], value, err_msg=name)
    for index, moments in before_adam.items():
        for before, after in zip(moments, after_adam[index]):
            np.testing.assert_array_equal(after, before)
    assert after_updates == before_updates

    _, _, finite = step(s.batches[1])  # the same batch without the NaN trains as usual
    assert finite
    params, _, _ = snapshot(s.net, s.trainer)
    assert all(np.isfinite(v).all() for v in params.values())
    assert any(not np.array_equal(params[name], v) for name, v in before_params.items())


def test_too_many_non_finite_steps_in_a_row_stop_training(tiny_setup, caplog):
    s = tiny_setup
    good, bad = s.batches[0], with_nan(s.batches[1])
    limit = MAX_CONSECUTIVE_NONFINITE
    loader = [good] + [bad] * (limit - 1) + [good] + [bad] * limit + [good]
    s.cfg.train.checkpoint_every = 0
    s.cfg.train.log_every = 1
    state = dict(epoch=0, batch_in_epoch=0, global_step=0, nonfinite_steps=0,
                 consecutive_nonfinite=0, skipped_files=0)
    logged, saved = [], []
    with pytest.raises(TrainingStopped) as error:
        train_one_epoch(s.net, s.trainer, CTCLoss(), loader, [mx.cpu()], Distributed(), s.cfg,
                        state, lambda **record: logged.append(record), lambda: saved.append(1),
                        types.SimpleNamespace(signal=None))
    assert str(error.value).startswith('%d steps in a row had a NaN/inf loss or gradient; '
                                       'stopping.' % limit)
    # limit - 1 in a row were tolerated; the good batch between reset the count.
    assert state['global_step'] == 2
    assert state['nonfinite_steps'] == 2 * limit - 1
    assert state['batch_in_epoch'] == 2 * limit + 1
    assert [r['step'] for r in logged] == [1, 2]
    skipped = [r.getMessage() for r in caplog.records
               if 'non-finite loss/gradient, update skipped' in r.getMessage()]
    assert len(skipped) == 2 * limit - 1
    assert skipped[-1].endswith('(%d so far)' % (2 * limit - 1))


@pytest.mark.slow
def test_corrupt_audio_step_is_skipped_in_a_real_run(demo_manifests, tmp_path):
    """A float WAV holding NaN samples: its step is skipped, counted and logged; the model
    saved after it has no NaN anywhere, BatchNorm statistics included."""
    clean = shortest(demo_manifests['train'], 4, tmp_path / 'clean.csv')
    rows = read_manifest(str(clean))
    samples, rate = soundfile.read(rows.wav_filename[0], dtype='float32')
    samples[len(samples) // 3:len(samples) // 2] = np.nan
    corrupt = str(tmp_path / 'corrupt.wav')
    soundfile.write(corrupt, samples, rate, subtype='FLOAT')
    manifest = tmp_path / 'with_corrupt.csv'
    write_manifest(list(rows[['wav_filename', 'wav_filesize', 'transcript']].itertuples(
        index=False, name=None)) + [(corrupt, os.path.getsize(corrupt), rows.transcript[0])],
        str(manifest))

    model_dir = tmp_path / 'model'
    result = run(train_command(model_dir, manifest, clean, *TINY_MODEL, '--batch_size=1',
                               '--train_epochs=2', '--num_workers=0', '--log_every=1'))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count('non-finite loss/gradient, update skipped') == 2  # once an epoch
    meta, _ = read_checkpoint(latest_checkpoint(str(model_dir)))
    assert (meta['epoch'], meta['global_step'], meta['nonfinite_steps']) == (2, 8, 2)
    params = checkpoint_params(latest_checkpoint(str(model_dir)))
    for name, value in params.items():
        assert np.isfinite(value).all(), name
    assert [r['step'] for r in records(str(model_dir), 'train')] == list(range(1, 9))


@pytest.mark.slow
def test_diverging_run_stops_with_a_one_line_error(demo_manifests, tmp_path):
    """An absurd learning rate: after one update every loss is NaN, and train.py says so."""
    result = run(train_command(tmp_path / 'model', demo_manifests['train'],
                               demo_manifests['dev'], *TINY_MODEL, '--batch_size=1',
                               '--num_workers=0', '--learning_rate=1e30'))
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    assert result.stderr.count('non-finite loss/gradient, update skipped') == \
        MAX_CONSECUTIVE_NONFINITE
    assert result.stderr.strip().splitlines()[-1] == (
        'train.py: error: %d steps in a row had a NaN/inf loss or gradient; stopping. Lower '
        '--learning_rate or --clip_gradient, or check the data (utterances CTC cannot align '
        'are dropped; see the log).' % MAX_CONSECUTIVE_NONFINITE)


@pytest.mark.slow
def test_evaluation_scores_utterances_ctc_cannot_align(demo_manifests, tmp_path):
    """Training drops what CTC cannot align from its training data only: the eval WER is
    over the whole eval manifest, as evaluate.py computes it for the same checkpoint."""
    dev = read_manifest(str(demo_manifests['dev']))
    shortest_row = dev.sort_values('wav_filesize').iloc[0]
    long_text = ' '.join(['abcdefghij'] * 40)  # 439 characters for a few seconds of audio
    unalignable = dev.copy()
    unalignable.loc[len(unalignable)] = [shortest_row.wav_filename, shortest_row.wav_filesize,
                                         long_text] + list(shortest_row.iloc[3:])
    eval_manifest = tmp_path / 'dev_plus_unalignable.csv'
    write_manifest(unalignable, str(eval_manifest))
    model_dir = tmp_path / 'model'
    result = run(train_command(str(model_dir), demo_manifests['train'], eval_manifest,
                               *TINY_MODEL, '--batch_size=8', '--train_epochs=1'))
    assert result.returncode == 0, result.stderr
    evals = records(str(model_dir), 'eval')
    assert evals[-1]['utterances'] == len(dev) + 1
    scored = run([sys.executable, str(REPO_ROOT / 'evaluate.py'), str(model_dir),
                  '--which=latest'])
    assert scored.returncode == 0, scored.stderr
    assert 'WER (corpus)      %.4f' % evals[-1]['wer'] in scored.stdout


def test_loss_scale_is_divided_out_of_the_update(tiny_setup):
    """A float16 loss scale changes nothing in exact arithmetic: same norm, same weights."""
    s = tiny_setup
    start = {name: p.data().copy() for name, p in s.net.collect_params().items()}
    results = {}
    for scale in (1.0, 1024.0):
        for name, p in s.net.collect_params().items():
            p.set_data(start[name])
        trainer = gluon.Trainer(s.net.collect_params(), 'adam', {'learning_rate': 1e-3},
                                update_on_kvstore=False)
        # A clip threshold below the norm, so the clipping's scaling is tested too.
        loss, norm, finite = train_step(s.net, trainer, CTCLoss(), s.batches[0], [mx.cpu()],
                                        Distributed(), 1.0, loss_scale=scale)
        assert finite and norm > 1.0
        results[scale] = loss, norm, snapshot(s.net, trainer)[0]
    (loss, norm, params), (scaled_loss, scaled_norm, scaled_params) = results.values()
    assert scaled_loss == pytest.approx(loss, rel=1e-6)
    assert scaled_norm == pytest.approx(norm, rel=1e-5)
    for name, value in params.items():
        np.testing.assert_allclose(scaled_params[name], value, rtol=1e-4, atol=1e-6,
                                   err_msg=name)
