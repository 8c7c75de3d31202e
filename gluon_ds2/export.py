"""Export a trained model for deployment, and load it back without the training code.

    python -m gluon_ds2.export runs/demo exported/demo
    python -m gluon_ds2.export runs/demo/ckpt-00001200.ckpt exported/demo --which=latest
    python -m gluon_ds2.export runs/demo exported/demo-bf16 --dtype=bfloat16

writes, for the prefix ``exported/demo``::

    exported/demo-symbol.json    the network as an MXNet symbol (HybridBlock.export)
    exported/demo-0000.params    its parameters
    exported/demo-config.json    featurizer settings (AudioConfig fields), vocabulary, input names

:func:`load_exported` reads these three with ``gluon.SymbolBlock.imports`` and
needs only the featurizer, the vocabulary and greedy decoding from this
package: not the model's Python class, the checkpoint format or the training
configuration. The exported network takes the inputs of
:class:`~gluon_ds2.model.DeepSpeech2`: features (N, 1, T, bins) and their valid
frames (N,); :class:`ExportedModel` feeds it one utterance at a time. For
recordings longer than the model was trained on, cut windows first
(:func:`gluon_ds2.transcribe.split_windows`).

``--dtype=bfloat16`` exports the graph as ``--dtype`` runs it in evaluate and
transcribe: convolutions and the dense layer in bfloat16, with AMP's casts
written into the symbol, so the loader runs it so without ``mxnet.contrib.amp``.
Inputs, outputs and parameters stay float32.
"""
import argparse
import dataclasses
import json
import os
import sys
import warnings

import mxnet as mx
import numpy as np
from mxnet import gluon

from .atomic import atomic_write_text
from .config import AudioConfig
from .decoder import greedy_decode
from .featurizer import featurize, read_audio
from .precision import add_dtype_argument, setup_precision
from .vocab import Vocabulary

__all__ = ['EXPORT_FORMAT_VERSION', 'export_model', 'hybridize_for_inference',
           'load_exported', 'ExportedModel', 'main']

EXPORT_FORMAT_VERSION = 1
INPUT_NAMES = ('data0', 'data1')  # what HybridBlock.export calls a block's two inputs


def _paths(prefix):
    return dict(symbol='%s-symbol.json' % prefix, params='%s-0000.params' % prefix,
                config='%s-config.json' % prefix)


def hybridize_for_inference(net):
    """Hybridize a network that only runs forward passes: evaluation, transcription, export.

    With ``static_shape=True`` MXNet keeps the graph's operators from one call to the next,
    and with them the oneDNN RNN operator's copy of its weights in its own layout, made
    again only when the weights change; ``static_shape=False`` makes new operators on every
    call, which reorder every RNN weight each time. On 2 CPU cores a forward pass of one
    5 s utterance at the reference size took 0.31 s instead of 0.99 s, and 0.51 s instead
    of 1.12 s when the length changed on every call (medians of alternated calls; the
    README's model-speed section has the benchmark). Training keeps ``static_shape=False``:
    its weights change every step, and a static graph measured no faster there. The
    outputs are the same either way, and follow the parameters when they are loaded or set
    after the first call.
    """
    net.hybridize(static_alloc=True, static_shape=True)


def export_model(net, audio_config, vocab, prefix, source=None, dtype='float32'):
    """Write ``prefix``-symbol.json, -0000.params and -config.json.

    Parameters
    ----------
    net : DeepSpeech2
        With its parameters loaded (:func:`gluon_ds2.inference.load_model`).
    audio_config : AudioConfig
        The featurizer settings the model was trained with.
    vocab : Vocabulary
    prefix : str
        Path prefix of the three files; its directory is created.
    source : dict or None
        Provenance (checkpoint path, step, ...) stored in the config file.
    dtype : str
        The arithmetic type ``net`` was built for (:func:`~gluon_ds2.precision.setup_precision`
        before building it), recorded in the config file.

    Returns
    -------
    dict
        The paths written, by kind: ``symbol``, ``params``, ``config``.
    """
    paths = _paths(prefix)
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    ctx = next(iter(net.collect_params().values())).list_ctx()[0]
    # export() writes the graph cached by a forward pass; one second of silence builds it.
    features = featurize(np.zeros(audio_config.sample_rate), audio_config)
    hybridize_for_inference(net)
    net(mx.nd.array(features[np.newaxis, np.newaxis], ctx=ctx),
        mx.nd.array([len(features)], ctx=ctx))
    # The graph and parameters go to temporary names, are fsynced and renamed into place, the
    # config last: a kill leaves every file whole, the previous export's or this one's.
    staging = os.path.join(os.path.dirname(os.path.abspath(prefix)),
                           '.%s.export-%d' % (os.path.basename(prefix), os.getpid()))
    staged = _paths(staging)
    try:
        net.export(staging, remove_amp_cast=False)  # a reduced-precision graph keeps its casts
        for kind in ('symbol', 'params'):
            with open(staged[kind], 'rb') as f:
                os.fsync(f.fileno())
            os.replace(staged[kind], paths[kind])
    finally:
        for path in staged.values():
            if os.path.exists(path):
                os.remove(path)
    config = dict(format_version=EXPORT_FORMAT_VERSION,
                  audio=dataclasses.asdict(audio_config), vocabulary=vocab.to_list(),
                  inputs=dict(zip(INPUT_NAMES, ['features (N, 1, T, %d) float32, normalized '
                                                'spectrogram frames' % audio_config.num_bins,
                                                'feature_lengths (N,) valid frames'])),
                  outputs='logits (N, T\', %d), the CTC blank last' % vocab.num_classes,
                  dtype=dtype,
                  symbol_file=os.path.basename(paths['symbol']),
                  params_file=os.path.basename(paths['params']),
                  mxnet_version=mx.__version__, source=source or {})
    atomic_write_text(paths['config'], json.dumps(config, indent=2, sort_keys=True))
    return paths


