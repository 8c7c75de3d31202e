"""Horovod data parallelism, run as users run it: ``horovodrun -np 2 --gloo`` on 127.0.0.1.

The slow tests start real processes through ``tests/horovod_worker.py``
(train.py with test hooks patched in from outside the package) and a tiny
model (16 conv filters, enough for MXNet's MKL-DNN convolution to use its
blocked weight layout, which Horovod's ops cannot read), with the default
DataLoader worker count: each rank starts its worker process (from a fork server) after
``hvd.init()``, as users' jobs do.
"""
import json
import os
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest
import soundfile

from conftest import REPO_ROOT
from gluon_ds2.checkpoint import load_latest
from gluon_ds2.curves import read_metrics
from gluon_ds2.manifest import read_manifests, write_manifest

HOROVODRUN = os.path.join(os.path.dirname(sys.executable), 'horovodrun')
WORKER = str(REPO_ROOT / 'tests' / 'horovod_worker.py')
TINY_MODEL = ['--rnn_hidden_size=32', '--rnn_hidden_layers=1', '--conv_filters=16',
              '--max_freq=4000', '--num_threads=1']
# Float rounding between a batch and its halves (BatchNorm sums, CTC in log space): the first
# step's loss and gradient norm differ by about 2e-4 on the demo corpus's utterances; a missing
# or double average changes them 2x.
FIRST_STEP_RTOL = 1e-3
# A job that ends on its own takes well under this on two shared cores; a hang does not.
JOB_TIMEOUT_S = 120


