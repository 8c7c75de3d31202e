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

__all__ = ['available_cores', 'default_threads', 'thread_count', 'set_thread_policy',
           'default_share', 'nobody_chose', 'launched_by_horovod']

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
    if _valid(user_setting):
        return int(user_setting)
    return default_threads(num_workers, cpu_count, processes_per_host)


def _local_processes():
    """Processes on this host: horovodrun's local size, else 1."""
    return int(os.environ.get('HOROVOD_LOCAL_SIZE', 1))


def default_share(num_workers=0):
    """This process's default count: :func:`default_threads` of its cores and host."""
    return default_threads(num_workers, available_cores(), _local_processes())


def launched_by_horovod(environ=None):
    """True inside a process started by ``horovodrun`` (Gloo or MPI)."""
    environ = os.environ if environ is None else environ
    return any(name in environ for name in ('HOROVOD_RANK', 'OMPI_COMM_WORLD_RANK', 'PMI_RANK'))


def nobody_chose(num_threads, environ=None):
    """True when neither ``--num_threads`` nor ``OMP_NUM_THREADS`` set the count and the
    process is not one of horovodrun's: then ``train.py`` may measure the count
    (:mod:`gluon_ds2.thread_probe`)."""
    environ = os.environ if environ is None else environ
    user_setting = _USER_SETTING if environ is os.environ else environ.get('OMP_NUM_THREADS')
    horovod = launched_by_horovod(environ) or 'HOROVOD_LOCAL_SIZE' in environ
    return not num_threads and not horovod and not _valid(user_setting)


def _valid(user_setting):
    return bool(user_setting and user_setting.strip().isdigit() and int(user_setting) > 0)


def set_thread_policy(num_threads=None, num_workers=0, restart=False):
    """Set ``OMP_NUM_THREADS`` for MXNet; returns the thread count.

    Has no effect on an MXNet already imported (it reads the count once, on import),
    which is logged; with ``restart`` the program then runs again from the start with the
    count in its environment (``os.execve``: same arguments, same process id).
    """
    threads = thread_count(num_threads, _USER_SETTING, num_workers, available_cores(),
                           _local_processes())
    if 'mxnet' in sys.modules and os.environ.get('OMP_NUM_THREADS') != str(threads):
        if restart:
            logger.info('restarting with OMP_NUM_THREADS=%d: MXNet, already imported, '
                        'reads it once, on import', threads)
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os.execve(sys.executable, [sys.executable] + sys.argv,
                      dict(os.environ, OMP_NUM_THREADS=str(threads)))
        logger.warning('MXNet was imported before gluon_ds2 set OMP_NUM_THREADS=%d; it keeps '
                       'its own thread count. Import gluon_ds2 first, or set '
                       'OMP_NUM_THREADS yourself.', threads)
    os.environ['OMP_NUM_THREADS'] = str(threads)
    return threads
