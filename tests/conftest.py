"""Shared fixtures: the data scripts loaded as modules, and a tiny synthesized corpus."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

__all__ = ['load_data_script', 'demo_mirror', 'demo_manifests', 'REPO_ROOT']

REPO_ROOT = Path(__file__).resolve().parent.parent


def load_data_script(name):
    """Import ``data/<name>.py`` by path (``data/`` holds scripts, not a package).

    The module is registered in ``sys.modules`` under ``name``, so that
    multiprocessing can pickle its functions for worker processes.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / 'data' / ('%s.py' % name))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def demo_mirror(tmp_path_factory):
    """A tiny corpus in the LibriSpeech release layout: 24 train, 6 dev, 6 test utterances.

    Returns the directory holding ``{train,dev,test}.tar.gz``, ``md5sum.txt``
    and ``corpus_info.json`` (what ``data/download.py --mirror`` takes).
    """
    out_dir = tmp_path_factory.mktemp('demo_mirror')
    load_data_script('make_demo_corpus').make_demo_corpus(
        out_dir, seed=1, train_utterances=24, dev_utterances=6, test_utterances=6, workers=2)
    return out_dir


@pytest.fixture(scope='session')
def demo_manifests(demo_mirror, tmp_path_factory):
    """The demo corpus prepared by ``data/download.py --mirror``: ``{split: manifest path}``.

    Splits are ``train``, ``dev`` and ``test``; WAV files and manifests are
    laid out as for LibriSpeech (``<data_dir>/<split>/LibriSpeech/<split>.csv``).
    """
    data_dir = tmp_path_factory.mktemp('demo_data')
    splits = ('train', 'dev', 'test')
    result = subprocess.run([sys.executable, str(REPO_ROOT / 'data' / 'download.py'),
                             '--mirror', str(demo_mirror), '--data_dir', str(data_dir),
                             '--splits', ','.join(splits), '--workers', '2'],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return {split: data_dir / split / 'LibriSpeech' / ('%s.csv' % split) for split in splits}
