"""Flags and defaults of the reference, and the JSON stored in checkpoints."""
import argparse
import json

import pytest

from gluon_ds2.config import (Config, add_arguments, at_least, from_args, parse_bool,
                              parse_extra_eval_sets)


def parse(argv, base=None):
    parser = add_arguments(argparse.ArgumentParser(prog='train.py'))
    return from_args(parser.parse_args(argv), base=base)


def test_defaults_are_the_references():
    cfg = parse([])
    assert cfg == Config()
    assert cfg.train.model_dir == '/tmp/deep_speech_model/'
    assert cfg.train.train_epochs == 10
    assert cfg.train.epochs_between_evals == 1
    assert cfg.train.batch_size == 128
    assert cfg.train.seed == 1
    assert cfg.train.learning_rate == 5e-4
    assert cfg.train.wer_threshold is None
    assert cfg.model.rnn_hidden_size == 800
    assert cfg.model.rnn_hidden_layers == 5
    assert cfg.model.is_bidirectional is True
    assert cfg.model.use_bias is True
    assert cfg.audio.window_ms == 20
    assert cfg.audio.stride_ms == 10
    assert cfg.audio.sample_rate == 16000
    assert cfg.data.sortagrad is True
    assert cfg.data.train_data_dir == '/tmp/librispeech_data/test-clean/LibriSpeech/test-clean.csv'
    assert cfg.data.eval_data_dir == '/tmp/librispeech_data/test-clean/LibriSpeech/test-clean.csv'


@pytest.mark.parametrize('argv, group, name, value', [
    (['--batch_size=16'], 'train', 'batch_size', 16),
    (['--batch_size', '16'], 'train', 'batch_size', 16),
    (['--sortagrad=false'], 'data', 'sortagrad', False),
    (['--sortagrad=0'], 'data', 'sortagrad', False),
    (['--nosortagrad'], 'data', 'sortagrad', False),
    (['--sortagrad'], 'data', 'sortagrad', True),
    (['--is_bidirectional'], 'model', 'is_bidirectional', True),
    (['--is_bidirectional=False'], 'model', 'is_bidirectional', False),
    (['--use_bias', 'false'], 'model', 'use_bias', False),
    (['--nouse_bias'], 'model', 'use_bias', False),
    (['--wer_threshold=0.23'], 'train', 'wer_threshold', 0.23),
    (['--wer_threshold=none'], 'train', 'wer_threshold', None),
    (['--learning_rate=1e-3'], 'train', 'learning_rate', 1e-3),
    (['--rnn_type=gru'], 'model', 'rnn_type', 'gru'),
    # The reference's flag is case-insensitive, and its 'rnn' is a plain (tanh) RNN.
    (['--rnn_type=GRU'], 'model', 'rnn_type', 'gru'),
    (['--rnn_type=Lstm'], 'model', 'rnn_type', 'lstm'),
    (['--rnn_type=rnn'], 'model', 'rnn_type', 'rnn_tanh'),
    (['--rnn_type=RNN'], 'model', 'rnn_type', 'rnn_tanh'),
    (['--rnn_type=RNN_RELU'], 'model', 'rnn_type', 'rnn_relu'),
    (['--max_freq=4000'], 'audio', 'max_freq', 4000.0),
    (['--model_dir=/tmp/x/'], 'train', 'model_dir', '/tmp/x/'),
])
def test_flag_forms(argv, group, name, value):
    cfg = parse(argv)
    assert getattr(getattr(cfg, group), name) == value
    assert type(getattr(getattr(cfg, group), name)) is type(value)
    # Every other value keeps its default.
    expected = Config().to_json()
    expected[group][name] = value
    assert cfg.to_json() == expected


def test_bare_bool_flag_before_another_flag():
    cfg = parse(['--is_bidirectional', '--batch_size=8'])
    assert cfg.model.is_bidirectional is True
    assert cfg.train.batch_size == 8


