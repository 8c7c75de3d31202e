"""scripts/gpu_check.py as a user runs it; here, with no GPU, on CPU contexts."""
import json
import os
import subprocess
import sys

import mxnet as mx
import pytest

from conftest import REPO_ROOT
from gluon_ds2.precision import cpu_runs_bfloat16

CHECKS = ('devices agree', 'local gradient reduction', 'mixed precision step',
          'horovodrun -np 2 allreduce', 'throughput')


@pytest.mark.slow
@pytest.mark.skipif(mx.context.num_gpus() > 0, reason='the CPU form of the report')
def test_gpu_check_on_cpu_reports_every_check_and_says_no_gpu(tmp_path):
    results_path = tmp_path / 'gpu_check.json'
    result = subprocess.run([sys.executable, str(REPO_ROOT / 'scripts' / 'gpu_check.py'),
                             '--json', str(results_path)], cwd=str(REPO_ROOT),
                            capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stdout + result.stderr
    report = result.stdout
    assert report.startswith('## gluon-ds2 gpu_check\n')
    assert '| mxnet | %s (CPU build;' % mx.__version__ in report
    assert 'No GPU was found: the checks ran on CPU contexts' in report
    for name in CHECKS:
        if name == 'mixed precision step' and not cpu_runs_bfloat16():
            assert '| %s | SKIP | this CPU has no bfloat16 kernels' % name in report
        else:
            assert '| %s | PASS |' % name in report, name
    assert report.rstrip().endswith('Result: all checks passed')

    results = json.loads(results_path.read_text())
    assert results['gpus'] == 0 and results['passed']
    agree = results['checks']['devices agree']['figures']
    assert all(0 <= agree[key] <= 1e-3 for key in ('logits', 'loss', 'gradient'))
    ranks = results['checks']['horovodrun -np 2 allreduce']['figures']['ranks']
    assert sorted(r['rank'] for r in ranks) == [0, 1]
    assert all(r['min'] == r['max'] == (1 + 2) / 2 for r in ranks)  # ranks' 1 and 2, averaged
    amp = results['checks']['mixed precision step']['figures']
    if cpu_runs_bfloat16():
        assert amp['dtype'] == 'bfloat16' and amp['finite'] and amp['moved'] == amp['params']
    throughput = results['checks']['throughput']['figures']
    assert throughput['utterances_per_s'] == pytest.approx(
        throughput['batch_size'] / throughput['step_s'])
