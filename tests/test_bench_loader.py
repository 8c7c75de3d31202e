"""scripts/bench_loader.py: every configuration reads the whole epoch, once, and its audio
seconds are the files' own."""
import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import soundfile

from conftest import REPO_ROOT

SCRIPT = REPO_ROOT / 'scripts' / 'bench_loader.py'


@pytest.mark.slow
def test_each_configuration_reads_the_whole_epoch(demo_manifests, tmp_path):
    out = tmp_path / 'loader'
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(demo_manifests['train']), '--workers=0,1',
         '--augment=none,all', '--batch_size=5', '--max_freq=4000', '--out=%s' % out],
        capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr
    manifest = pd.read_csv(demo_manifests['train'], sep='\t')
    assert '%d utterances' % len(manifest) in result.stdout
    rows = json.loads(out.with_suffix('.json').read_text())['rows']
    assert [(r['workers'], r['augment']) for r in rows] == [
        (0, 'none'), (0, 'all'), (1, 'none'), (1, 'all')]
    infos = [soundfile.info(path) for path in manifest.wav_filename]
    seconds = sum(info.duration for info in infos)
    # 20 ms windows every 10 ms, counted here from each file's sample count.
    frames = sum((info.frames - info.samplerate // 50) // (info.samplerate // 100) + 1
                 for info in infos)
    for row in rows:
        assert row['utterances'] == len(manifest)
        assert row['batches'] == -(-len(manifest) // 5)
        if row['augment'] == 'none':
            assert row['audio_s_per_s'] * row['seconds'] == pytest.approx(frames / 100)
    table = out.with_suffix('.md').read_text().splitlines()
    assert len([line for line in table if line.startswith('| none |')]) == 2
    assert table[-1] == 'One epoch of %d utterances (%.2f h), batch 5, %d CPU cores.' % (
        len(manifest), seconds / 3600, os.cpu_count())
