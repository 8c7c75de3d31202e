"""``pip install .`` (not editable) gives a package that works away from the repository."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO_ROOT


@pytest.mark.slow
def test_non_editable_install_ships_the_vocabulary(tmp_path):
    # A copy of what the build reads, so that the build's by-products stay out of the repository.
    source = tmp_path / 'source'
    source.mkdir()
    for name in ('pyproject.toml', 'README.md'):
        shutil.copy(REPO_ROOT / name, source / name)
    shutil.copytree(REPO_ROOT / 'gluon_ds2', source / 'gluon_ds2',
                    ignore=shutil.ignore_patterns('__pycache__'))
    target = tmp_path / 'site'
    build = subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-deps',
                            '--no-build-isolation', '--no-index', '--target', str(target),
                            str(source)], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr
    shutil.rmtree(source)  # nothing may be read from the source tree any more

    program = ('import gluon_ds2.vocab as v\n'
               'vocab = v.Vocabulary.from_file()\n'
               'print(v.__file__)\n'
               'print(v.DEFAULT_VOCABULARY_FILE)\n'
               'print(vocab.num_classes, vocab.blank_id, repr("".join(vocab.tokens)))\n')
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(target))
    result = subprocess.run([sys.executable, '-c', program], capture_output=True, text=True,
                            cwd=elsewhere, env=env)
    assert result.returncode == 0, result.stderr
    module, vocabulary_file, summary = result.stdout.splitlines()
    assert module == str(target / 'gluon_ds2' / 'vocab.py')
    assert vocabulary_file == str(target / 'gluon_ds2' / 'vocabulary.txt')
    assert summary == "29 28 \"abcdefghijklmnopqrstuvwxyz' \""
