"""Checkpoints: the index of a model directory, damaged and foreign files,
exact round trips of parameters and optimizer state, the config of a resumed run, and the
average of a run's last checkpoints."""
import json
import logging
import os
import subprocess
import sys
import zipfile

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from gluon_ds2.checkpoint import (FORMAT_VERSION, CheckpointError, average_parameters,
                                  load_into, load_latest, read_checkpoint, read_index,
                                  remove_partial_writes, save_averaged, save_checkpoint)
from gluon_ds2.config import Config
from gluon_ds2.model import DeepSpeech2, output_length

NUM_BINS = 20


def tiny_model(seed):
    """A small DeepSpeech2 (BatchNorm running statistics included), initialized by ``seed``."""
    mx.random.seed(seed)
    net = DeepSpeech2(29, num_bins=NUM_BINS, rnn_hidden_size=8, rnn_hidden_layers=2,
                      conv_filters=2)
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 1, 40, NUM_BINS)), mx.nd.array([40]))
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 1e-2},
                            update_on_kvstore=False)
    return net, trainer


def train_steps(net, trainer, steps, seed=0):
    """A few real Adam steps on random inputs, so the moments and BatchNorm statistics move."""
    rng = np.random.RandomState(seed)
    for _ in range(steps):
        x = mx.nd.array(rng.randn(2, 1, 40, NUM_BINS))
        with autograd.record():
            loss = (net(x, mx.nd.array([40, 30])) ** 2).mean()
        loss.backward()
        trainer.step(2)


def arrays(net):
    """Parameter values by structural name (the names ``save_parameters`` writes)."""
    return {name: param.data().asnumpy()
            for name, param in net._collect_params_with_prefix().items()}


def adam_states(trainer):
    """{parameter index: (mean, variance)} of the trainer's Adam updater, as numpy."""
    states = trainer._updaters[0].states
    return {index: tuple(s.asnumpy() for s in state) for index, state in states.items()}


def save(model_dir, net, trainer, step, wer=None, keep=3, config=None):
    meta = dict(global_step=step, epoch=0, batch_in_epoch=step,
                config=(config or Config()).to_json())
    return save_checkpoint(str(model_dir), net, trainer, meta, keep=keep, wer=wer)


def test_keeps_the_last_k_and_the_best_by_wer(tmp_path):
    net, trainer = tiny_model(seed=1)
    history = [(10, 0.50), (20, 0.30), (30, None), (40, 0.40), (50, None)]
    for step, wer in history:
        save(tmp_path, net, trainer, step, wer=wer, keep=2)
    # The two most recent (40, 50) and the lowest WER (20).
    expected = ['ckpt-00000020.ckpt', 'ckpt-00000040.ckpt', 'ckpt-00000050.ckpt']
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith('.ckpt')) == expected
    index = read_index(str(tmp_path))
    assert index['latest'] == 'ckpt-00000050.ckpt'
    assert index['best'] == 'ckpt-00000020.ckpt'
    assert [(e['name'], e['global_step'], e['wer']) for e in index['checkpoints']] == [
        ('ckpt-00000020.ckpt', 20, 0.30), ('ckpt-00000040.ckpt', 40, 0.40),
        ('ckpt-00000050.ckpt', 50, None)]

    # A later checkpoint with the same best WER takes over; the old best is deleted once it
    # is neither recent nor best.
    save(tmp_path, net, trainer, 60, wer=0.30, keep=2)
    index = read_index(str(tmp_path))
    assert (index['latest'], index['best']) == ('ckpt-00000060.ckpt', 'ckpt-00000060.ckpt')
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith('.ckpt')) == [
        'ckpt-00000050.ckpt', 'ckpt-00000060.ckpt']
    for entry in index['checkpoints']:
        meta, _ = read_checkpoint(str(tmp_path / entry['name']))
        assert meta['global_step'] == entry['global_step']
        assert meta['wer'] == entry['wer']
        assert meta['format_version'] == FORMAT_VERSION