def _run(command, extra_env=None):
    """Run ``command`` from the repository root; returns (CompletedProcess, seconds).

    Past the timeout it gets SIGTERM, which horovodrun passes on to its
    workers (SIGKILL would leave them running), and the test fails.
    """
    # DMLC_LOG_STACK_TRACE_DEPTH: a native crash in a rank prints where it happened (a rare
    # "Segmentation fault: 11" at a rank's first step was seen twice on 2026-12-06).
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1',
               DMLC_LOG_STACK_TRACE_DEPTH='20', **(extra_env or {}))
    start = time.time()
    with subprocess.Popen(command, cwd=str(REPO_ROOT), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=JOB_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.terminate()
            stdout, stderr = process.communicate()
            pytest.fail('%s still running after %d s:\n%s' % (
                ' '.join(command), JOB_TIMEOUT_S, (stdout + stderr)[-3000:]))
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    return result, time.time() - start


def _horovodrun(args, extra_env=None, processes=2):
    return _run([HOROVODRUN, '-np', str(processes), '-H', 'localhost:%d' % processes, '--gloo',
                 sys.executable] + args, extra_env)


def _train(flags, processes=2, extra_env=None):
    """train.py (with the worker's hooks) on ``processes`` Horovod ranks, or plainly for 1."""
    args = [WORKER, 'train'] + TINY_MODEL + flags
    if processes == 1:
        return _run([sys.executable] + args, extra_env)
    return _horovodrun(args, extra_env, processes)


def _params(path):
    return {name: array.asnumpy() for name, array in mx.nd.load(str(path)).items()}


def _flat(params):
    return np.concatenate([params[name].ravel() for name in sorted(params)])


def _rank_lines(output, rank):
    return [line for line in output.splitlines() if line.startswith('[%d]<' % rank)]


@pytest.mark.slow
def test_train_step_reduces_clips_and_updates_as_one_process_would(tmp_path):
    """The allreduce path alone, against a float64 recomputation of the global batch.

    A linear model with squared error: each rank's train_step sees half of a
    4-sample batch, on one device or split over two. The devices' gradients
    are summed, the ranks' averaged, then clipped: a double or a missing
    average, a clip on a partial sum or a device left out shows up as a wrong
    norm or a wrong weight. A rank (or device) whose slice is empty
    contributes zero gradients (and does not hang the others).
    """
    import horovod_worker as worker
    result, _ = _horovodrun([WORKER, 'train_step', str(tmp_path / 'out')])
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = [json.loads((tmp_path / ('out.rank%d.json' % rank)).read_text())
               for rank in (0, 1)]
    x, y, w = worker.INPUTS, worker.TARGETS, worker.WEIGHTS
    for name, clip_gradient, rank1_empty in worker.CASES:
        per_sample = (x @ w - y)[:, None] * x  # d(0.5 (xw - y)^2) / dw, float64
        if rank1_empty:  # rank 0's mean, averaged with rank 1's zeros
            gradient = per_sample[:2].mean(axis=0) / 2
        else:
            gradient = per_sample.mean(axis=0)
        norm = np.linalg.norm(gradient)
        scale = min(1.0, clip_gradient / norm) if clip_gradient else 1.0
        for output in outputs:
            for devices in worker.DEVICE_COUNTS:
                key = '%s.%d' % (name, devices)
                got = output['results'][key]
                assert got['finite'], key
                np.testing.assert_allclose(got['norm'], norm, rtol=1e-5, err_msg=key)
                for weights in got['weights']:  # every device makes the same update
                    np.testing.assert_allclose(weights, w - gradient * scale, rtol=1e-5,
                                               atol=1e-6, err_msg=key)


@pytest.mark.slow
def test_ranks_agree_and_only_rank0_writes(demo_manifests, tmp_path):
    """One epoch on 2 ranks: identical parameters, rank 0 alone reports, eval = evaluate.py.

    BatchNorm running statistics follow each rank's own slices, so they are
    averaged before evaluation and checkpoints; everything else is identical
    because the ranks apply the same allreduced gradients. The epoch's WER,
    computed by both ranks on halves of the dev set and summed, must equal a
    single-process ``evaluate.py`` of the checkpoint rank 0 saved; so must the
    counts of the extra evaluation set (``--extra_eval_data_dirs``).
    """
    model_dir = tmp_path / 'model'
    result, _ = _train(['--train_data_dir=%s' % demo_manifests['train'],
                        '--eval_data_dir=%s' % demo_manifests['dev'],
                        '--model_dir=%s' % model_dir, '--batch_size=4', '--train_epochs=1',
                        '--log_every=1', '--scale_lr_by_workers',
                        '--extra_eval_data_dirs=dev_ood=%s' % demo_manifests['dev_ood']],
                       extra_env={'GLUON_DS2_TEST_PARAMS': str(tmp_path / 'params')})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output

    rank0, rank1 = (_params(tmp_path / ('params.rank%d.params' % r)) for r in (0, 1))
    assert sorted(rank0) == sorted(rank1)
    for name in rank0:
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=name)

    # Rank 1 shows no progress bar and logs nothing at INFO level.
    # (train.py's own "starting" line comes before Horovod says which rank it is.)
    rank1_lines = [line for line in _rank_lines(output, 1) if 'INFO starting' not in line]
    assert not [line for line in rank1_lines if 'INFO' in line or '%|' in line], rank1_lines
    assert any('saved' in line for line in _rank_lines(output, 0))

    records = read_metrics(str(model_dir / 'metrics.jsonl'))
    train = [r for r in records if r['kind'] == 'train']
    assert [r['step'] for r in train] == [1, 2, 3, 4, 5, 6]  # once each: rank 0 alone writes
    assert all(r['lr'] == pytest.approx(2 * 5e-4) for r in train)  # --scale_lr_by_workers
    evaluations = [r for r in records if r['kind'] == 'eval']
    assert [r['split'] for r in evaluations] == ['eval', 'dev_ood']
    for evaluation, manifest in zip(evaluations, (demo_manifests['dev'],
                                                  demo_manifests['dev_ood'])):
        assert evaluation['utterances'] == 6
        results_path = tmp_path / ('evaluate_%s.jsonl' % evaluation['split'])
        result, _ = _run([sys.executable, 'evaluate.py', str(model_dir), '--which=latest',
                          '--eval_data_dir=%s' % manifest, '--num_workers=0',
                          '--output=%s' % results_path])
        assert result.returncode == 0, result.stdout + result.stderr
        rows = [json.loads(line) for line in results_path.read_text().splitlines()]
        assert len(rows) == 6
        for key in ('word_edits', 'reference_words', 'char_edits', 'reference_chars'):
            assert sum(row[key] for row in rows) == evaluation[key], (evaluation['split'], key)


