"""Progress of long work: a tqdm bar on a terminal, plain log lines in a log file.

Under a scheduler stdout and stderr are files, where tqdm's carriage-return
redraws pile up into thousands of fragments per line. There the same bar logs
one plain line every ``interval`` seconds (and one at the end) instead.
"""
import logging
import sys

from tqdm import tqdm

__all__ = ['progress_bar', 'LOG_INTERVAL_S']

logger = logging.getLogger(__name__)

# Seconds between progress lines when stderr is not a terminal.
LOG_INTERVAL_S = 30.0


class _NoOutput:
    """Where the logged bar's own drawing goes (its lines go to the log)."""

    def write(self, text):
        pass

    def flush(self):
        pass


class _LoggedProgress(tqdm):
    """tqdm that logs ``desc: n/total unit (p%) [elapsed<remaining, rate]`` lines."""

    def display(self, msg=None, pos=None):
        logger.info('%s', self.format_meter(**dict(
            self.format_dict, bar_format='{desc}: {n_fmt}/{total_fmt} {unit} '
                                         '[{elapsed}<{remaining}, {rate_fmt}{postfix}]')))
        return True


def progress_bar(iterable=None, interval=LOG_INTERVAL_S, stream=None, **kwargs):
    """``tqdm(iterable, **kwargs)``, or its plain-line form when ``stream`` is not a TTY.

    ``stream`` is where the bar would draw (default ``sys.stderr``). Lines go
    through :mod:`logging`, so a process that logs only warnings (a Horovod
    rank other than 0) prints none.
    """
    stream = sys.stderr if stream is None else stream
    if getattr(stream, 'isatty', lambda: False)():
        return tqdm(iterable, file=stream, **kwargs)
    kwargs.update(mininterval=interval, maxinterval=max(interval, 10.0), leave=True)
    kwargs.pop('dynamic_ncols', None)
    return _LoggedProgress(iterable, file=_NoOutput(), **kwargs)
