"""Score a model on a manifest: decode, compare with the transcripts, report.

WER, CER and per-utterance results for ``evaluate.py`` (:func:`run`) and for
training's evaluations (:func:`evaluate`); the model comes from
:mod:`gluon_ds2.inference`.
"""
import logging
import os
import time

import mxnet as mx

from .atomic import atomic_write
from .batchify import make_dataloader
from .config import at_least
from .dataset import SpeechDataset, load_entries
from .devices import select_devices
from .inference import add_decoder_arguments, load_model, make_decoder, predict
from .metrics import ErrorRateAccumulator
from .precision import add_dtype_argument, setup_precision
from .progress import progress_bar
from .sampler import sorted_batches

logger = logging.getLogger(__name__)

__all__ = ['evaluate', 'score_manifests', 'write_results', 'format_report', 'add_arguments',
           'run']


def evaluate(net, loader, batches, entries, contexts, decode, progress=True):
    """Decode every batch of ``loader`` and compare with the transcripts.

    Parameters
    ----------
    net : DeepSpeech2
    loader : DataLoader
        Built over ``batches`` (lists of indices into ``entries``), in order.
    entries : list of dict
        From :func:`gluon_ds2.dataset.prepare_entries`.
    contexts : list of mx.Context
    decode : callable
        ``decode(logits, output_lengths) -> list of str``.

    Returns
    -------
    accumulator : ErrorRateAccumulator
        Edit counts over the decoded utterances (sum them across ranks).
    results : list of dict
        Per utterance: ``wav_filename``, ``duration``, ``reference``, ``hypothesis``,
        ``word_edits``, ``reference_words``, ``char_edits``, ``reference_chars``.
    stats : dict
        ``skipped`` (unreadable files), ``audio_seconds``, ``decode_seconds``.
    """
    accumulator = ErrorRateAccumulator()
    results, skipped = [], 0
    audio_seconds = 0.0
    start = time.time()
    bar = progress_bar(total=sum(len(b) for b in batches), desc='evaluating', unit='utt',
                       disable=not progress, leave=False)
    for indices, (features, feature_lengths, _, _, skipped_items) in zip(batches, loader):
        bar.update(len(indices))
        skipped += len(skipped_items)
        if features is None:
            continue
        bad = {item.wav_filename for item in skipped_items}
        indices = [i for i in indices if entries[i]['wav_filename'] not in bad]
        logits, output_lengths = predict(net, features, feature_lengths, contexts)
        for index, hypothesis in zip(indices, decode(logits, output_lengths)):
            entry = entries[index]
            reference = entry['transcript']
            counts = accumulator.add(reference, hypothesis)
            audio_seconds += entry['duration']
            results.append(dict(wav_filename=entry['wav_filename'], duration=entry['duration'],
                                reference=reference, hypothesis=hypothesis, **counts))
    mx.nd.waitall()
    bar.close()
    return accumulator, results, dict(skipped=skipped, audio_seconds=audio_seconds,
                                      decode_seconds=time.time() - start)


def score_manifests(net, manifests, vocab, audio_config, contexts, decode, batch_size,
                    num_workers=0):
    """:func:`evaluate` on every usable utterance of ``manifests``, shortest first.

    Returns
    -------
    (accumulator, results, stats) as :func:`evaluate`; ``stats['dropped']`` counts the rows
    that could not be scored (:func:`~gluon_ds2.dataset.load_entries`).
    """
    entries, dropped = load_entries(manifests, vocab, audio_config)
    if dropped:
        logger.warning('not scored: %s', dict(dropped))
    dataset = SpeechDataset(entries, audio_config, on_error='skip')
    batches = sorted_batches(dataset.lengths, batch_size)
    loader = make_dataloader(dataset, batches, num_workers=num_workers)
    accumulator, results, stats = evaluate(net, loader, batches, entries, contexts, decode)
    return accumulator, results, dict(stats, dropped=dict(dropped))


