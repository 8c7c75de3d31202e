"""Progress: a redrawn bar on a terminal, plain log lines in a log file."""
import io
import logging

from gluon_ds2.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_file_gets_plain_lines_not_carriage_returns(caplog):
    stream = io.StringIO()
    with caplog.at_level(logging.INFO, logger='gluon_ds2.progress'):
        for _ in progress_bar(range(5), interval=0, stream=stream, desc='checking manifest',
                              unit='utt'):
            pass
    assert stream.getvalue() == ''
    lines = [r.getMessage() for r in caplog.records if r.name == 'gluon_ds2.progress']
    assert lines[0].startswith('checking manifest: 0/5 utt [')
    assert lines[-1].startswith('checking manifest: 5/5 utt [')
    assert not any('\r' in line or '|' in line for line in lines)


def test_lines_come_at_the_interval_only(caplog):
    with caplog.at_level(logging.INFO, logger='gluon_ds2.progress'):
        for _ in progress_bar(range(1000), interval=3600, stream=io.StringIO(), desc='slow'):
            pass
    lines = [r.getMessage() for r in caplog.records if r.name == 'gluon_ds2.progress']
    assert len(lines) == 2  # at the start and at the end
    assert lines[-1].startswith('slow: 1000/1000 it [')


def test_a_terminal_gets_the_tqdm_bar(caplog):
    stream = Terminal()
    with caplog.at_level(logging.INFO, logger='gluon_ds2.progress'):
        for _ in progress_bar(range(3), stream=stream, desc='epoch 1'):
            pass
    assert '\r' in stream.getvalue() and 'epoch 1: 100%' in stream.getvalue()
    assert not [r for r in caplog.records if r.name == 'gluon_ds2.progress']