def test_truncated_checkpoint_is_reported_and_the_previous_one_loaded(tmp_path, caplog):
    net, trainer = tiny_model(seed=1)
    save(tmp_path, net, trainer, 1)
    train_steps(net, trainer, 1)
    last = save(tmp_path, net, trainer, 2)
    size = os.path.getsize(last)
    with open(last, 'r+b') as f:  # as a full disk or a copy cut short would leave it
        f.truncate(size // 2)

    with pytest.raises(CheckpointError) as error:
        read_checkpoint(last)
    assert str(error.value).startswith(last + ': not a readable gluon-ds2 checkpoint')

    with caplog.at_level(logging.WARNING, logger='gluon_ds2.checkpoint'):
        path, meta, _ = load_latest(str(tmp_path))
    assert path == str(tmp_path / 'ckpt-00000001.ckpt')
    assert meta['global_step'] == 1
    assert any(last in record.getMessage() and 'trying the previous checkpoint'
               in record.getMessage() for record in caplog.records)


def test_every_checkpoint_damaged_means_none_to_resume(tmp_path):
    net, trainer = tiny_model(seed=1)
    path = save(tmp_path, net, trainer, 1)
    with open(path, 'wb') as f:
        f.write(b'not a zip file')
    assert load_latest(str(tmp_path)) is None


def rewrite_meta(path, change):
    """Rewrite a checkpoint's meta.json through ``change(meta)``, keeping the other members."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(members['meta.json'])
    change(meta)
    members['meta.json'] = json.dumps(meta).encode()
    with zipfile.ZipFile(path, 'w') as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_other_format_version_is_a_clear_error(tmp_path):
    net, trainer = tiny_model(seed=1)
    path = save(tmp_path, net, trainer, 7)
    rewrite_meta(path, lambda meta: meta.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(path)
    assert str(error.value) == ('%s: checkpoint format version %d, this gluon-ds2 reads '
                                'versions 1, 2' % (path, FORMAT_VERSION + 1))


def test_parameters_and_adam_state_round_trip_exactly(tmp_path):
    net, trainer = tiny_model(seed=1)
    train_steps(net, trainer, 3)
    path = save(tmp_path, net, trainer, 3)

    restored, restored_trainer = tiny_model(seed=2)  # a different initialization
    assert any(not np.array_equal(a, b)
               for a, b in zip(arrays(net).values(), arrays(restored).values()))
    _, archive = read_checkpoint(path)
    load_into(path, archive, restored, restored_trainer)

    expected, got = arrays(net), arrays(restored)
    assert expected.keys() == got.keys()
    assert any('running_mean' in name for name in got)  # BatchNorm statistics travel too
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    expected_states, got_states = adam_states(trainer), adam_states(restored_trainer)
    assert expected_states.keys() == got_states.keys() and expected_states
    for index in expected_states:
        for moment, restored_moment in zip(expected_states[index], got_states[index]):
            assert np.any(moment != 0)
            np.testing.assert_array_equal(restored_moment, moment)

    # The next step is the same step: Adam's bias correction (its update count) came back too.
    train_steps(net, trainer, 1, seed=5)
    train_steps(restored, restored_trainer, 1, seed=5)
    for name, value in arrays(net).items():
        np.testing.assert_array_equal(arrays(restored)[name], value, err_msg=name)


def test_keep_one_keeps_the_latest_and_the_best_and_zero_is_refused(tmp_path):
    net, trainer = tiny_model(seed=1)
    for step, wer in ((1, 0.2), (2, 0.5), (3, None)):
        save(tmp_path, net, trainer, step, wer=wer, keep=1)
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith('.ckpt')) == [
        'ckpt-00000001.ckpt', 'ckpt-00000003.ckpt']
    with pytest.raises(ValueError) as error:
        save(tmp_path, net, trainer, 4, keep=0)
    assert str(error.value) == ('--keep_checkpoints=0: keep at least 1 (the latest checkpoint, '
                                'which a resumed run starts from; the best is kept as well)')
    assert not (tmp_path / 'ckpt-00000004.ckpt').exists()


KILLED_SAVE = """
import os, signal, sys, zipfile
sys.path.insert(0, sys.argv[2])
from test_checkpoint import save, tiny_model, train_steps
net, trainer = tiny_model(seed=1)
train_steps(net, trainer, 1)
original = zipfile.ZipFile.write
def write(self, filename, arcname=None, *args, **kwargs):
    if arcname == 'optimizer_arrays':  # half-way through the zip: the power goes out
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, filename, arcname, *args, **kwargs)
zipfile.ZipFile.write = write
save(sys.argv[1], net, trainer, 2)
"""


def test_temporary_files_of_a_killed_save_are_removed(tmp_path):
    net, trainer = tiny_model(seed=1)
    save(tmp_path, net, trainer, 1)
    (tmp_path / 'notes.txt').write_text('the user\'s own file')
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    result = subprocess.run([sys.executable, '-c', KILLED_SAVE, str(tmp_path), tests_dir],
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == -9
    left = sorted(set(os.listdir(tmp_path)) - {'ckpt-00000001.ckpt', 'checkpoints.json',
                                               'notes.txt'})
    assert len(left) == 3 and all(name.startswith('.ckpt-00000002.ckpt.') for name in left)
    assert read_index(str(tmp_path))['latest'] == 'ckpt-00000001.ckpt'

    assert remove_partial_writes(str(tmp_path)) == left
    assert sorted(os.listdir(tmp_path)) == ['checkpoints.json', 'ckpt-00000001.ckpt',
                                            'notes.txt']
    assert load_latest(str(tmp_path))[1]['global_step'] == 1


def test_version_1_checkpoint_with_trainer_save_states_still_loads(tmp_path):
    """Format 1 stored ``Trainer.save_states`` as a ``trainer`` member."""
    net, trainer = tiny_model(seed=1)
    train_steps(net, trainer, 2)
    net.save_parameters(str(tmp_path / 'params'))
    trainer.save_states(str(tmp_path / 'trainer'))
    path = str(tmp_path / 'ckpt-00000002.ckpt')
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('meta.json', json.dumps(dict(format_version=1, global_step=2)))
        archive.write(str(tmp_path / 'params'), 'params')
        archive.write(str(tmp_path / 'trainer'), 'trainer')
    restored, restored_trainer = tiny_model(seed=2)
    load_into(path, read_checkpoint(path)[1], restored, restored_trainer)
    for index, state in adam_states(trainer).items():
        for moment, restored_moment in zip(state, adam_states(restored_trainer)[index]):
            np.testing.assert_array_equal(restored_moment, moment)


def test_damaged_member_is_found_when_loaded(tmp_path):
    """Opening reads only the zip directory; a flipped byte fails the member's CRC on load."""
    net, trainer = tiny_model(seed=1)
    train_steps(net, trainer, 1)
    path = save(tmp_path, net, trainer, 1)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo('optimizer_arrays')
    with open(path, 'r+b') as f:
        f.seek(info.header_offset + 200)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    meta, archive = read_checkpoint(path)
    restored, restored_trainer = tiny_model(seed=2)
    with pytest.raises(CheckpointError) as error:
        load_into(path, archive, restored, restored_trainer)
    assert str(error.value) == ("%s: not a readable gluon-ds2 checkpoint (Bad CRC-32 for file "
                                "'optimizer_arrays')" % path)


