"""scripts/bench_model.py: the analytic FLOP count against the weights a forward pass uses,
and the benchmark's outputs against its own raw timings."""
import json
import os
import statistics
import subprocess
import sys

import mxnet as mx
import pytest

from conftest import REPO_ROOT, load_script
from gluon_ds2.config import ModelConfig
from gluon_ds2.model import forward_flops

SCRIPT = REPO_ROOT / 'scripts' / 'bench_model.py'


def counted_flops(net, x):
    """2 x the multiply-adds of one forward pass, from the weights the layers really hold:
    each conv kernel is applied once per output position, each matrix of the LSTMs and the
    dense layer once per output time step and utterance."""
    uses = {}

    def record(block, _, output):
        uses[block.name] = output.shape

    for block in net.body:
        if isinstance(block, mx.gluon.nn.Conv2D):
            block.register_forward_hook(record)
    out = net(x)
    batch, time_steps = out.shape[0], out.shape[1]
    total = 0
    for name, param in net.collect_params().items():
        if not name.endswith('weight'):
            continue
        conv = next((c for c in uses if name.startswith(c + '_')), None)
        if conv is not None:
            _, _, conv_time, conv_bins = uses[conv]
            total += param.data().size * batch * conv_time * conv_bins
        else:  # LSTM i2h / h2h of both directions, and the dense output layer
            total += param.data().size * batch * time_steps
    return 2 * total


@pytest.mark.parametrize('hidden,layers,filters,bins,frames,batch', [
    (16, 1, 4, 81, 64, 2), (24, 3, 8, 161, 101, 3)])
def test_forward_flops_match_the_weights_a_forward_pass_uses(hidden, layers, filters, bins,
                                                             frames, batch):
    cfg = ModelConfig(rnn_hidden_size=hidden, rnn_hidden_layers=layers, conv_filters=filters)
    bench = load_script('scripts/bench_model.py')
    net = bench.plain_model(cfg, bins)
    net.initialize()
    x = mx.nd.zeros((batch, 1, frames, bins))
    assert forward_flops(cfg, bins, frames, batch, bench.NUM_CLASSES) == counted_flops(net, x)


def test_openblas_core_is_the_kernel_family_openblas_runs():
    """Forced with OPENBLAS_CORETYPE (read when the library loads, so in a fresh process),
    the name read back is the forced one; both GEMM rates measure a real product."""
    code = ('import sys; sys.path.insert(0, %r); import bench_model as b; '
            'print(b.openblas_core(), b.sgemm_rate(256, 2) > 0, '
            'b.sgemm_rate(256, 2, "openblas") > 0)' % str(SCRIPT.parent))
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            env=dict(os.environ, OPENBLAS_CORETYPE='Prescott'))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['Prescott', 'True', 'True']
    with pytest.raises(ValueError, match='onednn or openblas'):
        load_script('scripts/bench_model.py').sgemm_rate(8, 1, 'mkl')


@pytest.mark.slow
def test_outputs_agree_with_the_raw_timings(tmp_path):
    out = tmp_path / 'speed'
    result = subprocess.run(
        [sys.executable, str(SCRIPT), '--sizes=demo', '--rounds=2', '--seconds=1',
         '--threads=1', '--out=%s' % out], capture_output=True, text=True,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.with_suffix('.json').read_text())
    rows = report['rows']
    assert [(r['mode'], r['batch']) for r in rows] == [('train', 8), ('infer', 1), ('infer', 8)]
    train_gflop, infer1_gflop, infer8_gflop = (r['gflop'] for r in rows)
    assert train_gflop == pytest.approx(3 * infer8_gflop)
    assert infer8_gflop == pytest.approx(8 * infer1_gflop)
    table = out.with_suffix('.md').read_text()
    for r in rows:
        assert len(r['times']['ours']) == len(r['times']['plain']) == 2
        assert r['ours_s'] == statistics.median(r['times']['ours'])
        assert r['ours_over_plain'] == pytest.approx(r['ours_s'] / r['plain_s'])
        assert r['ours_of_sgemm'] == pytest.approx(
            r['gflop'] / r['ours_s'] / r['sgemm_gflops'])
        assert '| demo | %s | %d | %.3f | %.3f | **%.2f** |' % (
            r['mode'], r['batch'], r['ours_s'], r['plain_s'], r['ours_over_plain']) in table
    assert len(report['openblas_dot_gflops']) == len(report['sgemm_gflops']) == 3 * 2
    assert 'not used by the model' in table and report['openblas_core'] in table
    assert out.with_suffix('.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    profile = open(str(out) + '_profile.txt').read()
    assert profile.startswith('2 training steps of ours, demo size\n')
    assert 'reference size' not in profile
    assert not os.path.exists(str(out) + '_profile.trace.json')
    # The share lines against the same run's MXNet table, read from the text.
    shares = shares_from_table(profile)
    listed = {}
    for line in profile.split('forward + backward:\n')[1].split('\n\n')[0].splitlines():
        name, ms, _, share, _ = line.split()
        listed[name] = (float(ms), float(share))
    assert 'RNN' in listed and 'Convolution' in listed
    assert set(listed) <= set(shares)
    for name, (ms, share) in shares.items():  # listed down to 0.1 %
        if share >= 0.15:
            # MXNet's JSON totals keep 4 significant digits, its table more; shown to 0.1.
            assert listed[name] == pytest.approx((ms, share), rel=2e-3, abs=0.06), name
        elif share < 0.05:
            assert name not in listed


def shares_from_table(profile):
    """{operator: (ms, % of operator time)} from the 'operator' table MXNet printed,
    with each _backward_X added to X."""
    section = profile.split('\noperator\n')[1].split('\n\n')[0]
    totals = {}
    for line in section.splitlines()[3:]:
        fields = line.split()
        name = fields[0][len('_backward_'):] if fields[0].startswith('_backward_') else fields[0]
        totals[name] = totals.get(name, 0.0) + float(fields[2])
    grand = sum(totals.values())
    return {name: (ms, 100 * ms / grand) for name, ms in totals.items()}


def test_operator_shares_group_backward_under_forward():
    bench = load_script('scripts/bench_model.py')
    stats = {'Time': {'MXNET_C_API': {'MXNDArrayWaitAll': {'Total': 500.0}},
                      'operator': {'RNN': {'Total': 30.0}, '_backward_RNN': {'Total': 50.0},
                                   'Convolution': {'Total': 15.0}, 'clip': {'Total': 5.0}}}}
    assert bench.operator_shares(json.dumps(stats)) == [
        ('RNN', 80.0, 0.8), ('Convolution', 15.0, 0.15), ('clip', 5.0, 0.05)]
