"""train.py measures its OpenMP thread count when nobody chose one (gluon_ds2/thread_probe.py)."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest

from gluon_ds2 import thread_probe
from gluon_ds2.config import Config, ModelConfig, TrainConfig
from gluon_ds2.thread_probe import RECORD, candidate_counts, choose_threads, pick_threads
from gluon_ds2.threads import nobody_chose

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ModelConfig(rnn_hidden_size=16, rnn_hidden_layers=1, conv_filters=4)


def test_candidates_halve_from_the_share_down_to_one():
    assert candidate_counts(8) == [8, 4, 2, 1]
    assert candidate_counts(6) == [6, 3, 1]
    assert candidate_counts(2) == [2, 1]
    assert candidate_counts(1) == [1]


@pytest.mark.parametrize('times, expected', [
    ({2: 0.45, 1: 0.27}, 1),              # one thread much faster: taken
    ({2: 0.45, 1: 0.42}, 2),              # within the margin: the default stays
    ({2: 0.45, 1: 0.405}, 1),             # exactly at the margin (0.9): taken
    ({8: 1.0, 4: 0.85, 2: 0.80}, 4),      # 0.80 is not 10 % below 0.85
    ({8: 1.0, 4: 1.2}, 8),
])
def test_a_smaller_count_must_be_at_least_ten_percent_faster(times, expected):
    assert pick_threads(times) == expected


@pytest.mark.parametrize('num_threads, environ, expected', [
    (None, {}, True),
    (None, {'OMP_NUM_THREADS': '2'}, False),
    (None, {'OMP_NUM_THREADS': 'many'}, True),   # not a count: ignored, as by the policy
    (None, {'OMP_NUM_THREADS': '0'}, True),
    (3, {}, False),
    (None, {'HOROVOD_RANK': '0', 'HOROVOD_LOCAL_SIZE': '2'}, False),
])
def test_the_count_is_measured_only_when_nobody_chose_it(num_threads, environ, expected):
    assert nobody_chose(num_threads, environ) is expected


def _cfg(model_dir, model=TINY):
    return Config(model=model, train=TrainConfig(model_dir=str(model_dir), batch_size=2,
                                                 num_gpus=0))


def test_choice_is_measured_in_child_processes_recorded_and_read_back(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path)
    threads = choose_threads(cfg, 2)
    record = json.loads((tmp_path / RECORD).read_text())
    seconds = {int(count): value for count, value in record['seconds'].items()}
    assert set(seconds) == {2, 1} and all(0 < value < 60 for value in seconds.values())
    assert threads == record['threads'] == pick_threads(seconds)
    assert record['key']['model'] == dataclasses.asdict(TINY)
    assert record['key']['share'] == 2 and record['key']['batch_size'] == 2

    # A second call (a resumed run) reads the record: no child is started.
    def no_child(*args):
        raise AssertionError('probed again')
    monkeypatch.setattr(thread_probe, '_time_in_child', no_child)
    assert choose_threads(cfg, 2) == threads

    # Another model (or CPU, share, batch) is measured anew, and the record replaced.
    monkeypatch.setattr(thread_probe, '_time_in_child',
                        lambda spec, count, timeout: {4: 1.0, 2: 0.5, 1: 0.6}[count])
    wider = dataclasses.replace(TINY, rnn_hidden_size=24)
    assert choose_threads(_cfg(tmp_path, wider), 4) == 2
    record = json.loads((tmp_path / RECORD).read_text())
    assert record['threads'] == 2 and record['seconds'] == {'4': 1.0, '2': 0.5, '1': 0.6}


def test_the_halving_stops_once_fewer_threads_are_slower(tmp_path, monkeypatch):
    asked = []

    def timed(spec, count, timeout):
        asked.append(count)
        return {8: 1.0, 4: 1.5, 2: 0.2, 1: 0.1}[count]
    monkeypatch.setattr(thread_probe, '_time_in_child', timed)
    assert choose_threads(_cfg(tmp_path), 8) == 8
    assert asked == [8, 4]


def test_a_failing_probe_keeps_the_default_and_says_why(tmp_path, caplog):
    broken = dataclasses.replace(TINY, rnn_type='bogus')
    with caplog.at_level('WARNING'):
        assert choose_threads(_cfg(tmp_path, broken), 2) == 2
    assert 'OpenMP threads: 2 (the default; timing the choices failed: the probe with 2 ' \
           'threads failed:' in caplog.text
    assert 'bogus' in caplog.text
    assert not (tmp_path / RECORD).exists()


def test_one_share_means_nothing_to_measure(tmp_path, monkeypatch):
    monkeypatch.setattr(thread_probe, '_time_in_child', None)  # would fail if called
    assert choose_threads(_cfg(tmp_path), 1) == 1


def _train(model_dir, manifests, *flags, env_updates=None):
    env = {k: v for k, v in os.environ.items()
           if k not in ('OMP_NUM_THREADS', 'HOROVOD_LOCAL_SIZE', 'HOROVOD_RANK')}
    env.update(env_updates or {})
    return subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, 'train.py'),
         '--train_data_dir=%s' % manifests['train'], '--eval_data_dir=%s' % manifests['dev'],
         '--model_dir=%s' % model_dir, '--rnn_hidden_size=16', '--rnn_hidden_layers=1',
         '--conv_filters=4', '--max_freq=4000', '--batch_size=8', '--max_steps=1',
         '--num_workers=0', *flags],
        capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason='one core: nothing to choose')
def test_train_py_measures_restarts_with_the_count_and_reuses_it_on_resume(demo_manifests,
                                                                             tmp_path):
    cores = len(os.sched_getaffinity(0))
    model_dir = tmp_path / 'model'
    result = _train(model_dir, demo_manifests)
    assert result.returncode == 0, result.stderr
    record = json.loads((model_dir / RECORD).read_text())
    threads = record['threads']
    assert record['key']['share'] == cores
    assert 'the fastest training step of this model here' in result.stderr
    assert ('starting, %d OpenMP threads per process' % threads) in result.stderr
    # MXNet came in with the checkpoint code: a count other than the one it read needs
    # the program started again, with the count in its environment.
    assert (('restarting with OMP_NUM_THREADS=%d' % threads) in result.stderr) \
        is (threads != cores)
    assert 'MXNet was imported before' not in result.stderr

    # Resumed: the record is read back, nothing measured again.
    result = _train(model_dir, demo_manifests, '--max_steps=2')
    assert result.returncode == 0, result.stderr
    assert 'as measured for this run' in result.stderr
    assert 'the fastest training step' not in result.stderr
    assert ('resuming, %d OpenMP threads per process' % threads) in result.stderr


def test_an_explicit_count_is_applied_even_though_mxnet_is_loaded(demo_manifests, tmp_path):
    cores = len(os.sched_getaffinity(0))
    wanted = 1 if cores > 1 else 2
    result = _train(tmp_path / 'model', demo_manifests, '--num_threads=%d' % wanted)
    assert result.returncode == 0, result.stderr
    assert ('restarting with OMP_NUM_THREADS=%d' % wanted) in result.stderr
    assert ('starting, %d OpenMP threads per process' % wanted) in result.stderr
    assert 'the fastest training step' not in result.stderr
    assert not (tmp_path / 'model' / RECORD).exists()
    # The user's OMP_NUM_THREADS is what MXNet read: no probe, no restart.
    result = _train(tmp_path / 'model2', demo_manifests, env_updates={'OMP_NUM_THREADS': '1'})
    assert result.returncode == 0, result.stderr
    assert 'restarting' not in result.stderr and 'the fastest training step' not in result.stderr
    assert 'starting, 1 OpenMP threads per process' in result.stderr


def test_an_unwritable_record_is_a_warning_and_the_choice_stands(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(thread_probe, '_time_in_child',
                        lambda spec, count, timeout: {2: 1.0, 1: 0.5}[count])

    def refuse(path, text):
        raise PermissionError(13, 'Permission denied', path)
    monkeypatch.setattr(thread_probe, 'atomic_write_text', refuse)
    with caplog.at_level('WARNING'):
        assert choose_threads(_cfg(tmp_path), 2) == 1
    assert 'could not record the thread count in %s' % (tmp_path / RECORD) in caplog.text
    assert 'Permission denied' in caplog.text
