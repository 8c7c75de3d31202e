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

__all__ = ['evaluate', 'evaluate_decoders', 'score_manifests', 'score_decoders',
           'write_results', 'format_report', 'add_arguments', 'run']


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
    return evaluate_decoders(net, loader, batches, entries, contexts, {None: decode},
                             progress)[None]


def evaluate_decoders(net, loader, batches, entries, contexts, decoders, progress=True):
    """:func:`evaluate` for several decoders at once, on one forward pass per batch.

    ``decoders`` maps names to ``decode`` callables; returns ``{name: (accumulator, results,
    stats)}``. Each ``stats['decode_seconds']`` is the time the loading and forward passes
    took plus that decoder's own.
    """
    accumulators = {name: ErrorRateAccumulator() for name in decoders}
    results = {name: [] for name in decoders}
    own_seconds = dict.fromkeys(decoders, 0.0)
    skipped = 0
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
        audio_seconds += sum(entries[i]['duration'] for i in indices)
        for name, decode in decoders.items():
            decode_start = time.time()
            hypotheses = decode(logits, output_lengths)
            own_seconds[name] += time.time() - decode_start
            for index, hypothesis in zip(indices, hypotheses):
                entry = entries[index]
                reference = entry['transcript']
                counts = accumulators[name].add(reference, hypothesis)
                results[name].append(dict(
                    wav_filename=entry['wav_filename'], duration=entry['duration'],
                    reference=reference, hypothesis=hypothesis, **counts))
    mx.nd.waitall()
    bar.close()
    shared_seconds = time.time() - start - sum(own_seconds.values())
    return {name: (accumulators[name], results[name],
                   dict(skipped=skipped, audio_seconds=audio_seconds,
                        decode_seconds=shared_seconds + own_seconds[name]))
            for name in decoders}


def score_manifests(net, manifests, vocab, audio_config, contexts, decode, batch_size,
                    num_workers=0):
    """:func:`evaluate` on every usable utterance of ``manifests``, shortest first.

    Returns
    -------
    (accumulator, results, stats) as :func:`evaluate`; ``stats['dropped']`` counts the rows
    that could not be scored (:func:`~gluon_ds2.dataset.load_entries`).
    """
    return score_decoders(net, manifests, vocab, audio_config, contexts, {None: decode},
                          batch_size, num_workers)[None]


def score_decoders(net, manifests, vocab, audio_config, contexts, decoders, batch_size,
                   num_workers=0):
    """:func:`score_manifests` for several decoders on one forward pass per batch
    (:func:`evaluate_decoders`); returns ``{name: (accumulator, results, stats)}``."""
    entries, dropped = load_entries(manifests, vocab, audio_config)
    if dropped:
        logger.warning('not scored: %s', dict(dropped))
    dataset = SpeechDataset(entries, audio_config, on_error='skip')
    batches = sorted_batches(dataset.lengths, batch_size)
    loader = make_dataloader(dataset, batches, num_workers=num_workers)
    scored = evaluate_decoders(net, loader, batches, entries, contexts, decoders)
    return {name: (accumulator, results, dict(stats, dropped=dict(dropped)))
            for name, (accumulator, results, stats) in scored.items()}


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
    add_decoder_arguments(parser, several=True)
    parser.add_argument('--output', default=None,
                        help='per-utterance results, .jsonl or .csv; with several decoders, '
                             'one path each, comma-separated in --decoder\'s order (default: '
                             '<model_dir>/eval/<checkpoint>-<manifest>.jsonl, with '
                             '-<decoder> before .jsonl when there are several)')
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


def describe_decoder(args, name):
    """One line naming a decoder and its settings, for the report."""
    if name == 'greedy':
        return 'greedy'
    return 'beam search (width %d)%s' % (args.beam_width, ', LM %s, alpha %g, beta %g' % (
        args.lm, args.alpha, args.beta) if args.lm else ', no LM')


def output_paths(args, names, checkpoint_path, manifests):
    """Where each decoder's per-utterance results go (``--output``, or the default)."""
    if args.output:
        paths = [path.strip() for path in args.output.split(',')]
        if len(paths) != len(names):
            raise ValueError('--output names %d file(s) for %d decoder(s) (%s): give one path '
                             'per decoder, comma-separated in the same order'
                             % (len(paths), len(names), ','.join(names)))
        return dict(zip(names, paths))
    stem = os.path.join(os.path.dirname(checkpoint_path), 'eval', '%s-%s' % (
        os.path.splitext(os.path.basename(checkpoint_path))[0],
        '+'.join(os.path.splitext(os.path.basename(m))[0] for m in str(manifests).split(','))))
    if len(names) == 1:
        return {names[0]: stem + '.jsonl'}
    return {name: '%s-%s.jsonl' % (stem, name) for name in names}


def run(args):
    """Evaluate a checkpoint as ``evaluate.py`` was asked.

    Returns a list with one ``(decoder, result, stats, output path, report)`` per decoder of
    ``args.decoder`` (a list of names, or one name), in its order; the decoders share the
    forward passes.
    """
    names = [args.decoder] if isinstance(args.decoder, str) else list(args.decoder)
    if args.lm and 'beam' not in names:
        raise ValueError('--lm needs --decoder=beam')
    if args.output:
        output_paths(args, names, None, None)  # the count, before the model loads
    contexts = select_devices(num_gpus=args.num_gpus)
    setup_precision(args.dtype, contexts)  # before the model is built
    net, cfg, vocab, meta, path = load_model(args.checkpoint, contexts, which=args.which)
    manifests = args.eval_data_dir or cfg.data.eval_data_dir
    outputs = output_paths(args, names, path, manifests)
    logger.info('checkpoint %s (epoch %s, step %s); scoring %s', path, meta.get('epoch'),
                meta.get('global_step'), manifests)
    decoders = {name: make_decoder(vocab, name, args.beam_width,
                                   args.lm if name == 'beam' else None, args.alpha, args.beta,
                                   args.decode_processes)
                for name in names}
    scored = score_decoders(net, manifests, vocab, cfg.audio, contexts, decoders,
                            args.batch_size, args.num_workers)
    reports = []
    for name in names:
        accumulator, results, stats = scored[name]
        result = accumulator.result()
        write_results(results, outputs[name])
        worst = sorted(results, key=lambda r: (-r['word_edits'], -r['char_edits']))[:args.worst]
        reports.append((name, result, stats, outputs[name], format_report(result, stats, worst)))
    return reports