def add_arguments(parser):
    """evaluate.py's flags (beyond the reference, which evaluated inside training)."""
    parser.add_argument('checkpoint', help='a .ckpt file, or a model directory')
    parser.add_argument('--which', choices=('best', 'latest'), default='best',
                        help='with a model directory: its best (by eval WER; the default) or '
                             'latest checkpoint')
    parser.add_argument('--eval_data_dir', default=None,
                        help='manifest(s) to score, comma-separated (default: the eval '
                             'manifests recorded in the checkpoint)')
    parser.add_argument('--batch_size', type=at_least(1), default=16)
    parser.add_argument('--num_gpus', type=int, default=None,
                        help='0 = CPU, -1 = all GPUs (default: 1 if a GPU is visible)')
    parser.add_argument('--num_workers', type=int, default=1)
    add_dtype_argument(parser)
    add_decoder_arguments(parser)
    parser.add_argument('--output', default=None,
                        help='per-utterance results, .jsonl or .csv (default: '
                             '<model_dir>/eval/<checkpoint>-<manifest>.jsonl)')
    parser.add_argument('--worst', type=int, default=10,
                        help='how many of the worst utterances to print')
    return parser


def write_results(results, path):
    """Per-utterance results as JSON lines or CSV (by extension), atomically."""
    import pandas as pd
    frame = pd.DataFrame(results)

    def write(f):
        if path.endswith('.csv'):
            f.write(frame.to_csv(index=False).encode())
        else:
            f.write(frame.to_json(orient='records', lines=True).encode())
    atomic_write(path, write)


def format_report(result, stats, worst):
    """Text summary: corpus and per-utterance error rates, speed, worst utterances."""
    lines = [
        'utterances        %d (%.2f h of audio; %d unreadable skipped)'
        % (result['utterances'], stats['audio_seconds'] / 3600, stats['skipped']),
        'WER (corpus)      %.4f   total word edits / total reference words' % result['wer'],
        'CER (corpus)      %.4f   total char edits / total reference chars' % result['cer'],
        'WER (mean/utt)    %.4f   the reference implementation\'s figure' % result['mean_wer'],
        'CER (mean/utt)    %.4f' % result['mean_cer'],
        'decode time       %.1f s, real-time factor %.4f'
        % (stats['decode_seconds'], stats['decode_seconds'] / max(stats['audio_seconds'], 1e-9)),
    ]
    if worst:
        lines.append('worst utterances (by word errors, then char errors):')
        for r in worst:
            lines.append('  %s  (%d word / %d char edits)' % (r['wav_filename'], r['word_edits'],
                                                             r['char_edits']))
            lines.append('    REF: %s' % r['reference'])
            lines.append('    HYP: %s' % r['hypothesis'])
    return '\n'.join(lines)


def run(args):
    """Evaluate a checkpoint as ``evaluate.py`` was asked; returns (result, stats, output path)."""
    contexts = select_devices(num_gpus=args.num_gpus)
    setup_precision(args.dtype, contexts)  # before the model is built
    net, cfg, vocab, meta, path = load_model(args.checkpoint, contexts, which=args.which)
    manifests = args.eval_data_dir or cfg.data.eval_data_dir
    logger.info('checkpoint %s (epoch %s, step %s); scoring %s', path, meta.get('epoch'),
                meta.get('global_step'), manifests)
    decode = make_decoder(vocab, args.decoder, args.beam_width, args.lm, args.alpha, args.beta,
                          args.decode_processes)
    accumulator, results, stats = score_manifests(net, manifests, vocab, cfg.audio, contexts,
                                                  decode, args.batch_size, args.num_workers)
    result = accumulator.result()
    output = args.output or os.path.join(
        os.path.dirname(path), 'eval', '%s-%s.jsonl' % (
            os.path.splitext(os.path.basename(path))[0],
            '+'.join(os.path.splitext(os.path.basename(m))[0]
                     for m in str(manifests).split(','))))
    write_results(results, output)
    worst = sorted(results, key=lambda r: (-r['word_edits'], -r['char_edits']))[:args.worst]
    return result, stats, output, format_report(result, stats, worst)
