"""scripts/setup_env.sh: one venv per variant, and never one MXNet installed over the other."""
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from conftest import REPO_ROOT

SETUP = str(REPO_ROOT / 'scripts' / 'setup_env.sh')


def _setup(args=(), **env):
    environ = {k: v for k, v in os.environ.items() if k not in ('GPU', 'GLUON_DS2_VENV')}
    return subprocess.run(['sh', SETUP] + list(args), capture_output=True, text=True,
                          env=dict(environ, **env), timeout=300)


def test_each_variant_has_its_own_venv():
    assert _setup(['--print-venv'], GPU='0').stdout.strip() == str(REPO_ROOT / '.venv')
    assert _setup(['--print-venv'], GPU='1').stdout.strip() == str(REPO_ROOT / '.venv-gpu')
    if not shutil.which('nvidia-smi'):  # no GPU here: the CPU variant is chosen
        assert _setup(['--print-venv']).stdout.strip() == str(REPO_ROOT / '.venv')


@pytest.mark.parametrize('gpu, installed, wanted', [('0', 'mxnet-cu112', 'mxnet'),
                                                    ('1', 'mxnet', 'mxnet-cu112')])
def test_a_venv_holding_the_other_mxnet_is_refused(tmp_path, gpu, installed, wanted):
    """A real venv in which pip sees the other variant's MXNet: nothing is installed over it."""
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True)
    shutil.copytree(os.path.join(sysconfig.get_paths()['purelib'], 'pip'),
                    str(next(venv.glob('lib/python*/site-packages')) / 'pip'))
    site = next(venv.glob('lib/python*/site-packages'))
    dist_info = site / ('%s-1.9.1.dist-info' % installed.replace('-', '_'))
    dist_info.mkdir()
    (dist_info / 'METADATA').write_text('Metadata-Version: 2.1\nName: %s\nVersion: 1.9.1\n'
                                        % installed)
    (dist_info / 'RECORD').write_text('')
    before = sorted(p.name for p in site.iterdir())
    result = _setup(GPU=gpu, GLUON_DS2_VENV=str(venv))
    assert result.returncode == 1
    variant = 'gpu' if gpu == '1' else 'cpu'
    assert ("[setup] %s holds %s, but the %s variant installs %s (the same 'mxnet' module). "
            "Not replacing it" % (venv, installed, variant, wanted)) in result.stderr
    assert sorted(p.name for p in site.iterdir()) == before
