"""Export to symbol + params + config JSON, and the loader that needs no training code."""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pandas as pd
import pytest

from conftest import REPO_ROOT, needs_bfloat16
from gluon_ds2.config import AudioConfig
from gluon_ds2.decoder import greedy_decode
from gluon_ds2.inference import load_model
from gluon_ds2.export import export_model, load_exported
from gluon_ds2.featurizer import featurize, read_audio
from gluon_ds2.model import DeepSpeech2
from gluon_ds2.vocab import Vocabulary

# What a deployment must not need: the model's class, checkpoints, training and data code.
TRAINING_MODULES = ('gluon_ds2.model', 'gluon_ds2.checkpoint', 'gluon_ds2.resume',
                    'gluon_ds2.training', 'gluon_ds2.inference', 'gluon_ds2.scoring',
                    'gluon_ds2.dataset', 'gluon_ds2.manifest', 'gluon_ds2.sampler',
                    'gluon_ds2.batchify', 'gluon_ds2.loss', 'gluon_ds2.distributed',
                    'gluon_ds2.transcribe')
ENV = dict(os.environ, OMP_NUM_THREADS='1')


def transcribe_exported(prefix, paths, unimportable):
    """Transcribe ``paths`` with :func:`load_exported` in a fresh Python process where the
    modules ``unimportable`` cannot be imported; returns the finished process, whose
    stdout has ``path<TAB>transcript`` lines as ``transcribe.py`` prints them."""
    program = (
        'import sys\n'
        'for name in %r:\n'
        '    sys.modules[name] = None  # import fails\n'
        'from gluon_ds2.export import load_exported\n'
        'model = load_exported(sys.argv[1])\n'
        'for path in sys.argv[2:]:\n'
        '    print("%%s\\t%%s" %% (path, " ".join(model.transcribe_file(path).split())))\n'
        % (tuple(unimportable),))
    return subprocess.run([sys.executable, '-c', program, str(prefix)] + list(paths),
                          capture_output=True, text=True, env=ENV)


@pytest.fixture(scope='module')
def exported(trained_model_dir, tmp_path_factory):
    """The trained model exported by ``python -m gluon_ds2.export``: its prefix."""
    prefix = tmp_path_factory.mktemp('exported') / 'deploy' / 'demo'
    result = subprocess.run([sys.executable, '-m', 'gluon_ds2.export', str(trained_model_dir),
                             str(prefix)], capture_output=True, text=True, env=ENV, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['%s-symbol.json' % prefix, '%s-0000.params' % prefix,
                                      '%s-config.json' % prefix]
    return prefix


@pytest.fixture(scope='module')
def dev_paths(demo_manifests):
    return pd.read_csv(demo_manifests['dev'], sep='\t').wav_filename.tolist()


@pytest.mark.slow
def test_config_describes_features_and_vocabulary(exported, trained_model_dir):
    _, cfg, vocab, meta, path = load_model(str(trained_model_dir), [mx.cpu()])
    config = json.loads(open('%s-config.json' % exported).read())
    assert config['audio'] == dict(sample_rate=16000, window_ms=20, stride_ms=10, max_freq=4000)
    assert config['audio'] == meta['config']['audio']
    assert config['vocabulary'] == meta['vocabulary']
    assert sorted(config['inputs']) == ['data0', 'data1']
    assert config['source']['checkpoint'] == os.path.abspath(path)


@pytest.mark.slow
def test_round_trip_gives_the_checkpoint_logits_and_transcripts(exported, trained_model_dir,
                                                                 dev_paths):
    net, cfg, vocab, _, _ = load_model(str(trained_model_dir), [mx.cpu()])
    model = load_exported(str(exported))
    assert model.vocab.tokens == vocab.tokens and model.audio_config == cfg.audio
    for path in dev_paths:
        samples = read_audio(path, cfg.audio.sample_rate)
        features = featurize(samples, cfg.audio)
        expected = net(mx.nd.array(features[np.newaxis, np.newaxis]),
                       mx.nd.array([len(features)]))[0].asnumpy()
        logits = model.logits(samples)
        np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-5)
        assert model.transcribe_file(path) == greedy_decode(expected, len(expected), vocab)


@pytest.mark.slow
def test_loader_runs_without_the_training_code(exported, trained_model_dir, dev_paths):
    """In a process where the training modules cannot be imported, the exported model
    transcribes the dev set exactly as transcribe.py does with the checkpoint."""
    result = transcribe_exported(exported, dev_paths, TRAINING_MODULES)
    assert result.returncode == 0, result.stderr
    expected = subprocess.run([sys.executable, str(REPO_ROOT / 'transcribe.py'),
                               str(trained_model_dir)] + dev_paths,
                              capture_output=True, text=True, env=ENV)
    assert expected.returncode == 0, expected.stderr
    assert result.stdout == expected.stdout
    assert any(line.split('\t')[1] for line in result.stdout.splitlines())


