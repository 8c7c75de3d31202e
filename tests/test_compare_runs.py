"""scripts/compare_runs.py: run directories in, a table, JSON and a plot out."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT, load_script

SCRIPT = str(REPO_ROOT / 'scripts' / 'compare_runs.py')


def write_results(path, rng, utterances, references=None):
    """A per-utterance results file like evaluate.py's; returns its records."""
    records = []
    for index in range(utterances):
        chars, words = int(rng.integers(10, 80)), int(rng.integers(2, 15))
        records.append(dict(wav_filename='%d.wav' % index, duration=1.0,
                            reference=(references[index] if references else 'words'),
                            hypothesis='whatever', char_edits=int(rng.integers(0, chars)),
                            reference_chars=chars, word_edits=int(rng.integers(0, words + 3)),
                            reference_words=words))
    path.write_text(''.join(json.dumps(r) + '\n' for r in records))
    return records


def make_run(directory, rng, splits, epochs=3):
    """A run directory: results of each split, greedy and LM, and a metrics log."""
    directory.mkdir()
    results = {}
    for split in splits:
        results[split] = {decoder: write_results(directory / ('%s_%s.jsonl' % (split, decoder)),
                                                 rng, 7) for decoder in ('greedy', 'lm')}
    metrics = [dict(kind='train', step=1, loss=3.0, time=0.0)]
    for epoch in range(1, epochs + 1):
        for split in ('eval', 'dev_ood'):
            metrics.append(dict(kind='eval', split=split, epoch=epoch, step=10 * epoch,
                                cer=float(rng.random()), wer=float(rng.random()), time=epoch))
    (directory / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in metrics))
    return results, metrics


def cer(records):
    """Corpus CER in float64, written here apart from the script."""
    return (np.sum([r['char_edits'] for r in records], dtype=np.float64)
            / np.sum([r['reference_chars'] for r in records], dtype=np.float64))


def test_table_json_and_plot_match_an_independent_computation(tmp_path):
    rng = np.random.default_rng(0)
    first, first_metrics = make_run(tmp_path / 'one', rng,
                                    ('test_ood', 'test', 'test_flite', 'extra'))
    second, _ = make_run(tmp_path / 'two', rng, ('test', 'test_ood'))
    out = tmp_path / 'out' / 'cmp'
    result = subprocess.run([sys.executable, SCRIPT, 'base=%s' % (tmp_path / 'one'),
                             str(tmp_path / 'two'), '--out', str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    table = out.with_suffix('.md').read_text()
    assert table == result.stdout.rstrip('\n') + '\n'
    lines = table.splitlines()
    # run.sh's split order, then the others; the sum over the splits both runs have
    assert lines[0].startswith('| run | test | test_ood | test_flite | extra | '
                               'sum of greedy CER (test, test_ood) |')
    base = lines[2].split(' | ')
    assert base[0] == '| base'
    for column, split in enumerate(('test', 'test_ood', 'test_flite', 'extra'), 1):
        assert base[column] == '%.3f (%.3f)' % (cer(first[split]['greedy']),
                                               cer(first[split]['lm']))
    assert float(base[5]) == pytest.approx(cer(first['test']['greedy'])
                                           + cer(first['test_ood']['greedy']), abs=5e-4)
    dev_curve = ', '.join('%.3f' % r['cer'] for r in first_metrics
                          if r.get('split') == 'eval')
    assert base[6] == dev_curve
    two = lines[3].split(' | ')
    assert two[0] == '| two' and two[3:5] == ['-', '-']
    saved = json.loads(out.with_suffix('.json').read_text())
    assert [run['label'] for run in saved['runs']] == ['base', 'two']
    wer = (sum(r['word_edits'] for r in second['test']['lm'])
           / sum(r['reference_words'] for r in second['test']['lm']))
    assert saved['runs'][1]['tests']['test']['lm']['wer'] == pytest.approx(wer, rel=1e-12)
    assert out.with_suffix('.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_greedy_cer_by_text_source(tmp_path):
    module = load_script('data/make_demo_corpus.py')
    references = [module.transcript_of(s) for s in module.source_sentences('docstrings')[:3]]
    references += [module.transcript_of(s) for s in module.source_sentences('scripture')[:2]]
    references += ['words no source has zzz']
    run = tmp_path / 'run'
    run.mkdir()
    rng = np.random.default_rng(1)
    records = write_results(run / 'test_greedy.jsonl', rng, 6, references)
    write_results(run / 'test_ood_greedy.jsonl', rng, 6)  # out of domain: not split by source
    compare = load_script('scripts/compare_runs.py')
    assert compare.main([str(run), '--by_source', '--out', str(tmp_path / 'cmp')]) == 0
    by_source = json.loads((tmp_path / 'cmp.json').read_text())['by_source']['run']
    assert list(by_source) == ['test']
    expected = {'docstrings': records[:3], 'scripture': records[3:5], 'unknown': records[5:]}
    assert by_source['test'] == {name: [pytest.approx(cer(part)),
                                        sum(r['reference_chars'] for r in part)]
                                 for name, part in expected.items()}


def test_bad_runs_are_named(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    for args, message in (([str(tmp_path / 'missing')], '%s: no such run directory'
                           % (tmp_path / 'missing')),
                          ([str(empty)], '%s: no <split>_greedy.jsonl' % empty)):
        result = subprocess.run([sys.executable, SCRIPT] + args + ['--out', str(tmp_path / 'x')],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    (empty / 'test_greedy.jsonl').write_text('{"char_edits": 1, "reference_chars": 4, '
                                             '"word_edits": 1, "reference_words": 1}\nnot json\n')
    result = subprocess.run([sys.executable, SCRIPT, str(empty), '--out', str(tmp_path / 'x')],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert '%s, line 2: not a per-utterance result of evaluate.py' % (
        empty / 'test_greedy.jsonl') in result.stderr
    assert not (tmp_path / 'x.md').exists()
