"""
    python scripts/tune_lm.py runs/demo --lm=runs/demo/lm.arpa \\
        --eval_data_dir=data/demo_data/dev/LibriSpeech/dev.csv \\
        --alphas=0,0.25,0.5,1,2 --betas=0,0.5,1,2 --plot=runs/demo/tune_lm.png

Grid search of the beam search's language-model weight ``alpha`` and word
bonus ``beta`` on a dev manifest. The model's logits are computed once, by the
same code as ``evaluate.py`` (which also gives the greedy WER); then every
(alpha, beta) pair decodes them with pyctcdecode and the KenLM model. Prints a
table of corpus WER (rows alpha, columns beta) and the best pair, writes all
results as JSON, and optionally draws a heat map of the grid.

Use the best pair with ``evaluate.py``/``transcribe.py --decoder=beam --lm=...
--alpha=A --beta=B``. The LM is loaded once (and once in each of the
``--decode_processes`` workers that share the decoding); a KenLM binary
(``build_binary``) loads faster than ARPA text.
"""
import argparse
import json
import logging
import os
import sys
import time

import numpy as np

from gluon_ds2.atomic import atomic_save_figure, atomic_write_text
from gluon_ds2.batchify import make_dataloader
from gluon_ds2.config import at_least
from gluon_ds2.dataset import SpeechDataset, load_entries
from gluon_ds2.decoder import BeamSearchDecoder, greedy_decode_batch
from gluon_ds2.devices import select_devices
from gluon_ds2.inference import load_model
from gluon_ds2.metrics import ErrorRateAccumulator
from gluon_ds2.progress import progress_bar
from gluon_ds2.sampler import sorted_batches
from gluon_ds2.scoring import evaluate

logger = logging.getLogger('tune_lm')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('checkpoint', help='a .ckpt file, or a model directory')
    parser.add_argument('--lm', required=True, help='KenLM model (ARPA or binary)')
    parser.add_argument('--which', choices=('best', 'latest'), default='best',
                        help='with a model directory: its best or latest checkpoint')
    parser.add_argument('--eval_data_dir', default=None,
                        help='dev manifest(s), comma-separated (default: the eval manifests '
                             'recorded in the checkpoint)')
    parser.add_argument('--alphas', type=_float_list, default=[0, 0.25, 0.5, 0.75, 1, 1.5, 2],
                        help='LM weights to try, comma-separated')
    parser.add_argument('--betas', type=_float_list, default=[0, 0.5, 1, 1.5, 2, 3],
                        help='word insertion bonuses to try, comma-separated')
    parser.add_argument('--beam_width', type=at_least(1), default=32)
    parser.add_argument('--decode_processes', type=at_least(0), default=0,
                        help='processes that run beam search side by side, each with its own '
                             'copy of the LM (default 0: one per core, fewer if copies of an ARPA '
                             'model would not fit in memory; 1: none)')
    parser.add_argument('--batch_size', type=at_least(1), default=16)
    parser.add_argument('--num_gpus', type=int, default=None,
                        help='0 = CPU, -1 = all GPUs (default: 1 if a GPU is visible)')
    parser.add_argument('--num_workers', type=int, default=1)
    parser.add_argument('--output', default=None,
                        help='results JSON (default: <model_dir>/eval/tune_lm-<manifest>.json)')
    parser.add_argument('--plot', default=None, help='heat map of the WER grid (PNG)')
    return parser.parse_args(argv)


