"""Compare finished runs side by side: test error rates, dev curves, a table and a plot.

    python scripts/compare_runs.py recipe=runs/demo text_off=runs/abl_text1 \
        voices_off=runs/abl_voice1 --by_source --out scripts/results/data_ablation

Each argument is a model directory that ``run.sh`` (or ``evaluate.py --output``) filled, with
an optional ``label=`` in front. From each it reads:

* ``<split>_greedy.jsonl`` and ``<split>_lm.jsonl``, the per-utterance results of the test
  splits: corpus-level CER and WER are recomputed from their edit counts (total edits over
  total reference characters or words, as ``evaluate.py`` reports them);
* ``metrics.jsonl``: each eval split's CER after every epoch (the dev curves).

It prints and writes ``<out>.md`` (the tables), ``<out>.json`` and ``<out>.png`` (greedy CER
per test split, and the dev curves). The last column adds the greedy CERs of the test splits
that every run has, the figure the demo recipe is chosen by. With ``--by_source``, it also
splits each run's greedy CER on the in-domain test splits by the demo corpus's text source
(``data/make_demo_corpus.py``), found from each reference transcript.
"""
import argparse
import glob
import importlib.util
import json
import os
import sys

from gluon_ds2.atomic import atomic_save_figure, atomic_write_text
from gluon_ds2.curves import eval_records_by_split, read_metrics

# The order run.sh scores its test splits in; other splits follow, sorted.
KNOWN_SPLITS = ('test', 'test_ood', 'test_flite', 'test_ood_flite')
DECODERS = ('greedy', 'lm')


def parse_run(text):
    """``label=dir`` or ``dir`` (labelled by its base name) -> (label, dir)."""
    label, sep, path = text.partition('=')
    if not sep:
        label, path = os.path.basename(os.path.normpath(text)), text
    if not os.path.isdir(path):
        raise ValueError('%s: no such run directory' % path)
    return label, path


COUNTS = ('char_edits', 'reference_chars', 'word_edits', 'reference_words')


def read_results(path):
    """The records of one per-utterance results file of evaluate.py (JSON lines)."""
    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            try:
                record = json.loads(line)
            except ValueError as error:
                problem = str(error)
            else:
                problem = ', '.join('no %s' % key for key in COUNTS if key not in record)
            if problem:
                raise ValueError('%s, line %d: not a per-utterance result of evaluate.py (%s)'
                                 % (path, number, problem))
            records.append(record)
    if not records:
        raise ValueError('%s: no utterances' % path)
    return records


def corpus_rates(records):
    """CER, WER and utterances of per-utterance results: total edits over total length."""
    totals = {key: sum(record[key] for record in records) for key in COUNTS}
    return dict(cer=totals['char_edits'] / totals['reference_chars'],
                wer=totals['word_edits'] / max(totals['reference_words'], 1),
                utterances=len(records))


def read_run(label, path):
    """Test error rates by split and decoder, and the dev curves, of one run."""
    tests = {}
    for name in sorted(glob.glob(os.path.join(path, '*_greedy.jsonl'))):
        split = os.path.basename(name)[:-len('_greedy.jsonl')]
        files = {decoder: os.path.join(path, '%s_%s.jsonl' % (split, decoder))
                 for decoder in DECODERS}
        tests[split] = {decoder: corpus_rates(read_results(file))
                        for decoder, file in files.items() if os.path.exists(file)}
    if not tests:
        raise ValueError('%s: no <split>_greedy.jsonl; score the run first (run.sh does, or '
                         'evaluate.py --output)' % path)
    curves = {split: [dict(epoch=r['epoch'], cer=r['cer'], wer=r['wer']) for r in records]
              for split, records in eval_records_by_split(
                  read_metrics(os.path.join(path, 'metrics.jsonl'))).items()}
    return dict(label=label, path=path, tests=tests, curves=curves)


def ordered_splits(runs):
    """Test splits of any run: run.sh's order first, then the rest, sorted."""
    found = {split for run in runs for split in run['tests']}
    return [s for s in KNOWN_SPLITS if s in found] + sorted(found - set(KNOWN_SPLITS))


