"""The OpenMP thread policy, decided in one place and applied before MXNet loads."""
import os
import subprocess
import sys

import pytest

from gluon_ds2.threads import available_cores, default_threads, thread_count

CORES = len(os.sched_getaffinity(0))  # what a child process started from here may use


@pytest.mark.parametrize('num_threads, user_setting, expected', [
    (3, '5', 3),      # --num_threads wins
    (None, '5', 5),   # then the user's OMP_NUM_THREADS
    (None, None, 4),  # then 8 cores shared by 2 processes
    (None, '', 4),
    (None, 'many', 4),
    (None, '0', 4),
])
def test_thread_count_precedence(num_threads, user_setting, expected):
    assert thread_count(num_threads, user_setting, 0, 8, 2) == expected


def test_default_share_leaves_a_core_to_the_data_workers():
    assert default_threads(0, 16, 1) == 16
    assert default_threads(2, 16, 1) == 15
    assert default_threads(1, 16, 8) == 2    # too few to spare one
    assert default_threads(1, 2, 1) == 2
    assert default_threads(0, 2, 4) == 1     # never below one


def _threads_seen(env_updates, program, cores=None):
    """OMP_NUM_THREADS and stderr of ``program`` in a child, on ``cores`` if given."""
    env = {k: v for k, v in os.environ.items() if k not in ('OMP_NUM_THREADS',
                                                            'HOROVOD_LOCAL_SIZE')}
    env.update(env_updates)
    result = subprocess.run([sys.executable, '-c', program], capture_output=True, text=True,
                            env=env, preexec_fn=cores and (lambda: os.sched_setaffinity(0, cores)))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip(), result.stderr


def test_importing_the_package_sets_the_policy_before_mxnet_loads():
    program = 'import gluon_ds2.model, os; print(os.environ["OMP_NUM_THREADS"])'
    seen, _ = _threads_seen({}, program)
    assert seen == str(CORES)
    seen, _ = _threads_seen({'HOROVOD_LOCAL_SIZE': str(CORES)}, program)
    assert seen == '1'
    seen, _ = _threads_seen({'OMP_NUM_THREADS': '3'}, program)
    assert seen == '3'


def test_mxnet_imported_first_is_reported():
    seen, stderr = _threads_seen(
        {}, 'import mxnet, gluon_ds2, os; print(os.environ["OMP_NUM_THREADS"])')
    assert seen == str(CORES)
    assert 'MXNet was imported before gluon_ds2 set OMP_NUM_THREADS' in stderr


@pytest.mark.skipif(CORES < 2, reason='needs two cores to leave one out')
def test_threads_follow_the_cores_the_process_may_run_on():
    """A process pinned to one core (as a scheduler's cpuset would) runs one thread, and the
    beam-search decoder counts the same cores."""
    one = {min(os.sched_getaffinity(0))}
    program = ('import os, gluon_ds2.decoder as d; '
               'print(os.environ["OMP_NUM_THREADS"], d.available_cores(), os.cpu_count())')
    seen, _ = _threads_seen({}, program, cores=one)
    assert seen.split() == ['1', '1', str(os.cpu_count())]
    assert available_cores() == CORES