def _float_list(text):
    try:
        values = [float(v) for v in text.split(',') if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError('expected comma-separated numbers, got %r' % text) \
            from None
    if not values:
        raise argparse.ArgumentTypeError('expected at least one number')
    return values


def compute_logits(net, entries, audio_config, vocab, contexts, batch_size, num_workers):
    """Logits of every readable utterance, once.

    Returns
    -------
    batches : list of (logits (N, T', C), output_lengths (N,))
    references : list of str
        In the order of the batches' utterances.
    greedy : dict
        The greedy decoder's corpus rates (:meth:`ErrorRateAccumulator.result`).
    """
    dataset = SpeechDataset(entries, audio_config, on_error='skip')
    order = sorted_batches(dataset.lengths, batch_size)
    loader = make_dataloader(dataset, order, num_workers=num_workers)
    batches = []

    def keep_and_decode_greedy(logits, output_lengths):
        batches.append((logits, output_lengths))
        return greedy_decode_batch(logits, output_lengths, vocab)

    accumulator, results, _ = evaluate(net, loader, order, entries, contexts,
                                       keep_and_decode_greedy)
    return batches, [r['reference'] for r in results], accumulator.result()


def score_grid(batches, references, vocab, lm, alphas, betas, beam_width, processes=1):
    """Corpus WER/CER of beam search for every (alpha, beta): a list of dicts.

    One decoder (and, with ``processes`` > 1, one set of worker processes) serves
    the whole grid: the LM is loaded once and only its weights change.
    """
    decoder = BeamSearchDecoder(vocab, beam_width=beam_width, lm_path=lm, processes=processes)
    # Every utterance in one call, so the workers stay busy to the end of each pair.
    logits, lengths = _stack(batches)
    grid = []
    for alpha, beta in progress_bar([(a, b) for a in alphas for b in betas], desc='grid',
                                    unit='pair'):
        decoder.set_weights(alpha, beta)
        hypotheses = decoder.decode_batch(logits, lengths)
        accumulator = ErrorRateAccumulator()
        for reference, hypothesis in zip(references, hypotheses):
            accumulator.add(reference, hypothesis)
        result = accumulator.result()
        grid.append(dict(alpha=alpha, beta=beta, wer=result['wer'], cer=result['cer']))
    decoder.close()
    return grid


def _stack(batches):
    """Batches of (N, T, C) logits and (N,) lengths -> one batch, padded to the longest T."""
    steps = max(logits.shape[1] for logits, _ in batches)
    logits = np.concatenate([np.pad(l, ((0, 0), (0, steps - l.shape[1]), (0, 0)))
                             for l, _ in batches])
    return logits, np.concatenate([lengths for _, lengths in batches])


def best_pair(grid):
    """Lowest WER; ties go to the lower CER, then the smaller alpha and beta."""
    return min(grid, key=lambda r: (r['wer'], r['cer'], r['alpha'], r['beta']))


def format_table(grid, alphas, betas, best):
    """Corpus WER, rows alpha and columns beta; the best pair starred."""
    wer = {(r['alpha'], r['beta']): r['wer'] for r in grid}
    lines = ['%-11s' % 'WER' + ''.join('%12s' % ('beta=%g' % b) for b in betas)]
    for alpha in alphas:
        cells = ['%11.4f%s' % (wer[alpha, beta],
                               '*' if (alpha, beta) == (best['alpha'], best['beta']) else ' ')
                 for beta in betas]
        lines.append(('%-11s' % ('alpha=%g' % alpha) + ''.join(cells)).rstrip())
    return '\n'.join(lines)


def plot_grid(grid, alphas, betas, best, path):
    """Heat map of WER over the grid, each cell labelled; the best pair outlined."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    wer = np.array([[next(r['wer'] for r in grid if r['alpha'] == a and r['beta'] == b)
                     for b in betas] for a in alphas])
    fig, ax = plt.subplots(figsize=(1.2 * len(betas) + 2, 0.6 * len(alphas) + 1.5))
    image = ax.imshow(wer, cmap='viridis_r', aspect='auto')
    for i in range(len(alphas)):
        for j in range(len(betas)):
            ax.text(j, i, '%.3f' % wer[i, j], ha='center', va='center', fontsize=8,
                    color='white' if wer[i, j] > wer.mean() else 'black')
    i, j = alphas.index(best['alpha']), betas.index(best['beta'])
    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor='red', lw=2))
    ax.set_xticks(range(len(betas)), ['%g' % b for b in betas])
    ax.set_yticks(range(len(alphas)), ['%g' % a for a in alphas])
    ax.set_xlabel('beta (word bonus)')
    ax.set_ylabel('alpha (LM weight)')
    ax.set_title('WER, beam search with LM')
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    try:
        contexts = select_devices(num_gpus=args.num_gpus)
        net, cfg, vocab, meta, path = load_model(args.checkpoint, contexts, which=args.which)
        # Built once here so that a missing pyctcdecode/kenlm or LM file fails before any work.
        BeamSearchDecoder(vocab, beam_width=args.beam_width, lm_path=args.lm)
    except (ValueError, RuntimeError) as error:
        print('tune_lm.py: error: %s' % error, file=sys.stderr)
        return 1
    # pyctcdecode has logged its notes on the LM once; it would repeat them for every pair.
    logging.getLogger('pyctcdecode').setLevel(logging.ERROR)
    manifests = args.eval_data_dir or cfg.data.eval_data_dir
    entries, dropped = load_entries(manifests, vocab, cfg.audio)
    if dropped:
        logger.warning('not scored: %s', dict(dropped))
    start = time.time()
    batches, references, greedy = compute_logits(net, entries, cfg.audio, vocab, contexts,
                                                 args.batch_size, args.num_workers)
    logits_seconds = time.time() - start
    grid = score_grid(batches, references, vocab, args.lm, args.alphas, args.betas,
                      args.beam_width, args.decode_processes)
    best = best_pair(grid)
    print('checkpoint %s, %d utterances of %s' % (path, len(references), manifests))
    print('greedy (no LM): WER %.4f CER %.4f' % (greedy['wer'], greedy['cer']))
    print(format_table(grid, args.alphas, args.betas, best))
    print('best: alpha=%g beta=%g WER %.4f CER %.4f'
          % (best['alpha'], best['beta'], best['wer'], best['cer']))
    output = args.output or os.path.join(
        os.path.dirname(path), 'eval', 'tune_lm-%s.json' % '+'.join(
            os.path.splitext(os.path.basename(m))[0] for m in str(manifests).split(',')))
    atomic_write_text(output, json.dumps(dict(
        checkpoint=path, manifests=manifests, lm=args.lm, beam_width=args.beam_width,
        utterances=len(references), alphas=args.alphas, betas=args.betas, greedy=greedy,
        grid=grid, best=best, logits_seconds=logits_seconds,
        decode_seconds=time.time() - start - logits_seconds), indent=2) + '\n')
    print('results: %s' % output)
    if args.plot:
        plot_grid(grid, args.alphas, args.betas, best, args.plot)
        print('heat map: %s' % args.plot)
    return 0


if __name__ == '__main__':
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    sys.exit(main())
