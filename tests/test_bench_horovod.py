"""scripts/bench_horovod.py: throughput from the metrics log's windows after the warm-up, and
three real training runs (one of them two horovodrun ranks) that each train the global batch
every step."""
import json
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, load_script

SCRIPT = REPO_ROOT / 'scripts' / 'bench_horovod.py'


def test_throughput_counts_only_the_windows_after_the_warmup(tmp_path):
    bench = load_script('scripts/bench_horovod.py')
    # (step, end time, audio s/s, utterances/s) of each window; the first two are warm-up.
    log = [(2, 10.0, 1.0, 1.0), (4, 20.0, 5.0, 2.0), (6, 22.0, 40.0, 8.0), (8, 26.0, 20.0, 4.0)]
    path = tmp_path / 'metrics.jsonl'
    path.write_text(''.join(json.dumps(dict(kind='train', step=step, time=time,
                                            audio_s_per_s=audio, utterances_per_s=utts)) + '\n'
                            for step, time, audio, utts in log)
                    + json.dumps(dict(kind='eval', step=8, time=30.0, wer=0.5)) + '\n')
    measured = bench.measured_throughput(str(path), warmup=4, log_every=2)
    # Windows ending at steps 6 (2 s) and 8 (4 s): 80 + 80 audio s, 16 + 16 utterances.
    assert [w['step'] for w in measured['windows']] == [6, 8]
    assert measured['audio_s_per_s'] == pytest.approx(160 / 6)
    assert measured['utterances_per_s'] == pytest.approx(32 / 6)
    assert measured['seconds_per_step'] == pytest.approx(6 / 4)


@pytest.mark.slow
def test_every_configuration_trains_the_global_batch_each_step(demo_manifests, tmp_path):
    out = tmp_path / 'results' / 'horovod'
    result = subprocess.run(
        [sys.executable, str(SCRIPT), '--train_data_dir=%s' % demo_manifests['train'],
         '--eval_data_dir=%s' % demo_manifests['dev'], '--batch_size=4', '--steps=2',
         '--warmup=2', '--log_every=1', '--model_flags=--rnn_hidden_size=16 '
         '--rnn_hidden_layers=1 --conv_filters=4 --max_freq=4000', '--out=%s' % out],
        capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.with_suffix('.json').read_text())
    rows = report['configurations']
    assert [(r['processes'], r['threads']) for r in rows] == [(1, 1), (1, 2), (2, 1)]
    for row in rows:
        (run,) = row['runs']
        assert [w['step'] for w in run['windows']] == [3, 4]
        # Utterances per second times seconds per step: the global batch, on two ranks too.
        assert row['utterances_per_s'] * row['seconds_per_step'] == pytest.approx(4, rel=1e-9)
        assert row['speedup'] == pytest.approx(row['audio_s_per_s'] / rows[0]['audio_s_per_s'])
        assert row['efficiency'] == pytest.approx(row['speedup'] / (row['processes']
                                                                    * row['threads']))
    assert report['horovod_vs_threads'] == pytest.approx(rows[2]['audio_s_per_s']
                                                         / rows[1]['audio_s_per_s'])
    table = out.with_suffix('.md').read_text().splitlines()
    assert [line.split(' | ')[0] for line in table[2:5]] == [
        '| 1 process x 1 thread', '| 1 process x 2 threads', '| 2 processes x 1 thread']
