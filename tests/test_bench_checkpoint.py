"""scripts/bench_checkpoint.py: a reference-size checkpoint is the parameters and Adam's two
moments, nothing else of size; the table holds the medians of the rounds it records; the
model directories it makes are removed."""
import json
import os
import statistics
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

SCRIPT = REPO_ROOT / 'scripts' / 'bench_checkpoint.py'


def reference_weights(filters=32, bins=161, hidden=800, layers=5, classes=29):
    """Trainable weights of the reference model, counted layer by layer."""
    convs = filters * 41 * 11 + filters * filters * 21 * 11 + 2 * 2 * filters  # + BN gamma, beta
    rnn_input = filters * ((bins + 1) // 2)  # the first conv halves the frequency axis
    lstm = 0
    for layer in range(layers):
        width = rnn_input if layer == 0 else 2 * hidden
        lstm += 2 * (4 * hidden * (width + hidden) + 2 * 4 * hidden)  # two directions
    input_norms = (layers - 1) * 2 * 2 * hidden
    output = 2 * 2 * hidden + 2 * hidden * classes + classes  # BN, then the dense layer
    return convs + lstm + input_norms + output


@pytest.mark.slow
def test_reference_checkpoint_holds_weights_and_adam_moments(tmp_path):
    weights = reference_weights()
    assert weights == 83526333  # the count issue 9 gives for the reference size
    out = tmp_path / 'results' / 'checkpoint'
    scratch = tmp_path / 'scratch'
    scratch.mkdir()
    result = subprocess.run([sys.executable, str(SCRIPT), '--rounds=2', '--dir=%s' % scratch,
                             '--out=%s' % out], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.with_suffix('.json').read_text())
    rounds = report['rounds']['.']
    assert len(rounds) == 2
    # float32 weights + Adam's mean and variance: 12 bytes a weight; BatchNorm statistics,
    # the config and the zip directory add well under 0.1 %.
    assert rounds[0]['bytes'] == pytest.approx(12 * weights, rel=1e-3)
    assert rounds[0]['bytes'] > 12 * weights
    (row,) = report['medians']
    for step in ('save', 'open', 'load'):
        assert row[step] == statistics.median(r[step] for r in rounds)
    assert out.with_suffix('.md').read_text().splitlines()[2] == \
        '| . | %.0f | %.2f | %.3f | %.2f |' % (row['size_mb'], row['save'], row['open'],
                                              row['load'])
    assert os.listdir(scratch) == []  # each round's model directory was removed
