"""Files written whole or not at all.

A writer goes to a temporary file beside its target (``.<name>.<random>``), which is fsynced and
renamed over the target, and the directory is fsynced: a crash, a full disk or ``kill -9``
leaves the old file or the new one, never a part. Checkpoints and their index, manifests,
metrics logs rewritten on resume, language models, exports, the per-utterance results of
``evaluate.py`` and every results file or plot a script writes go through here.
"""
import os
import tempfile

__all__ = ['temp_prefix', 'atomic_write', 'atomic_write_text', 'atomic_save_figure']


def temp_prefix(path):
    """Temporary files for ``path`` are ``.<name>.<random>`` beside it."""
    return '.' + os.path.basename(path) + '.'


def atomic_write(path, write):
    """Call ``write(binary_file)`` on a temp file beside ``path``, fsync, rename.

    The directory is created if needed. If ``write`` raises, ``path`` is untouched and the
    temporary file removed.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=temp_prefix(path))
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path, text):
    """Write ``text`` (a str, or an iterable of str such as lines) to ``path`` as UTF-8.

    Lines are written as they come, so a generator that raises ValueError on a bad row
    leaves the old file.
    """
    chunks = [text] if isinstance(text, str) else text
    atomic_write(path, lambda f: f.writelines(chunk.encode('utf-8') for chunk in chunks))


def atomic_save_figure(figure, path, dpi=100):
    """Save a matplotlib ``figure`` to ``path`` as PNG."""
    atomic_write(path, lambda f: figure.savefig(f, format='png', dpi=dpi))
