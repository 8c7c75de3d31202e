"""scripts/tune_lm.py: the alpha/beta grid, its best pair, and agreement with evaluate.py."""
import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO_ROOT, evaluate_records, load_script
from gluon_ds2.lm import write_arpa

pytest.importorskip('pyctcdecode')
pytest.importorskip('kenlm')

ENV = dict(os.environ, OMP_NUM_THREADS='1')
SCRIPT = REPO_ROOT / 'scripts' / 'tune_lm.py'


@pytest.fixture(scope='module')
def lm(demo_manifests, tmp_path_factory):
    """A trigram ARPA model of the demo train transcripts."""
    path = tmp_path_factory.mktemp('lm') / 'train.arpa'
    write_arpa(pd.read_csv(demo_manifests['train'], sep='\t').transcript, str(path), order=3)
    return path


def evaluate_wer(model_dir, manifest, output, *flags):
    """Corpus WER of evaluate.py, summed here from its per-utterance results."""
    records = evaluate_records(model_dir, manifest, output, '--batch_size=16', *flags)
    return sum(r['word_edits'] for r in records) / sum(r['reference_words'] for r in records)


@pytest.mark.slow
def test_grid_search_against_evaluate(trained_model_dir, demo_manifests, lm, tmp_path):
    output, plot = tmp_path / 'tune.json', tmp_path / 'tune.png'
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(trained_model_dir), '--lm=%s' % lm,
         '--eval_data_dir=%s' % demo_manifests['dev'], '--alphas=0,0.5,1,2', '--betas=0,1',
         '--beam_width=8', '--batch_size=16', '--num_workers=0', '--output=%s' % output,
         '--plot=%s' % plot], capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr
    report = json.loads(output.read_text())
    grid = {(r['alpha'], r['beta']): r['wer'] for r in report['grid']}
    assert sorted(grid) == [(a, b) for a in (0, 0.5, 1, 2) for b in (0, 1)]
    best = report['best']
    assert best['wer'] == min(grid.values()) == grid[best['alpha'], best['beta']]
    assert report['utterances'] == len(pd.read_csv(demo_manifests['dev'], sep='\t'))

    lines = result.stdout.splitlines()
    assert lines[2].split() == ['WER', 'beta=0', 'beta=1']
    for line, alpha in zip(lines[3:7], (0, 0.5, 1, 2)):
        row = [float(cell.rstrip('*')) for cell in line.split()[1:]]
        assert line.startswith('alpha=%g ' % alpha)
        assert row == pytest.approx([grid[alpha, 0], grid[alpha, 1]], abs=5e-5)
    assert 'best: alpha=%g beta=%g WER %.4f' % (best['alpha'], best['beta'], best['wer']) \
        in result.stdout
    assert plot.read_bytes().startswith(b'\x89PNG')

    # evaluate.py, decoding the same manifest on its own, agrees at alpha = 0 (the LM's
    # weight off) and at the best pair; so the best is no worse than no LM weight.
    no_weight = evaluate_wer(trained_model_dir, demo_manifests['dev'], tmp_path / 'a0.jsonl',
                             '--decoder=beam', '--lm=%s' % lm, '--beam_width=8', '--alpha=0',
                             '--beta=0')
    assert grid[0, 0] == pytest.approx(no_weight, abs=1e-12)
    assert best['wer'] <= no_weight
    assert best['wer'] == pytest.approx(evaluate_wer(
        trained_model_dir, demo_manifests['dev'], tmp_path / 'best.jsonl', '--decoder=beam',
        '--lm=%s' % lm, '--beam_width=8', '--alpha=%r' % best['alpha'],
        '--beta=%r' % best['beta']), abs=1e-12)
    # The greedy WER from the same logits is the one training measured for this checkpoint.
    index = json.loads((trained_model_dir / 'checkpoints.json').read_text())
    trained = {e['name']: e['wer'] for e in index['checkpoints']}
    assert report['greedy']['wer'] == pytest.approx(trained[index['best']], abs=1e-12)


@pytest.mark.slow
def test_missing_lm_is_a_clear_error(trained_model_dir, tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), str(trained_model_dir),
                             '--lm=%s' % (tmp_path / 'none.arpa')],
                            capture_output=True, text=True, env=ENV)
    assert result.returncode == 1
    assert 'tune_lm.py: error: %s: language model file not found' % (tmp_path / 'none.arpa') \
        in result.stderr


def test_best_pair_breaks_ties_by_cer_then_smaller_weights():
    tune_lm = load_script('scripts/tune_lm.py')
    grid = [dict(alpha=0.0, beta=0.0, wer=0.5, cer=0.3),
            dict(alpha=0.0, beta=1.0, wer=0.6, cer=0.1),
            dict(alpha=1.0, beta=0.0, wer=0.5, cer=0.2),
            dict(alpha=1.0, beta=1.0, wer=0.5, cer=0.2)]
    # The lowest WER three times; of those, CER 0.2 twice; of those, the smaller beta.
    best = tune_lm.best_pair(grid)
    assert best == grid[2]
    assert tune_lm.format_table(grid, [0.0, 1.0], [0.0, 1.0], best).splitlines() == [
        'WER              beta=0      beta=1',
        'alpha=0         0.5000      0.6000',
        'alpha=1         0.5000*     0.5000']
