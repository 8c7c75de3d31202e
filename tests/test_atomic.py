"""Files written whole or not at all: a writer that fails leaves the old file and no
temporary file; text, lines and figures round trip."""
import os

import pytest

from gluon_ds2.atomic import atomic_save_figure, atomic_write, atomic_write_text


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / 'index.json'
    path.write_bytes(b'old contents')

    def fail_midway(f):
        f.write(b'half of the new')
        raise OSError('disk full')

    with pytest.raises(OSError, match='disk full'):
        atomic_write(str(path), fail_midway)
    assert path.read_bytes() == b'old contents'
    assert sorted(os.listdir(tmp_path)) == ['index.json']  # no temporary file left behind

    atomic_write(str(path), lambda f: f.write(b'new contents'))
    assert path.read_bytes() == b'new contents'
    assert sorted(os.listdir(tmp_path)) == ['index.json']


def test_text_and_figures_are_written_whole_or_not_at_all(tmp_path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    path = tmp_path / 'results' / 'speed.json'  # its directory is created
    atomic_write_text(str(path), '{"ratio": 0.9}\n')
    assert path.read_text() == '{"ratio": 0.9}\n'
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(str(path), 'half \ud800 written')  # a lone surrogate: not UTF-8
    assert path.read_text() == '{"ratio": 0.9}\n'

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [1, 0])
    png = tmp_path / 'results' / 'speed.png'
    atomic_save_figure(fig, str(png), dpi=50)
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert plt.imread(str(png)).shape[:2] == (100, 150)  # 2 x 3 inches at 50 dpi
    ax.set_title(r'$\notacommand$')  # bad mathtext: fails while the figure is drawn
    with pytest.raises(ValueError):
        atomic_save_figure(fig, str(png), dpi=50)
    plt.close(fig)
    assert plt.imread(str(png)).shape[:2] == (100, 150)
    assert sorted(os.listdir(tmp_path / 'results')) == ['speed.json', 'speed.png']


def test_lines_of_a_generator_that_fails_midway_leave_the_old_file(tmp_path):
    path = tmp_path / 'train.csv'
    atomic_write_text(str(path), (line for line in ['wav_filename\n', 'a.wav\n']))
    assert path.read_text() == 'wav_filename\na.wav\n'

    def rows():  # as write_manifest's row check raises on a bad row
        yield 'wav_filename\n'
        raise ValueError('row 2: wav_filesize must be a non-negative integer')

    with pytest.raises(ValueError, match='row 2'):
        atomic_write_text(str(path), rows())
    assert path.read_text() == 'wav_filename\na.wav\n'
    assert os.listdir(tmp_path) == ['train.csv']