def test_checkpoint_of_another_model_is_a_clear_error(tmp_path):
    net, trainer = tiny_model(seed=1)
    path = save(tmp_path, net, trainer, 1)
    other = DeepSpeech2(29, num_bins=NUM_BINS, rnn_hidden_size=16, rnn_hidden_layers=2,
                        conv_filters=2)
    _, archive = read_checkpoint(path)
    with pytest.raises(CheckpointError, match='^%s: parameters do not fit the model'
                       % path.replace('.', r'\.')):
        load_into(path, archive, other)


def test_checkpoint_of_the_first_rnn_layout_loads_converted(tmp_path, caplog):
    """A checkpoint whose RNN weights are stored as the first model stored them (four
    arrays per direction) loads into today's model with the same numbers; Adam restarts."""
    net, trainer = tiny_model(seed=1)
    train_steps(net, trainer, 2)
    path = save(tmp_path, net, trainer, step=2)
    legacy = {}
    for name, value in arrays(net).items():
        if not name.startswith('rnns.'):
            legacy[name] = mx.nd.array(value)
            continue
        # rnns.<i>.<l|r>0_parameters -> the old names, slicing the fused layout here
        _, layer, packed = name.split('.')
        direction = 'forward' if packed.startswith('l') else 'backward'
        inputs = 2 * output_length(NUM_BINS, axis=1) if layer == '0' else 16
        shapes = (('i2h_weight', (32, inputs)), ('h2h_weight', (32, 8)),
                  ('i2h_bias', (32,)), ('h2h_bias', (32,)))
        start = 0
        for part, shape in shapes:
            size = int(np.prod(shape))
            legacy['%s_rnns.%s._unfused.0.%s' % (direction, layer, part)] = \
                mx.nd.array(value[start:start + size].reshape(shape))
            start += size
        assert start == value.size
    mx.nd.save(str(tmp_path / 'params'), legacy)
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(str(tmp_path / 'old.ckpt'), 'w') as new:
        new.writestr('meta.json', old.read('meta.json'))
        new.write(str(tmp_path / 'params'), 'params')
        new.writestr('optimizer', old.read('optimizer'))
        new.writestr('optimizer_arrays', old.read('optimizer_arrays'))
    restored, restored_trainer = tiny_model(seed=2)
    with caplog.at_level(logging.WARNING):
        load_into('old.ckpt', read_checkpoint(str(tmp_path / 'old.ckpt'))[1], restored,
                  restored_trainer)
    for name, value in arrays(net).items():
        np.testing.assert_array_equal(arrays(restored)[name], value)
    assert 'old.ckpt predates the packed RNN layout' in caplog.text
    assert not restored_trainer._updaters[0].states