@pytest.fixture
def duplicated_pairs(demo_manifests, tmp_path):
    """A manifest whose global batches of 4 are ``[a, b, a', b']``, all of one length.

    ``a'`` is a byte copy of ``a``: with equal lengths the sampler keeps manifest
    order, so rank 0 gets ``[a, b]``, rank 1 ``[a', b']`` and one process all
    four. Each half then has exactly the full batch's BatchNorm statistics and
    padding. Transcripts are cut to two words so that CTC fits 1.6 s.
    """
    source = read_manifests(str(demo_manifests['train']))
    samples = 25600  # 1.6 s at 16 kHz
    rows = []
    for first in range(0, 8, 2):
        pair = []
        for index in (first, first + 1):
            audio, rate = soundfile.read(source.wav_filename.iloc[index], dtype='int16')
            audio = np.pad(audio[:samples], (0, max(0, samples - len(audio))))
            pair.append((index, audio, ' '.join(source.transcript.iloc[index].split()[:2])))
        for copy in 'ab':
            for index, audio, transcript in pair:
                path = tmp_path / ('utterance%d%s.wav' % (index, copy))
                soundfile.write(str(path), audio, rate, subtype='PCM_16')
                rows.append((str(path), path.stat().st_size, transcript))
    manifest = tmp_path / 'pairs.csv'
    write_manifest(rows, str(manifest))
    return manifest


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(duplicated_pairs, tmp_path):
    """2 ranks x batch 2 vs 1 process x batch 4: same loss, gradient norm and update.

    With ordinary data the two differ by design, not by a bug: BatchNorm
    normalizes each rank's half batch with that half's statistics (and padding),
    so on the demo corpus the first gradient norms differ by about 10% and the
    parameters after a few steps by a third of their movement. The duplicated
    pairs make the halves' statistics the full batch's, so only float rounding
    is left: the first step's loss and norm agree to ``FIRST_STEP_RTOL``, and
    after 3 steps the parameters to about 1% of how far they moved (Adam's first steps move
    every weight by about +-lr whatever its gradient's size, so a gradient that
    rounding tips over zero moves 2 lr apart). A missing or double average
    changes the norm by 2x, a wrong learning rate or slice the parameters by
    tens of percent.
    """
    flags = ['--train_data_dir=%s' % duplicated_pairs, '--eval_data_dir=%s' % duplicated_pairs,
             '--batch_size=4', '--max_steps=3', '--train_epochs=10',
             '--epochs_between_evals=10', '--log_every=1']
    runs = {}
    for processes in (1, 2):
        prefix = tmp_path / ('params%d' % processes)
        result, _ = _train(flags + ['--model_dir=%s' % (tmp_path / ('model%d' % processes))],
                           processes=processes, extra_env={'GLUON_DS2_TEST_PARAMS': str(prefix)})
        assert result.returncode == 0, result.stdout + result.stderr
        records = read_metrics(str(tmp_path / ('model%d' % processes) / 'metrics.jsonl'))
        runs[processes] = dict(
            train=[r for r in records if r['kind'] == 'train'],
            initial=_flat(_params('%s.rank0.initial.params' % prefix)),
            final=_flat(_params('%s.rank0.params' % prefix)))

    one, two = runs[1], runs[2]
    np.testing.assert_array_equal(one['initial'], two['initial'])  # same seed, broadcast
    assert [r['step'] for r in two['train']] == [1, 2, 3]
    np.testing.assert_allclose(two['train'][0]['loss'], one['train'][0]['loss'],
                               rtol=FIRST_STEP_RTOL)
    np.testing.assert_allclose(two['train'][0]['grad_norm'], one['train'][0]['grad_norm'],
                               rtol=FIRST_STEP_RTOL)
    moved = np.linalg.norm(one['final'] - one['initial'])
    assert np.linalg.norm(two['final'] - one['final']) < 0.05 * moved


@pytest.fixture
def pairs_and_a_single(duplicated_pairs, tmp_path):
    """:func:`duplicated_pairs` plus a 17th row: with batch 4, a last batch of one utterance."""
    rows = read_manifests(str(duplicated_pairs))
    rows = [tuple(row) for row in rows[['wav_filename', 'wav_filesize', 'transcript']]
            .itertuples(index=False)]
    manifest = tmp_path / 'pairs_and_a_single.csv'
    write_manifest(rows + rows[:1], str(manifest))
    return manifest


@pytest.mark.slow
def test_two_devices_in_one_process_match_one_device(pairs_and_a_single, tmp_path):
    """One process on cpu(0) and cpu(1), plainly and under ``horovodrun -np 1``, vs cpu(0) alone.

    Batches of 4 are split 2 + 2 over the devices; the halves are copies of
    each other (see :func:`duplicated_pairs`), so BatchNorm sees the full
    batch's statistics on each device and only rounding separates the runs,
    as in the two-rank test. The epoch's fifth batch holds one utterance:
    the second device idles, adding zero gradients, and keeps the first
    device's statistics.
    """
    flags = ['--train_data_dir=%s' % pairs_and_a_single,
             '--eval_data_dir=%s' % pairs_and_a_single, '--batch_size=4', '--train_epochs=1',
             '--log_every=1']
    two = ['--devices=cpu:0,cpu:1']
    runs = {}
    for name, launcher, extra in (('one', 'python', []), ('two', 'python', two),
                                  ('two_horovod', 'horovodrun', two)):
        prefix = tmp_path / name
        args = [WORKER, 'train'] + TINY_MODEL + flags + extra + [
            '--model_dir=%s' % (tmp_path / name)]
        env = {'GLUON_DS2_TEST_PARAMS': str(prefix)}
        if launcher == 'python':
            result, _ = _run([sys.executable] + args, env)
        else:
            result, _ = _horovodrun(args, env, processes=1)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert ('devices cpu(0), cpu(1)' in output) == bool(extra), output
        runs[name] = dict(
            train=[r for r in read_metrics(str(tmp_path / name / 'metrics.jsonl'))
                   if r['kind'] == 'train'],
            initial=_flat(_params('%s.rank0.initial.params' % prefix)),
            final=_flat(_params('%s.rank0.params' % prefix)))

    one = runs['one']
    moved = np.linalg.norm(one['final'] - one['initial'])
    for name in ('two', 'two_horovod'):
        other = runs[name]
        np.testing.assert_array_equal(other['initial'], one['initial'])
        assert [r['step'] for r in other['train']] == [1, 2, 3, 4, 5]
        np.testing.assert_allclose(other['train'][0]['loss'], one['train'][0]['loss'],
                                   rtol=FIRST_STEP_RTOL)
        np.testing.assert_allclose(other['train'][0]['grad_norm'],
                                   one['train'][0]['grad_norm'], rtol=FIRST_STEP_RTOL)
        assert np.linalg.norm(other['final'] - one['final']) < 0.05 * moved, name


