"""scripts/bench_precision.py: float32 and bfloat16 timed round by round; the table and the
speed-ups are the medians of the raw timings it records."""
import json
import os
import statistics
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, needs_bfloat16

SCRIPT = REPO_ROOT / 'scripts' / 'bench_precision.py'


@pytest.mark.slow
@needs_bfloat16
def test_speedups_are_medians_of_the_alternated_rounds(tmp_path):
    out = tmp_path / 'results' / 'precision'
    result = subprocess.run([sys.executable, str(SCRIPT), '--dtype=bfloat16', '--sizes=demo',
                             '--rounds=3', '--seconds=1', '--out=%s' % out],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.with_suffix('.json').read_text())
    assert report['dtype'] == 'bfloat16'
    rows = report['rows']
    assert [(r['size'], r['mode'], r['batch']) for r in rows] == [('demo', 'train', 8),
                                                                ('demo', 'infer', 8)]
    table = out.with_suffix('.md').read_text().splitlines()
    assert table[0] == '| size | mode | batch | float32 s | bfloat16 s | speed-up |'
    for row, line in zip(rows, table[2:4]):
        assert sorted(row['times']) == ['bfloat16', 'float32']
        assert [len(t) for t in row['times'].values()] == [3, 3]
        assert row['float32_s'] == statistics.median(row['times']['float32'])
        assert row['reduced_s'] == statistics.median(row['times']['bfloat16'])
        assert row['speedup'] == pytest.approx(row['float32_s'] / row['reduced_s'])
        assert line == '| demo | %s | 8 | %.3f | %.3f | **%.2f** |' % (
            row['mode'], row['float32_s'], row['reduced_s'], row['speedup'])
    assert table[-1] == 'Median of 3 alternated rounds; 1 s utterances; %d CPU cores.' % (
        os.cpu_count())
