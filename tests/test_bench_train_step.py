"""scripts/bench_train_step.py: the train.py loops train on batches padded to their multiple,
the fixed step on the mean padded length, this tree and a baseline revision on the same
batches; the ratios are those of the rows."""
import json
import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO_ROOT, load_script

SCRIPT = REPO_ROOT / 'scripts' / 'bench_train_step.py'


@pytest.mark.slow
def test_loops_fixed_step_and_baseline_report_what_they_trained(demo_manifests, tmp_path):
    manifest = tmp_path / 'train.csv'  # enough batches for the warm-up and two rounds
    train = pd.read_csv(demo_manifests['train'], sep='\t')
    pd.concat([train] * 5, ignore_index=True).to_csv(manifest, sep='\t', index=False)
    out = tmp_path / 'results' / 'train_step'
    result = subprocess.run(
        [sys.executable, str(SCRIPT), '--train_data_dir=%s' % manifest, '--rounds=2',
         '--steps=1', '--threads=1', '--num_workers=0', '--pad_frames_to=32,8',
         '--baseline_rev=HEAD', '--out=%s' % out],
        capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.with_suffix('.json').read_text())
    rows = {r['name']: r for r in report['rows']}
    assert list(rows) == ['train.py', 'train.py, pad 8', 'fixed', 'baseline', 'ours']
    info = report['info']
    batch = info['batch_size']
    assert '--batch_size=%d' % batch in load_script('scripts/bench_train_step.py').DEMO_FLAGS
    for name, multiple in (('train.py', 32), ('train.py, pad 8', 8)):
        for r in rows[name]['rounds']:
            # `batch` utterances a step, each padded to the batch's length, a multiple of the
            # padding multiple (10 ms frames): padded seconds come in whole multiples.
            assert round(r['padded_s'] * 100) % (batch * multiple) == 0
            assert 0 < r['audio_s'] <= r['padded_s']
    # The two loops draw the same utterances, so they train on the same audio.
    assert [r['audio_s'] for r in rows['train.py']['rounds']] == pytest.approx(
        [r['audio_s'] for r in rows['train.py, pad 8']['rounds']])
    for r in rows['fixed']['rounds']:
        assert r['audio_s'] == r['padded_s'] == pytest.approx(batch * info['fixed_frames'] / 100)
    # The baseline revision (here the same code) and this tree train on the same batches.
    assert [r['audio_s'] for r in rows['baseline']['rounds']] == \
        [r['audio_s'] for r in rows['ours']['rounds']]
    ratios = report['ratios']
    assert ratios["train.py / fixed, audio s/s (the issue's target: >= 0.95)"] == \
        pytest.approx(rows['train.py']['audio_s_per_s'] / rows['fixed']['audio_s_per_s'])
    assert ratios['this tree / HEAD, audio s/s on the same preloaded batches'] == \
        pytest.approx(rows['ours']['audio_s_per_s'] / rows['baseline']['audio_s_per_s'])
    assert out.with_suffix('.png').read_bytes()[:4] == b'\x89PNG'