@pytest.mark.slow
def test_resumed_job_continues_the_same_run(demo_manifests, tmp_path):
    """Stop 2 ranks at step 4, resume to step 8 (across an epoch end): the same as 8 straight.

    Rank 0 picks the checkpoint, both ranks load it (optimizer state
    included) and take up the data order at the next global batch; the
    parameters then match an uninterrupted run exactly.
    """
    flags = ['--train_data_dir=%s' % demo_manifests['train'],
             '--eval_data_dir=%s' % demo_manifests['dev'], '--batch_size=4',
             '--checkpoint_every=2', '--train_epochs=10']
    finals = {}
    for name, stops in (('straight', [8]), ('resumed', [4, 8])):
        prefix = tmp_path / name
        for max_steps in stops:
            result, _ = _train(flags + ['--model_dir=%s' % (tmp_path / ('model_' + name)),
                                        '--max_steps=%d' % max_steps],
                               extra_env={'GLUON_DS2_TEST_PARAMS': str(prefix)})
            assert result.returncode == 0, result.stdout + result.stderr
        finals[name] = [_params('%s.rank%d.params' % (prefix, rank)) for rank in (0, 1)]
    assert 'resuming from' in result.stderr
    for rank in (0, 1):
        for name, value in finals['straight'][rank].items():
            np.testing.assert_array_equal(finals['resumed'][rank][name], value, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize('how', ['raise', 'kill'])
def test_a_failing_rank_ends_the_job(demo_manifests, tmp_path, how):
    """Rank 1 raises, or is SIGKILLed, entering step 5 while rank 0 waits in the allreduce.

    The job must exit non-zero well within the timeout, name rank 1 and the
    reason, and leave the step-4 checkpoint loadable.
    """
    model_dir = tmp_path / 'model'
    result, seconds = _train(['--train_data_dir=%s' % demo_manifests['train'],
                              '--eval_data_dir=%s' % demo_manifests['dev'],
                              '--model_dir=%s' % model_dir, '--batch_size=4',
                              '--checkpoint_every=2', '--train_epochs=10'],
                             extra_env={'GLUON_DS2_TEST_FAULT': '1:5:%s' % how})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert seconds < 60, output  # about 3 s here; Gloo reports a dead peer at once
    # Rank 1 named with its reason. (horovodrun's closing summary names whichever rank's
    # output closed first: rank 0, failing in the allreduce, can close before the killed one.)
    expected = {'raise': '[1]<stderr>:RuntimeError: injected fault at step 5',
                'kill': 'Process 1 exit with status code 137'}[how]
    assert expected in output
    found = load_latest(str(model_dir))
    assert found is not None
    path, meta, _ = found
    assert meta['global_step'] == 4, path


@pytest.mark.slow
def test_batch_size_not_divisible_by_ranks_is_one_clear_line(demo_manifests, tmp_path):
    result, _ = _train(['--train_data_dir=%s' % demo_manifests['train'],
                        '--eval_data_dir=%s' % demo_manifests['dev'],
                        '--model_dir=%s' % (tmp_path / 'model'), '--batch_size=3'])
    output = result.stdout + result.stderr
    assert result.returncode != 0
    message = ('train.py: error: batch_size 3 is not divisible by the number of processes 2: '
               'use --batch_size=2 or --batch_size=4')
    assert message in output
    assert 'Traceback' not in '\n'.join(_rank_lines(output, 0) + _rank_lines(output, 1))