@pytest.mark.parametrize('argv, message', [
    (['--rnn_type=transformer'], "argument --rnn_type: invalid choice: 'transformer'"),
    (['--sortagrad=maybe'], "argument --sortagrad: expected true or false, got 'maybe'"),
    (['--batch_size=16.5'], "argument --batch_size: invalid int value: '16.5'"),
    (['--on_bad_input=ignore'], "argument --on_bad_input: invalid choice: 'ignore'"),
])
def test_bad_flag_values_are_rejected(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse(argv)
    assert message in capsys.readouterr().err


def test_parse_bool():
    for text in ('true', 'True', 'T', '1', 'yes', 'y'):
        assert parse_bool(text) is True
    for text in ('false', 'FALSE', 'f', '0', 'no', 'n'):
        assert parse_bool(text) is False
    with pytest.raises(argparse.ArgumentTypeError) as info:
        parse_bool('2')
    assert str(info.value) == "expected true or false, got '2'"


def test_at_least_accepts_the_minimum_and_names_what_is_wrong(capsys):
    assert at_least(0)('0') == 0 and at_least(1)('32') == 32
    for text, message in (('-1', 'must be at least 0, got -1'),
                          ('two', "expected an integer, got 'two'")):
        with pytest.raises(argparse.ArgumentTypeError) as info:
            at_least(0)(text)
        assert str(info.value) == message
    parser = argparse.ArgumentParser(prog='evaluate.py')
    parser.add_argument('--decode_processes', type=at_least(0), default=0)
    with pytest.raises(SystemExit):
        parser.parse_args(['--decode_processes=-1'])
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        'evaluate.py: error: argument --decode_processes: must be at least 0, got -1')


def test_extra_eval_data_dirs_name_their_manifests_in_order():
    assert Config().data.extra_eval_data_dirs == ''
    assert parse_extra_eval_sets(Config().data.extra_eval_data_dirs) == []
    cfg = parse(['--extra_eval_data_dirs=dev_ood=data/dev_ood.csv, noisy = /tmp/a=b.csv'])
    assert parse_extra_eval_sets(cfg.data.extra_eval_data_dirs) == [
        ('dev_ood', 'data/dev_ood.csv'), ('noisy', '/tmp/a=b.csv')]


@pytest.mark.parametrize('value, item, problem', [
    ('data/dev_ood.csv', 'data/dev_ood.csv', 'expected NAME=MANIFEST'),
    ('dev_ood=a.csv,', '', 'expected NAME=MANIFEST'),
    ('=a.csv', '=a.csv', 'empty name'),
    ('dev_ood=', 'dev_ood=', 'empty manifest path'),
    ('eval=a.csv', 'eval=a.csv', "the name 'eval' is the --eval_data_dir set's"),
    ('a=x.csv,b=y.csv,a=z.csv', 'a=z.csv', "the name 'a' is given twice"),
])
def test_bad_extra_eval_data_dirs_name_the_flag_and_the_item(value, item, problem):
    with pytest.raises(ValueError) as info:
        parse_extra_eval_sets(value)
    assert str(info.value) == (
        '--extra_eval_data_dirs: bad item %r: %s; give a comma-separated list of '
        'NAME=MANIFEST with distinct names' % (item, problem))


def test_json_round_trip():
    cfg = parse(['--batch_size=16', '--nosortagrad', '--wer_threshold=0.23', '--rnn_type=gru',
                 '--max_duration=16.7', '--window_ms=25'])
    text = cfg.dumps()
    restored = Config.from_json(json.loads(text))
    assert restored == cfg
    assert restored.dumps() == text
    assert restored.audio.num_bins == 201


def test_from_json_missing_group_uses_defaults():
    assert Config.from_json({'train': {'batch_size': 4}}) == \
        parse(['--batch_size=4'])


def test_from_json_unknown_key_is_named():
    data = Config().to_json()
    data['model']['num_heads'] = 8
    with pytest.raises(ValueError) as info:
        Config.from_json(data)
    assert str(info.value) == ("configuration group 'model' has unknown keys ['num_heads'] "
                               "(written by a newer gluon-ds2?)")


def test_from_json_unknown_group_is_named():
    data = Config().to_json()
    data['optimizer'] = {'name': 'adam'}
    with pytest.raises(ValueError) as info:
        Config.from_json(data)
    assert str(info.value) == ("configuration has unknown groups ['optimizer'] "
                               "(written by a newer gluon-ds2?)")


def test_explicit_flags_override_base_and_the_rest_keep_base_values():
    base = parse(['--batch_size=16', '--rnn_hidden_size=64', '--nosortagrad',
                  '--wer_threshold=0.3', '--model_dir=/tmp/run1'])
    cfg = parse(['--batch_size=32', '--sortagrad'], base=base)
    expected = base.to_json()
    expected['train']['batch_size'] = 32
    expected['data']['sortagrad'] = True
    assert cfg.to_json() == expected
    # A flag given with the default's value still overrides the base.
    cfg = parse(['--rnn_hidden_size=800'], base=base)
    assert cfg.model.rnn_hidden_size == 800
    assert cfg.train.batch_size == 16
    # The base itself is left alone.
    assert base.train.batch_size == 16


def test_groups_subset_adds_only_those_flags():
    parser = add_arguments(argparse.ArgumentParser(), groups=('model',))
    cfg = from_args(parser.parse_args(['--rnn_hidden_layers=2']))
    assert cfg.model.rnn_hidden_layers == 2
    with pytest.raises(SystemExit):
        parser.parse_args(['--batch_size=2'])