def test_average_is_the_mean_of_every_array_batchnorm_statistics_included(tmp_path):
    net, trainer = tiny_model(seed=1)
    snapshots, paths = [], []
    for step in (10, 20, 30):
        train_steps(net, trainer, 2, seed=step)
        snapshots.append(arrays(net))
        paths.append(save(tmp_path, net, trainer, step))
    averaged = average_parameters(paths[1:])
    assert sorted(averaged) == sorted(snapshots[0])
    assert any('running_mean' in name for name in averaged)
    for name, value in averaged.items():
        expected = (snapshots[1][name].astype(np.float64) + snapshots[2][name]) / 2
        np.testing.assert_allclose(value.asnumpy(), expected, rtol=1e-6, atol=1e-7)
        assert value.dtype == np.float32

    with pytest.raises(ValueError, match='at least two checkpoints, got 1'):
        average_parameters(paths[:1])
    other = save(tmp_path / 'other', *tiny_model(seed=2), 10,
                 config=Config.from_json(dict(Config().to_json(), model=dict(
                     Config().to_json()['model'], rnn_hidden_size=9))))
    with pytest.raises(CheckpointError, match='%s: another model than %s' % (other, paths[0])):
        average_parameters([paths[0], other])


def test_averaged_model_is_best_only_if_better_and_never_resumed_from(tmp_path):
    net, trainer = tiny_model(seed=1)
    for step, wer in ((10, 0.5), (20, 0.4)):
        train_steps(net, trainer, 1, seed=step)
        save(tmp_path, net, trainer, step, wer=wer)
    meta, _ = read_checkpoint(str(tmp_path / 'ckpt-00000020.ckpt'))
    sources = ['ckpt-00000010.ckpt', 'ckpt-00000020.ckpt']

    path = save_averaged(str(tmp_path), net, meta, sources, wer=0.45)  # worse than step 20
    assert os.path.basename(path) == 'ckpt-00000020-avg2.ckpt'
    index = read_index(str(tmp_path))
    assert index['best'] == 'ckpt-00000020.ckpt'
    assert index['averaged'] == dict(name='ckpt-00000020-avg2.ckpt', global_step=20,
                                     averaged_from=sources, wer=0.45)
    averaged_meta, archive = read_checkpoint(path)
    assert averaged_meta['averaged_from'] == sources and 'optimizer' not in archive.namelist()

    save_averaged(str(tmp_path), net, meta, sources, wer=0.35)  # better: the best now
    index = read_index(str(tmp_path))
    assert (index['best'], index['latest']) == ('ckpt-00000020-avg2.ckpt', 'ckpt-00000020.ckpt')
    assert [e['name'] for e in index['checkpoints']] == sources
    assert load_latest(str(tmp_path))[0] == str(tmp_path / 'ckpt-00000020.ckpt')  # resume

    # A resumed run's next checkpoint supersedes the average; the best is a trained one again.
    save(tmp_path, net, trainer, 30, wer=0.6)
    index = read_index(str(tmp_path))
    assert 'averaged' not in index and index['best'] == 'ckpt-00000020.ckpt'
    assert not os.path.exists(path)
    # What a killed averaging leaves is cleared like any interrupted save.
    (tmp_path / '.ckpt-00000030-avg2.ckpt.k3x_9').write_bytes(b'partial')
    assert remove_partial_writes(str(tmp_path)) == ['.ckpt-00000030-avg2.ckpt.k3x_9']
