"""scripts/make_engine_split.py: a manifest's transcripts read again by CMU Flite."""
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from conftest import REPO_ROOT, load_script
from gluon_ds2.manifest import read_manifest

SCRIPT = REPO_ROOT / 'scripts' / 'make_engine_split.py'

needs_flite = pytest.mark.skipif(shutil.which('flite') is None,
                                 reason='CMU Flite is not installed (apt-get install flite)')


@needs_flite
def test_flite_reads_every_transcript_in_order_with_voices_taking_turns(demo_manifests,
                                                                        tmp_path):
    module = load_script('scripts/make_engine_split.py')
    voices = ('kal16', 'slt', 'kal')
    source = read_manifest(str(demo_manifests['test']))
    first, = module.make_engine_split([demo_manifests['test']], tmp_path / 'a', voices, seed=3,
                                      workers=2)
    assert first == tmp_path / 'a' / 'test_flite.csv'
    made = read_manifest(str(first))
    assert list(made.transcript) == list(source.transcript)
    words, seconds = [], []
    for index, row in enumerate(made.itertuples()):
        assert row.wav_filename.endswith('%05d-%s.wav' % (index, voices[index % 3]))
        info = soundfile.info(row.wav_filename)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, 'PCM_16')
        assert row.wav_filesize == (tmp_path / 'a' / 'test_flite' /
                                    row.wav_filename.rsplit('/', 1)[1]).stat().st_size
        samples, _ = soundfile.read(row.wav_filename)
        assert np.sqrt(np.mean(samples ** 2)) > 0.02
        assert 0 < np.abs(samples[:1600]).max() < 0.01   # a quiet lead-in, not digital silence
        words.append(len(row.transcript.split()))
        seconds.append(info.duration)
        assert 0.15 * words[-1] < seconds[-1] < 0.8 * words[-1] + 0.8, (row.transcript, seconds)
    assert np.corrcoef(words, seconds)[0, 1] > 0.7
    # the same seed gives the same audio; another seed another speed and pitch
    again, = module.make_engine_split([demo_manifests['test']], tmp_path / 'b', voices, seed=3,
                                      workers=1)
    other, = module.make_engine_split([demo_manifests['test']], tmp_path / 'c', voices, seed=4,
                                      workers=1)
    read = lambda manifest: [open(p, 'rb').read() for p in read_manifest(str(manifest)).wav_filename]
    assert read(again) == read(first)
    assert read(other) != read(first)


@needs_flite
def test_unknown_voice_and_missing_flite_are_named(demo_manifests, tmp_path):
    module = load_script('scripts/make_engine_split.py')
    with pytest.raises(ValueError, match='--voices: flite has no voice nobody \\(it has .*kal'):
        module.make_engine_split([demo_manifests['test']], tmp_path, ('kal', 'nobody'))
    result = subprocess.run([sys.executable, str(SCRIPT), str(demo_manifests['test']),
                             '--out_dir', str(tmp_path), '--flite', '/no/such/flite'],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert ('make_engine_split: /no/such/flite not found: this check needs CMU Flite '
            '(Debian/Ubuntu: apt-get install flite)') in result.stderr
    assert not list(tmp_path.iterdir())
