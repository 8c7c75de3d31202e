"""Resuming: which config wins, which checkpoint, where training picks up."""
import pytest

from gluon_ds2.checkpoint import save_checkpoint
from gluon_ds2.config import Config
from gluon_ds2.distributed import Distributed
from gluon_ds2.precision import LossScaler
from gluon_ds2.resume import initial_state, restore_checkpoint, run_config
from gluon_ds2.training import checkpoint_meta
from gluon_ds2.vocab import Vocabulary
from test_checkpoint import save, tiny_model


def test_resumed_config_takes_explicit_flags_over_the_checkpoints(tmp_path):
    cfg, resumed = run_config({'train': {'batch_size': 4, 'model_dir': str(tmp_path / 'new')}})
    assert not resumed
    assert cfg.model == Config().model and cfg.train.learning_rate == Config().train.learning_rate
    assert cfg.train.batch_size == 4 and cfg.train.model_dir == str(tmp_path / 'new')

    recorded = Config().to_json()
    recorded['train'].update(batch_size=8, learning_rate=1e-3, max_steps=5)
    recorded['model'].update(rnn_hidden_size=8, rnn_hidden_layers=2, conv_filters=2)
    recorded['audio'].update(max_freq=4000.0)
    net, trainer = tiny_model(seed=1)
    save(tmp_path, net, trainer, 5, config=Config.from_json(recorded))

    cfg, resumed = run_config({'train': {'max_steps': 9, 'log_every': 1,
                                         'model_dir': str(tmp_path)},
                               'model': {'rnn_hidden_size': 8}})  # the same value is no change
    assert resumed
    assert cfg.train.max_steps == 9 and cfg.train.log_every == 1  # given now
    assert cfg.train.batch_size == 8 and cfg.train.learning_rate == 1e-3  # the checkpoint's
    assert cfg.model.rnn_hidden_size == 8 and cfg.model.conv_filters == 2
    assert cfg.audio.max_freq == 4000.0
    assert cfg.train.model_dir == str(tmp_path)


@pytest.mark.parametrize('group, flag, value, recorded', [
    ('model', 'rnn_hidden_size', 16, 8),
    ('audio', 'max_freq', 8000.0, 4000.0),
])
def test_changing_the_model_on_resume_is_a_clear_error(tmp_path, group, flag, value, recorded):
    config = Config().to_json()
    config['model'].update(rnn_hidden_size=8, rnn_hidden_layers=2, conv_filters=2)
    config['audio'].update(max_freq=4000.0)
    net, trainer = tiny_model(seed=1)
    save(tmp_path, net, trainer, 5, config=Config.from_json(config))
    with pytest.raises(ValueError) as error:
        run_config({group: {flag: value}, 'train': {'model_dir': str(tmp_path)}})
    message = str(error.value)
    assert message.startswith('--%s=%s differs from the checkpoint in %s (%s)'
                              % (flag, value, tmp_path, recorded))
    assert 'new --model_dir' in message


def test_initial_state_continues_where_the_checkpoint_stopped():
    assert initial_state(None, 6) == dict(
        epoch=0, batch_in_epoch=0, global_step=0, nonfinite_steps=0, consecutive_nonfinite=0,
        skipped_files=0, best_wer=None, last_eval=None, stopped_early=False)
    inside = dict(epoch=2, batch_in_epoch=4, global_step=16, best_wer=0.5, wer=0.7, time=1.0)
    state = initial_state(inside, 6)
    assert (state['epoch'], state['batch_in_epoch'], state['global_step']) == (2, 4, 16)
    assert state['best_wer'] == 0.5 and 'wer' not in state and 'time' not in state
    # Written after an epoch's last batch: the next epoch begins.
    finished = dict(epoch=2, batch_in_epoch=6, global_step=18)
    state = initial_state(finished, 6)
    assert (state['epoch'], state['batch_in_epoch'], state['global_step']) == (3, 0, 18)


def test_resumed_float16_run_continues_with_the_saved_loss_scale(tmp_path):
    """The scale and its count of good steps survive a real checkpoint file."""
    outcomes = [True] * 5 + [False, False] + [True] * 3  # two overflows: 2 ** 16 -> 2 ** 14
    later = [True] * 4 + [False] + [True] * 6
    uninterrupted = LossScaler(growth_interval=6)
    for finite in outcomes:
        uninterrupted.update(finite)
    assert (uninterrupted.scale, uninterrupted.good_steps) == (2.0 ** 14, 3)

    net, trainer = tiny_model(seed=1)
    state = initial_state(None, 10)
    state.update(global_step=8, batch_in_epoch=10)
    meta = checkpoint_meta(state, Config(), Vocabulary.from_file(Config().data.vocabulary_file),
                           1, uninterrupted)
    save_checkpoint(str(tmp_path), net, trainer, meta)

    resumed = LossScaler(growth_interval=6)  # what a new process starts with: 2 ** 16
    fresh_net, fresh_trainer = tiny_model(seed=2)
    restore_checkpoint(str(tmp_path), Distributed(), fresh_net, fresh_trainer, resumed)
    assert (resumed.scale, resumed.good_steps) == (2.0 ** 14, 3)
    # From here the resumed scaler makes the decisions the uninterrupted one makes: it
    # doubles after 3 more good steps, not 6, and an overflow halves the saved scale.
    scales = []
    for finite in later:
        assert resumed.update(finite) == uninterrupted.update(finite) == finite
        scales.append(resumed.scale)
        assert resumed.scale == uninterrupted.scale
    assert scales[:5] == [2.0 ** 14, 2.0 ** 14, 2.0 ** 15, 2.0 ** 15, 2.0 ** 14]


def test_checkpoint_without_a_loss_scale_leaves_the_scaler_alone(tmp_path):
    net, trainer = tiny_model(seed=1)
    save(tmp_path, net, trainer, 5)  # a float32 run's checkpoint
    scaler = LossScaler()
    meta = restore_checkpoint(str(tmp_path), Distributed(), net, trainer, scaler)
    assert meta['global_step'] == 5
    assert (scaler.scale, scaler.good_steps) == (2.0 ** 16, 0)
