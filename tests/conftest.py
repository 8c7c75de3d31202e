"""Shared fixtures and helpers: the data scripts loaded as modules, a tiny synthesized corpus,
an edit distance to check the metrics against, and evaluate.py's per-utterance records."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gluon_ds2.precision import cpu_runs_bfloat16

__all__ = ['load_script', 'edit_distance', 'evaluate_records', 'demo_mirror', 'demo_manifests',
           'trained_model_dir', 'needs_bfloat16', 'lacks_bfloat16', 'REPO_ROOT']

REPO_ROOT = Path(__file__).resolve().parent.parent


# bfloat16 arithmetic itself: only where this CPU's oneDNN has the kernels (AVX-512);
# its refusal: only where it has none.
needs_bfloat16 = pytest.mark.skipif(not cpu_runs_bfloat16(),
                                    reason='no bfloat16 kernels in oneDNN 2.4.4 on this CPU')
lacks_bfloat16 = pytest.mark.skipif(cpu_runs_bfloat16(),
                                    reason='this CPU has bfloat16 kernels: nothing is refused')


def load_script(path):
    """Import a script of this repository by its path, e.g. ``'scripts/tune_lm.py'``
    (``data/`` and ``scripts/`` hold scripts, not packages).

    The module is registered in ``sys.modules`` under its file name, so that
    multiprocessing can pickle its functions for worker processes, and later
    calls return the same module.
    """
    name = Path(path).stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def edit_distance(a, b):
    """Levenshtein distance of two sequences (strings, word lists), by the textbook
    dynamic programme: a second implementation to check ``gluon_ds2.metrics`` against."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def evaluate_records(model, eval_data_dir, output, *flags):
    """Run ``evaluate.py`` on ``model`` (a model directory or checkpoint) and ``eval_data_dir``
    as a user would, in its own process; returns the per-utterance records it wrote to
    ``output`` (JSON lines), from which a test sums its own corpus rates."""
    result = subprocess.run([sys.executable, str(REPO_ROOT / 'evaluate.py'), str(model),
                             '--eval_data_dir=%s' % eval_data_dir, '--num_workers=0',
                             '--output=%s' % output, *flags],
                            capture_output=True, text=True, env=dict(os.environ,
                                                                     OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in Path(output).read_text().splitlines()]


@pytest.fixture(scope='session')
def demo_mirror(tmp_path_factory):
    """A tiny corpus in the LibriSpeech release layout: 24 train utterances (24 speakers:
    15 espeak, 5 SVOX Pico, 4 hibari), 6 in each of dev, test, dev_ood and test_ood.

    Returns the directory holding ``{train,dev,test,dev_ood,test_ood}.tar.gz``,
    ``lm-norm.txt.gz``, ``md5sum.txt`` and ``corpus_info.json`` (what
    ``data/download.py --mirror`` takes).
    """
    out_dir = tmp_path_factory.mktemp('demo_mirror')
    load_script('data/make_demo_corpus.py').make_demo_corpus(
        out_dir, seed=1, train_utterances=24, dev_utterances=6, test_utterances=6,
        dev_ood_utterances=6, test_ood_utterances=6, pico_share=0.3, workers=2)
    return out_dir


@pytest.fixture(scope='session')
def demo_manifests(demo_mirror, tmp_path_factory):
    """The demo corpus prepared by ``data/download.py --mirror``: ``{split: manifest path}``.

    Splits are ``train``, ``dev``, ``test`` and ``dev_ood``; WAV files and manifests
    are laid out as for LibriSpeech (``<data_dir>/<split>/LibriSpeech/<split>.csv``).
    """
    data_dir = tmp_path_factory.mktemp('demo_data')
    splits = ('train', 'dev', 'test', 'dev_ood')
    result = subprocess.run([sys.executable, str(REPO_ROOT / 'data' / 'download.py'),
                             '--mirror', str(demo_mirror), '--data_dir', str(data_dir),
                             '--splits', ','.join(splits), '--workers', '2'],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return {split: data_dir / split / 'LibriSpeech' / ('%s.csv' % split) for split in splits}


@pytest.fixture(scope='session')
def trained_model_dir(demo_manifests, tmp_path_factory):
    """A tiny DeepSpeech2 trained by ``train.py`` for 6 steps on the demo corpus.

    Returns its model directory: two evaluated checkpoints (one per epoch of 3
    batches). Far from converged, its transcripts are not the words spoken,
    but they are non-empty and deterministic, which is what tests of the
    decoding, transcription and export paths compare.
    """
    model_dir = tmp_path_factory.mktemp('trained') / 'model'
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'train.py'),
         '--train_data_dir=%s' % demo_manifests['train'],
         '--eval_data_dir=%s' % demo_manifests['dev'], '--model_dir=%s' % model_dir,
         '--rnn_hidden_size=32', '--rnn_hidden_layers=1', '--conv_filters=4',
         '--max_freq=4000', '--batch_size=8', '--max_steps=6', '--num_workers=0'],
        capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr
    return model_dir
