"""scripts/ablation.py: each row reaches train.py with its own flags, its CERs agree with
evaluate.py's per-utterance records, and a finished row is kept, not trained again."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, evaluate_records
from gluon_ds2.checkpoint import read_checkpoint, read_index

ENV = dict(os.environ, OMP_NUM_THREADS='1')
SCRIPT = REPO_ROOT / 'scripts' / 'ablation.py'


def run_ablation(demo_manifests, tmp_path, rows):
    return subprocess.run(
        [sys.executable, str(SCRIPT), '--rows=%s' % rows, '--train_epochs=1',
         '--train_data_dir=%s' % demo_manifests['train'], '--dev_in=%s' % demo_manifests['dev'],
         '--dev_ood=%s' % demo_manifests['dev_ood'], '--runs_dir=%s' % (tmp_path / 'runs'),
         '--out=%s' % (tmp_path / 'results' / 'ablation'), '--lock=%s' % (tmp_path / 'lock')],
        capture_output=True, text=True, env=ENV, cwd=tmp_path)


def corpus_cer(model_dir, manifest, output):
    """Corpus CER of the row's latest checkpoint, summed here from evaluate.py's records."""
    records = evaluate_records(model_dir, manifest, output, '--which=latest')
    return sum(r['char_edits'] for r in records) / sum(r['reference_chars'] for r in records)


def saved_config(model_dir):
    meta, _ = read_checkpoint(str(model_dir / read_index(str(model_dir))['latest']))
    return {key: value for section in meta['config'].values() for key, value in section.items()}


@pytest.mark.slow
def test_rows_train_with_their_flags_and_resume(demo_manifests, tmp_path):
    result = run_ablation(demo_manifests, tmp_path, 'specaugment,none')
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / 'results' / 'ablation.json').read_text())
    rows = {r['row']: r for r in report['rows']}
    assert list(rows) == ['specaugment', 'none']

    # The flags of each row are what the saved model was trained with.
    runs = tmp_path / 'runs'
    assert (saved_config(runs / 'specaugment')['freq_masks'],
            saved_config(runs / 'none')['freq_masks']) == (2, 0)

    # Both CERs of each row are what evaluate.py finds for its latest checkpoint.
    for name, row in rows.items():
        for split, key in (('dev', 'in_domain_cer'), ('dev_ood', 'out_of_domain_cer')):
            expected = corpus_cer(runs / name, demo_manifests[split],
                                  tmp_path / ('%s_%s.jsonl' % (name, split)))
            assert row[key] == pytest.approx(expected, abs=5e-5), (name, split)

    # The table gives the change against the SpecAugment baseline in CER points.
    table = (tmp_path / 'results' / 'ablation.md').read_text()
    none_line = next(line for line in table.splitlines() if line.startswith('| none |'))
    delta = 100 * (rows['none']['in_domain_cer'] - rows['specaugment']['in_domain_cer'])
    assert '%.1f %% (%+.1f)' % (100 * rows['none']['in_domain_cer'], delta) in none_line

    # A second run keeps the measured rows and trains nothing.
    metrics = runs / 'none' / 'metrics.jsonl'
    before = metrics.stat().st_mtime_ns
    again = run_ablation(demo_manifests, tmp_path, 'specaugment,none')
    assert again.returncode == 0, again.stderr
    assert again.stdout.count('already measured, kept') == 2
    assert metrics.stat().st_mtime_ns == before
    assert json.loads((tmp_path / 'results' / 'ablation.json').read_text()) == report

    # A row not yet measured whose model directory exists is refused, not trained over.
    (runs / 'speed').mkdir()
    refused = run_ablation(demo_manifests, tmp_path, 'speed')
    assert refused.returncode != 0
    assert '%s exists: remove it' % (runs / 'speed') in refused.stderr


def test_unknown_row_and_missing_manifest_are_named(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), '--rows=none,echo'],
                            capture_output=True, text=True, env=ENV, cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown rows ['echo']" in result.stderr
    missing = tmp_path / 'nowhere.csv'
    result = subprocess.run([sys.executable, str(SCRIPT), '--dev_ood=%s' % missing],
                            capture_output=True, text=True, env=ENV, cwd=tmp_path)
    assert result.returncode == 2
    assert '--dev_ood=%s: no such manifest' % missing in result.stderr