@pytest.mark.slow
def test_loader_errors_name_the_file(exported, tmp_path):
    with pytest.raises(ValueError, match='%s-symbol.json: exported model file not found'
                       % (tmp_path / 'nothing')):
        load_exported(str(tmp_path / 'nothing'))
    prefix = tmp_path / 'copy'
    for suffix in ('-symbol.json', '-0000.params'):
        os.link('%s%s' % (exported, suffix), '%s%s' % (prefix, suffix))
    config = json.loads(open('%s-config.json' % exported).read())
    config['format_version'] = 99
    with open('%s-config.json' % prefix, 'w') as f:
        json.dump(config, f)
    with pytest.raises(ValueError, match='copy-config.json: export format version 99, this '
                                         'gluon-ds2 reads version 1'):
        load_exported(str(prefix))


def test_an_export_that_fails_midway_leaves_the_previous_one_whole(tmp_path):
    audio, vocab = AudioConfig(), Vocabulary.from_file()
    net = DeepSpeech2(vocab.num_classes, num_bins=audio.num_bins, rnn_hidden_size=8,
                      rnn_hidden_layers=1, conv_filters=2)
    net.initialize(mx.init.Xavier())
    prefix = str(tmp_path / 'demo')
    paths = export_model(net, audio, vocab, prefix)
    before = {kind: open(path, 'rb').read() for kind, path in paths.items()}
    assert sorted(os.listdir(tmp_path)) == ['demo-0000.params', 'demo-config.json',
                                            'demo-symbol.json']

    net.output.bias.set_data(mx.nd.arange(vocab.num_classes))  # a new model to export
    write_graph = net.export

    def fail_after_the_graph(path, **kwargs):  # MXNet wrote the graph, then the disk filled
        write_graph(path, **kwargs)
        os.truncate(path + '-0000.params', 100)
        raise OSError('No space left on device')

    net.export = fail_after_the_graph
    with pytest.raises(OSError, match='No space left'):
        export_model(net, audio, vocab, prefix)
    assert {kind: open(path, 'rb').read() for kind, path in paths.items()} == before
    assert sorted(os.listdir(tmp_path)) == ['demo-0000.params', 'demo-config.json',
                                            'demo-symbol.json']  # nothing staged is left

    del net.export
    export_model(net, audio, vocab, prefix)  # the new export replaces the old one
    biases = [p.data().asnumpy() for name, p in load_exported(prefix).net.collect_params().items()
              if name.endswith('dense0_bias')]
    assert len(biases) == 1 and np.array_equal(biases[0], np.arange(vocab.num_classes))


def test_export_cli_reports_a_bad_checkpoint(tmp_path):
    result = subprocess.run([sys.executable, '-m', 'gluon_ds2.export',
                             str(tmp_path / 'none.ckpt'), str(tmp_path / 'out')],
                            capture_output=True, text=True, env=ENV, cwd=REPO_ROOT)
    assert result.returncode == 1
    assert result.stderr.strip() == 'export: error: %s: checkpoint not found' % (
        tmp_path / 'none.ckpt')
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@needs_bfloat16
def test_bfloat16_export_runs_as_transcribe_does_without_amp(trained_model_dir, dev_paths,
                                                             tmp_path):
    """``--dtype=bfloat16`` writes AMP's casts into the symbol: a process that has neither the
    training code nor ``mxnet.contrib.amp`` transcribes as ``transcribe.py --dtype=bfloat16``."""
    prefix = tmp_path / 'bf16' / 'demo'
    result = subprocess.run([sys.executable, '-m', 'gluon_ds2.export', str(trained_model_dir),
                             str(prefix), '--dtype=bfloat16'], capture_output=True, text=True,
                            env=ENV, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert json.loads(open('%s-config.json' % prefix).read())['dtype'] == 'bfloat16'
    nodes = json.loads(open('%s-symbol.json' % prefix).read())['nodes']
    assert any(n['op'] == 'amp_cast' and n['attrs']['dtype'] == 'bfloat16' for n in nodes)

    exported = transcribe_exported(prefix, dev_paths, TRAINING_MODULES + ('mxnet.contrib.amp',))
    assert exported.returncode == 0, exported.stderr
    expected = subprocess.run([sys.executable, str(REPO_ROOT / 'transcribe.py'),
                               str(trained_model_dir), '--dtype=bfloat16'] + dev_paths,
                              capture_output=True, text=True, env=ENV)
    assert expected.returncode == 0, expected.stderr
    assert exported.stdout == expected.stdout

    # The arithmetic is bfloat16's: close to the float32 checkpoint's logits, not equal.
    net, cfg, _, _, _ = load_model(str(trained_model_dir), [mx.cpu()])
    samples = read_audio(dev_paths[0], cfg.audio.sample_rate)
    features = featurize(samples, cfg.audio)
    full = net(mx.nd.array(features[np.newaxis, np.newaxis]),
               mx.nd.array([len(features)]))[0].asnumpy()
    reduced = load_exported(str(prefix)).logits(samples)
    assert not np.array_equal(reduced, full)
    np.testing.assert_allclose(reduced, full, rtol=0, atol=0.05 * np.abs(full).max())
