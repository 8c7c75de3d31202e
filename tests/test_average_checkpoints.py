"""scripts/average_checkpoints.py on a model trained by train.py: the averaged weights are the
mean of the last checkpoints', their WER is what evaluate.py measures on the same checkpoint,
and the directory's best follows the eval WER."""
import json
import os
import shutil
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from conftest import REPO_ROOT, evaluate_records
from gluon_ds2.checkpoint import read_checkpoint, read_index

SCRIPT = REPO_ROOT / 'scripts' / 'average_checkpoints.py'
ENV = dict(os.environ, OMP_NUM_THREADS='1')


def average(model_dir, *flags):
    return subprocess.run([sys.executable, str(SCRIPT), str(model_dir), '--num_workers=0',
                           *flags], capture_output=True, text=True, env=ENV)


def params(path):
    _, archive = read_checkpoint(str(path))
    return {name: value.asnumpy() for name, value in
            mx.nd.load_frombuffer(archive.read('params')).items()}


@pytest.mark.slow
def test_average_of_the_last_two_is_scored_and_chosen_by_its_wer(trained_model_dir,
                                                                  demo_manifests, tmp_path):
    model_dir = tmp_path / 'model'
    shutil.copytree(trained_model_dir, model_dir)
    trained = read_index(str(model_dir))
    sources = [e['name'] for e in trained['checkpoints']][-2:]

    result = average(model_dir)
    assert result.returncode == 0, result.stderr
    index = read_index(str(model_dir))
    averaged = index['averaged']
    assert averaged['averaged_from'] == sources
    path = model_dir / averaged['name']
    assert averaged['name'] == sources[-1].replace('.ckpt', '-avg2.ckpt')

    weights = [params(model_dir / name) for name in sources]
    for name, value in params(path).items():
        np.testing.assert_allclose(value, (weights[0][name] + weights[1][name]) / 2, rtol=1e-6,
                                   atol=1e-7)
    # evaluate.py on the averaged checkpoint and the run's eval set: the WER recorded.
    records = evaluate_records(path, demo_manifests['dev'], tmp_path / 'eval.jsonl')
    wer = sum(r['word_edits'] for r in records) / sum(r['reference_words'] for r in records)
    assert averaged['wer'] == pytest.approx(wer, abs=1e-12)
    assert 'eval WER %.4f' % wer in result.stdout.splitlines()[-2]
    best_trained = min(e['wer'] for e in trained['checkpoints'])
    assert index['best'] == (averaged['name'] if wer < best_trained else trained['best'])
    assert result.stdout.splitlines()[-1] == 'best checkpoint of %s: %s' % (model_dir,
                                                                           index['best'])
    assert index['latest'] == trained['latest']  # resuming ignores the average


def test_more_checkpoints_than_kept_is_an_error_naming_the_directory(trained_model_dir):
    before = (trained_model_dir / 'checkpoints.json').read_text()
    kept = len(json.loads(before)['checkpoints'])
    result = average(trained_model_dir, '--last=%d' % (kept + 1))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'average_checkpoints: error: %s: %d kept checkpoint(s), --last %d asks for more '
        '(train.py keeps --keep_checkpoints of them)' % (trained_model_dir, kept, kept + 1))
    assert (trained_model_dir / 'checkpoints.json').read_text() == before  # nothing written
    assert average(trained_model_dir, '--last=1').returncode == 2  # argparse: at least 2