def source_of_transcripts():
    """{transcript: text source} of the demo corpus (data/make_demo_corpus.py)."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data',
                        'make_demo_corpus.py')
    spec = importlib.util.spec_from_file_location('make_demo_corpus', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sources = {}
    for name in module.SOURCES:
        for sentence in module.source_sentences(name):
            sources.setdefault(module.transcript_of(sentence), name)
    return sources


def cer_by_source(records, sources):
    """{source: (CER, reference characters)} of per-utterance results."""
    by_source = {}
    for record in records:
        by_source.setdefault(sources.get(record['reference'], 'unknown'), []).append(record)
    return {source: (corpus_rates(part)['cer'], sum(r['reference_chars'] for r in part))
            for source, part in sorted(by_source.items())}


def markdown(runs, splits, by_source=None):
    """The comparison table (and the by-source one) in Markdown."""
    common = [s for s in splits if all('greedy' in run['tests'].get(s, {}) for run in runs)]
    curve_splits = []
    for run in runs:
        curve_splits += [s for s in run['curves'] if s not in curve_splits]
    lines = ['| run | %s | sum of greedy CER (%s) | %s |' % (
        ' | '.join(splits), ', '.join(common),
        ' | '.join('%s CER by epoch' % s for s in curve_splits)),
        '|---|%s---:|%s' % ('---|' * len(splits), '---|' * len(curve_splits))]
    for run in runs:
        cells = []
        for split in splits:
            rates = run['tests'].get(split, {})
            cell = '%.3f' % rates['greedy']['cer'] if 'greedy' in rates else '-'
            if 'lm' in rates:
                cell += ' (%.3f)' % rates['lm']['cer']
            cells.append(cell)
        total = sum(run['tests'][s]['greedy']['cer'] for s in common)
        curves = [', '.join('%.3f' % r['cer'] for r in run['curves'].get(s, [])) or '-'
                  for s in curve_splits]
        lines.append('| %s | %s | %.3f | %s |' % (run['label'], ' | '.join(cells), total,
                                                  ' | '.join(curves)))
    lines += ['', 'Greedy CER of each test split (beam search + LM in brackets), corpus level; '
              'dev curves from each run\'s metrics.jsonl (`eval` is the --eval_data_dir set).']
    if by_source:
        names = sorted({name for run in by_source.values() for split in run.values()
                        for name in split})
        lines += ['', '| run | split | %s |' % ' | '.join(names),
                  '|---|---|%s' % ('---:|' * len(names))]
        for label, per_split in by_source.items():
            for split, per_name in per_split.items():
                lines.append('| %s | %s | %s |' % (label, split, ' | '.join(
                    '%.3f' % per_name[n][0] if n in per_name else '-' for n in names)))
        lines += ['', 'Greedy CER by the text source of each reference transcript.']
    return '\n'.join(lines) + '\n'


def plot(runs, splits, path):
    """Greedy CER per test split (bars) and the dev CER curves, one colour per run."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax_test, ax_dev) = plt.subplots(1, 2, figsize=(12, 4))
    width = 0.8 / len(runs)
    for number, run in enumerate(runs):
        xs = [i + (number - (len(runs) - 1) / 2) * width for i in range(len(splits))]
        ys = [run['tests'].get(s, {}).get('greedy', {}).get('cer', 0.0) for s in splits]
        ax_test.bar(xs, ys, width, color='C%d' % number, label=run['label'])
        for x, y in zip(xs, ys):
            ax_test.annotate('%.3f' % y, (x, y), textcoords='offset points', xytext=(0, 2),
                             ha='center', fontsize=6)
        for style, (split, records) in zip(('s-', 'o--', '^:', 'v-.'), run['curves'].items()):
            ax_dev.plot([r['epoch'] for r in records], [r['cer'] for r in records], style,
                        color='C%d' % number, label='%s %s' % (run['label'], split))
    ax_test.set_xticks(range(len(splits)))
    ax_test.set_xticklabels(splits, fontsize=8)
    ax_test.set(ylabel='greedy CER (corpus level)', title='test splits', ylim=(0, None))
    ax_test.legend(fontsize=8)
    ax_dev.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax_dev.set(xlabel='epoch', ylabel='CER', title='dev splits by epoch', ylim=(0, None))
    ax_dev.grid(alpha=0.3)
    if any(run['curves'] for run in runs):
        ax_dev.legend(fontsize=7)
    fig.tight_layout()
    try:
        atomic_save_figure(fig, path)
    finally:
        plt.close(fig)


def main(argv=None):
    """Entry point: read the runs, write and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('runs', nargs='+', metavar='[LABEL=]RUN_DIR')
    parser.add_argument('--by_source', action='store_true',
                        help='also split the in-domain test splits\' greedy CER by the demo '
                             'corpus\'s text source')
    parser.add_argument('--out', default='scripts/results/compare_runs',
                        help='writes <out>.md, <out>.json and <out>.png')
    args = parser.parse_args(argv)
    try:
        runs = [read_run(*parse_run(text)) for text in args.runs]
    except ValueError as error:
        parser.error(str(error))
    splits = ordered_splits(runs)
    by_source = None
    if args.by_source:
        sources = source_of_transcripts()
        by_source = {run['label']: {split: cer_by_source(read_results(os.path.join(
            run['path'], '%s_greedy.jsonl' % split)), sources)
            for split in splits if split in run['tests'] and 'ood' not in split}
            for run in runs}
    table = markdown(runs, splits, by_source)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    atomic_write_text(args.out + '.md', table)
    atomic_write_text(args.out + '.json', json.dumps(dict(
        command=' '.join(['python scripts/compare_runs.py'] + (argv or sys.argv[1:])),
        runs=runs, by_source=by_source), indent=1) + '\n')
    plot(runs, splits, args.out + '.png')
    print(table)
    return 0


if __name__ == '__main__':
    sys.exit(main())