class ExportedModel:
    """An exported network with its featurizer settings and vocabulary.

    Attributes
    ----------
    net : gluon.SymbolBlock
    audio_config : AudioConfig
    vocab : Vocabulary
    """

    def __init__(self, net, audio_config, vocab, ctx):
        self.net = net
        self.audio_config = audio_config
        self.vocab = vocab
        self.ctx = ctx

    def logits(self, samples):
        """Mono samples at ``audio_config.sample_rate`` -> logits (T', C) float32 numpy."""
        features = featurize(samples, self.audio_config)  # (T, bins)
        logits = self.net(mx.nd.array(features[np.newaxis, np.newaxis], ctx=self.ctx),
                          mx.nd.array([len(features)], ctx=self.ctx))
        return logits[0].asnumpy()

    def transcribe(self, samples):
        """Greedy transcript of one utterance's samples."""
        logits = self.logits(samples)
        return greedy_decode(logits, len(logits), self.vocab)

    def transcribe_file(self, path):
        """Greedy transcript of an audio file (any rate or channel count; resampled, downmixed)."""
        return self.transcribe(read_audio(path, self.audio_config.sample_rate, convert=True))


def load_exported(prefix, ctx=None):
    """Load what :func:`export_model` wrote under ``prefix``.

    Raises
    ------
    ValueError
        A missing file, or a config file of another export format version.
    """
    ctx = ctx or mx.cpu()
    paths = _paths(prefix)
    for kind in ('symbol', 'params', 'config'):
        path = paths[kind]
        if not os.path.isfile(path):
            raise ValueError('%s: exported model file not found (the %s of the prefix %s)'
                             % (path, kind, prefix))
    with open(paths['config']) as f:
        config = json.load(f)
    if config.get('format_version') != EXPORT_FORMAT_VERSION:
        raise ValueError('%s: export format version %r, this gluon-ds2 reads version %d'
                         % (paths['config'], config.get('format_version'),
                            EXPORT_FORMAT_VERSION))
    with warnings.catch_warnings():
        # imports() cannot infer the inputs' dtype from the symbol and warns; float32 is right.
        warnings.filterwarnings('ignore', message='Cannot decide type')
        net = gluon.SymbolBlock.imports(paths['symbol'], list(config['inputs']), paths['params'],
                                        ctx=ctx)
    hybridize_for_inference(net)
    return ExportedModel(net, AudioConfig(**config['audio']), Vocabulary(config['vocabulary']),
                         ctx)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('checkpoint', help='a .ckpt file, or a model directory')
    parser.add_argument('prefix', help='path prefix of the exported files')
    parser.add_argument('--which', choices=('best', 'latest'), default='best',
                        help='with a model directory: its best (by eval WER; the default) or '
                             'latest checkpoint')
    add_dtype_argument(parser)
    args = parser.parse_args(argv)
    # Exporting reads a checkpoint, which is the training side's business; importing it
    # here keeps load_exported's imports free of it.
    from .inference import load_model
    try:
        setup_precision(args.dtype, [mx.cpu()])  # before the model is built
        net, cfg, vocab, meta, path = load_model(args.checkpoint, [mx.cpu()], which=args.which)
    except (ValueError, RuntimeError) as error:
        print('export: error: %s' % error, file=sys.stderr)
        return 1
    paths = export_model(net, cfg.audio, vocab, args.prefix, source=dict(
        checkpoint=os.path.abspath(path), global_step=meta.get('global_step'),
        epoch=meta.get('epoch'), wer=meta.get('wer')), dtype=args.dtype)
    for kind in ('symbol', 'params', 'config'):
        print(paths[kind])
    return 0


if __name__ == '__main__':
    sys.exit(main())
