"""scripts/bench_startup.py: one rank and two real horovodrun ranks each check every row of the
repeated manifest, drop the same bad rows, and leave nothing beside the given manifest."""
import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO_ROOT
from gluon_ds2.config import AudioConfig
from gluon_ds2.dataset import load_entries
from gluon_ds2.model import output_length
from gluon_ds2.vocab import Vocabulary

SCRIPT = REPO_ROOT / 'scripts' / 'bench_startup.py'


@pytest.mark.slow
def test_every_rank_checks_every_row_of_the_repeated_manifest(demo_manifests, tmp_path):
    good = pd.read_csv(demo_manifests['train'], sep='\t')
    entries, dropped = load_entries(str(demo_manifests['train']), Vocabulary.from_file(),
                                    AudioConfig(), output_length=output_length, progress=False)
    assert len(entries) == len(good) and not dropped  # the precondition of the count below
    bad = good.iloc[:1].assign(transcript='room 101')  # digits are not in the vocabulary
    manifest = tmp_path / 'data' / 'train.csv'
    manifest.parent.mkdir()
    pd.concat([good, bad], ignore_index=True).to_csv(manifest, sep='\t', index=False)
    rows = 2 * (len(good) + 1) + 3  # the repetition ends three rows into a third copy
    expected = 2 * len(good) + 3  # the two bad rows dropped

    out = tmp_path / 'results' / 'startup'
    result = subprocess.run([sys.executable, str(SCRIPT), str(manifest), '--rows=%d' % rows,
                             '--rounds=1', '--out=%s' % out], capture_output=True, text=True,
                            cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.with_suffix('.json').read_text())
    assert report['rows'] == rows
    assert [(r['tree'], r['ranks'], r['entries']) for r in report['results']] == [
        ('.', 1, expected), ('.', 2, expected)]
    table = out.with_suffix('.md').read_text().splitlines()
    assert table[2:] == ['| . | %d | %.2f | %.2f |' % (r['ranks'], r['load_entries_s'],
                                                       r['wall_s']) for r in report['results']]
    for r in report['results']:  # wall time holds the interpreter start and load_entries
        assert 0 < r['load_entries_s'] < r['wall_s']
    assert os.listdir(manifest.parent) == ['train.csv']  # the big manifest was temporary
