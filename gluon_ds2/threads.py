"""How many OpenMP threads MXNet runs: decided here, for every entry point.

MXNet's engine reads ``OMP_NUM_THREADS`` once, when ``mxnet`` is first
imported, and its pip build runs a single thread without it, leaving all but
one core idle. Importing the package (``gluon_ds2/__init__.py``) therefore
applies :func:`set_thread_policy` before any of its modules imports MXNet;
``train.py`` applies it again, before importing the training code, with its
``--num_threads`` and ``--num_workers``. This module imports nothing heavy.
"""
import logging
import os
import sys

__all__ = ['available_cores', 'default_threads', 'thread_count', 'set_thread_policy']

logger = logging.getLogger(__name__)

# What the user's environment said before this package set anything.
_USER_SETTING = os.environ.get('OMP_NUM_THREADS')


def available_cores():
    """Cores this process may run on: its CPU affinity, not every core of the host.

    A batch scheduler (Slurm, a container's cpuset, ``taskset``) that gives a job 8 of a
    node's 64 cores leaves ``os.cpu_count()`` at 64; 64 OpenMP threads on 8 cores would
    each get an eighth of one.
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_threads(num_workers, cpu_count, processes_per_host=1):
    """``cpu_count`` cores (:func:`available_cores`) shared by this host's processes
    (horovodrun starts one per device).

    DataLoader workers get one core between them out of the share when there
    are cores to spare.
    """
    share = max(1, cpu_count // max(1, processes_per_host))
    if num_workers and share > 2:
        share -= 1
    return share


def thread_count(num_threads, user_setting, num_workers, cpu_count, processes_per_host):
    """The policy: ``--num_threads``, else the user's ``OMP_NUM_THREADS``, else the share."""
    if num_threads:
        return int(num_threads)
    if user_setting and user_setting.strip().isdigit() and int(user_setting) > 0:
        return int(user_setting)
    return default_threads(num_workers, cpu_count, processes_per_host)


def set_thread_policy(num_threads=None, num_workers=0):
    """Set ``OMP_NUM_THREADS`` for MXNet; returns the thread count.

    Has no effect on an MXNet already imported, which is logged.
    """
    threads = thread_count(num_threads, _USER_SETTING, num_workers, available_cores(),
                           int(os.environ.get('HOROVOD_LOCAL_SIZE', 1)))
    if 'mxnet' in sys.modules and os.environ.get('OMP_NUM_THREADS') != str(threads):
        logger.warning('MXNet was imported before gluon_ds2 set OMP_NUM_THREADS=%d; it keeps '
                       'its own thread count. Import gluon_ds2 first, or set '
                       'OMP_NUM_THREADS yourself.', threads)
    os.environ['OMP_NUM_THREADS'] = str(threads)
    return threads
