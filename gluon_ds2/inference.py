"""A checkpoint alone -> model; padded features -> logits; logits -> text.

The one loading path of ``evaluate.py``, ``transcribe.py``, model export and
the LM tuning script: the checkpoint's config and vocabulary rebuild the model,
so none of them takes model flags. Training predicts with :func:`predict` too.
"""
import argparse
import functools
import os

import numpy as np
from mxnet import gluon

from .checkpoint import CheckpointError, load_into, read_checkpoint, read_index, resolve_checkpoint
from .config import Config, at_least
from .decoder import BeamSearchDecoder, greedy_decode_batch
from .export import hybridize_for_inference
from .model import DeepSpeech2, output_length
from .vocab import Vocabulary

__all__ = ['load_model', 'predict', 'make_decoder', 'add_decoder_arguments']


def load_model(checkpoint_path, contexts, which='best'):
    """Rebuild a model from a checkpoint alone.

    Parameters
    ----------
    checkpoint_path : str
        A ``.ckpt`` file, or a model directory (then its ``which`` checkpoint:
        'best' by eval WER, falling back to 'latest' if none was evaluated).
    contexts : list of mx.Context

    Returns
    -------
    (net, cfg, vocab, meta, path)
    """
    if os.path.isdir(checkpoint_path) and which == 'best' and \
            not read_index(checkpoint_path).get('best'):
        which = 'latest'
    path = resolve_checkpoint(checkpoint_path, which)
    meta, archive = read_checkpoint(path)
    try:
        cfg = Config.from_json(meta['config'])
        vocab = Vocabulary(meta['vocabulary'])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError('%s: checkpoint metadata is incomplete or from an incompatible '
                              'version (%s)' % (path, err)) from None
    net = DeepSpeech2.from_config(cfg.model, vocab.num_classes, cfg.audio.num_bins)
    load_into(path, archive, net, ctx=contexts)
    hybridize_for_inference(net)
    return net, cfg, vocab, meta, path


def predict(net, features, feature_lengths, contexts):
    """Logits (N, T', C) float32 numpy and output lengths (N,) for one padded batch.

    The batch is split across ``contexts`` (devices of this process).
    """
    # A batch smaller than the device count would leave some devices an empty slice.
    contexts = contexts[:features.shape[0]]
    parts = gluon.utils.split_and_load(features, contexts, even_split=False)
    part_lengths = gluon.utils.split_and_load(feature_lengths, contexts, even_split=False)
    outputs = [net(x, lengths) for x, lengths in zip(parts, part_lengths)]
    max_steps = max(o.shape[1] for o in outputs)
    logits = np.concatenate([np.pad(o.asnumpy(), ((0, 0), (0, max_steps - o.shape[1]), (0, 0)))
                             for o in outputs])
    return logits, output_length(feature_lengths.asnumpy().astype(np.int64))


DECODERS = ('greedy', 'beam')


def decoder_list(text):
    """``--decoder`` of evaluate.py: one decoder or several, comma-separated, in order."""
    names = [name.strip() for name in str(text).split(',')]
    unknown = [name for name in names if name not in DECODERS]
    if unknown or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            'expected %s, or both comma-separated, each once; got %r'
            % (' or '.join(DECODERS), text))
    return names


def add_decoder_arguments(parser, several=False):
    """The decoding flags, shared by evaluate.py and transcribe.py.

    ``several``: ``--decoder`` takes a comma-separated list (evaluate.py scores each on the
    same forward passes); its value is then a list.
    """
    group = parser.add_argument_group('decoding')
    if several:
        group.add_argument('--decoder', type=decoder_list, default=['greedy'],
                           help='greedy, beam, or greedy,beam: both on the same forward '
                                'passes, one report and one results file each (default: '
                                'greedy)')
    else:
        group.add_argument('--decoder', choices=DECODERS, default='greedy')
    group.add_argument('--beam_width', type=at_least(1), default=32)
    group.add_argument('--lm', default=None, help='KenLM model (ARPA or binary) for beam search')
    group.add_argument('--alpha', type=float, default=0.5, help='LM weight')
    group.add_argument('--beta', type=float, default=1.0, help='word insertion bonus')
    group.add_argument('--decode_processes', type=at_least(0), default=0,
                       help='processes that run beam search side by side, each with its own '
                            'copy of the LM (default 0: one per core, fewer if copies of an ARPA '
                            'model would not fit in memory; 1: none)')
    return parser


def make_decoder(vocab, decoder='greedy', beam_width=32, lm=None, alpha=0.5, beta=1.0,
                 processes=1):
    """``decode(logits, output_lengths) -> list of str`` for the chosen decoder.

    ``processes``: beam search's worker processes (:class:`BeamSearchDecoder`).
    """
    if decoder == 'greedy':
        if lm:
            raise ValueError('--lm needs --decoder=beam')
        return functools.partial(greedy_decode_batch, vocab=vocab)
    beam = BeamSearchDecoder(vocab, beam_width=beam_width, lm_path=lm, alpha=alpha, beta=beta,
                             processes=processes)
    return beam.decode_batch
