"""End to end: ``sh run.sh`` on a tiny generated corpus with a tiny model, as a user runs it."""
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO_ROOT, edit_distance

pytestmark = pytest.mark.slow

TINY = dict(DEMO_TRAIN_UTTERANCES='24', DEMO_DEV_UTTERANCES='6', DEMO_TEST_UTTERANCES='6',
            DEMO_DEV_OOD_UTTERANCES='5', DEMO_TEST_OOD_UTTERANCES='5', LM_ALPHAS='0.5,1',
            LM_BETAS='1', EPOCHS='2', BATCH_SIZE='8', RNN_HIDDEN_SIZE='32', RNN_HIDDEN_LAYERS='1',
            CONV_FILTERS='4', NUM_WORKERS='0', TRANSCRIBE_FILES='3', OMP_NUM_THREADS='1',
            DEMO_PICO_SHARE='0.3')

# With CMU Flite installed (CI installs it), FLITE=1 also scores both test texts read by Flite.
FLITE = shutil.which('flite') is not None
TEST_SPLITS = ('test', 'test_ood') + (('test_flite', 'test_ood_flite') if FLITE else ())


def run_sh(tmp_path, *args):
    env = dict(os.environ, MODEL_DIR=str(tmp_path / 'model'), DATA_DIR=str(tmp_path / 'data'),
               MIRROR=str(tmp_path / 'mirror'), FLITE='1' if FLITE else '0', **TINY)
    return subprocess.run(['sh', str(REPO_ROOT / 'run.sh'), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp('run_sh')
    result = run_sh(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return tmp_path, result


def test_every_stage_leaves_well_formed_output(demo_run):
    tmp_path, result = demo_run
    model_dir = tmp_path / 'model'
    for split in ('train', 'dev', 'test', 'dev_ood', 'test_ood'):
        manifest = tmp_path / 'data' / split / 'LibriSpeech' / ('%s.csv' % split)
        lines = manifest.read_text().splitlines()
        assert lines[0] == 'wav_filename\twav_filesize\ttranscript'
        assert len(lines) - 1 == int(TINY['DEMO_%s_UTTERANCES' % split.upper()])
        for line in lines[1:]:
            path, size, transcript = line.split('\t')
            assert os.path.getsize(path) == int(size) and transcript == transcript.lower()
    index = json.loads((model_dir / 'checkpoints.json').read_text())
    with zipfile.ZipFile(model_dir / index['latest']) as archive:
        assert archive.testzip() is None
    records = [json.loads(line) for line in (model_dir / 'metrics.jsonl').read_text().splitlines()]
    # dev (the --eval_data_dir set) and dev_ood scored after each epoch
    evals = [r for r in records if r['kind'] == 'eval']
    assert [(r['epoch'], r['split']) for r in evals] == [
        (1, 'eval'), (1, 'dev_ood'), (2, 'eval'), (2, 'dev_ood')]
    assert [r['utterances'] for r in evals] == [int(TINY['DEMO_DEV_UTTERANCES']),
                                                int(TINY['DEMO_DEV_OOD_UTTERANCES'])] * 2
    assert (model_dir / 'training_curves.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    for split in TEST_SPLITS:
        source = split.replace('_flite', '')
        if split != source:   # the same transcripts as the split Flite read again
            read = lambda name: (tmp_path / 'data' / name / 'LibriSpeech' /
                                 ('%s.csv' % name)).read_text().splitlines()
            assert [line.split('\t')[2] for line in read(split)] == \
                [line.split('\t')[2] for line in read(source)]
        for decoder in ('greedy', 'lm'):
            results = [json.loads(line) for line in
                       (model_dir / ('%s_%s.jsonl' % (split, decoder))).read_text().splitlines()]
            assert len(results) == int(TINY['DEMO_%s_UTTERANCES' % source.upper()])
            for r in results:
                assert r['word_edits'] == edit_distance(r['reference'].split(),
                                                        r['hypothesis'].split())
    # the LM weights were tuned on dev, over the grid asked for
    tuning = json.loads((model_dir / 'tune_lm.json').read_text())
    assert tuning['manifests'].endswith('dev.csv') and len(tuning['grid']) == 2


def test_summary_names_the_outputs_and_the_test_error_rates(demo_run):
    tmp_path, result = demo_run
    summary = result.stdout[result.stdout.index('==> summary'):]
    for stage in ('environment', 'demo corpus', 'prepare manifests', 'train',
                  'average checkpoints', 'language model', 'evaluate (test splits)',
                  'transcribe', 'total'):
        assert stage in summary
    # The two epochs' checkpoints were averaged; the best (the average if it scored better on
    # dev) is the checkpoint every later stage used.
    index = json.loads((tmp_path / 'model' / 'checkpoints.json').read_text())
    averaged = index['averaged']
    assert averaged['averaged_from'] == [e['name'] for e in index['checkpoints']]
    wers = {e['name']: e['wer'] for e in index['checkpoints']}
    steps = [int(n[len('ckpt-'):-len('.ckpt')]) for n in averaged['averaged_from']]
    assert '  averaged       steps %s: dev WER %.4f (theirs: %s)' % (
        ', '.join(map(str, steps)), averaged['wer'],
        ', '.join('%.4f' % wers[n] for n in averaged['averaged_from'])) in summary
    assert '  checkpoint     %s' % (tmp_path / 'model' / index['best']) in summary
    best_trained = min(reversed(list(wers)), key=wers.get)  # the later one on a tie
    assert index['best'] == (averaged['name'] if averaged['wer'] < wers[best_trained]
                             else best_trained)
    assert str(tmp_path / 'model' / 'training_curves.png') in summary
    # greedy and beam + LM error rates of both test splits, as the per-utterance files give them
    model_dir = tmp_path / 'model'
    for split in TEST_SPLITS:
        cells = []
        for decoder in ('greedy', 'lm'):
            results = [json.loads(line) for line in
                       (model_dir / ('%s_%s.jsonl' % (split, decoder))).read_text().splitlines()]
            words = sum(edit_distance(r['reference'].split(), r['hypothesis'].split())
                        for r in results) / sum(len(r['reference'].split()) for r in results)
            chars = sum(edit_distance(r['reference'], r['hypothesis'])
                        for r in results) / sum(len(r['reference']) for r in results)
            cells.append('%.4f / %.4f' % (words, chars))
        assert '  %-14s %-20s %-20s' % (split, cells[0], cells[1]) in summary
    # The dev curves by epoch, both splits, as the metrics log has them.
    records = [json.loads(line) for line in (model_dir / 'metrics.jsonl').read_text().splitlines()]
    assert '  dev curve      dev WER / CER        dev_ood WER / CER' in summary
    for epoch in (1, 2):
        dev, dev_ood = [r for r in records if r['kind'] == 'eval' and r['epoch'] == epoch]
        assert '  epoch %-8d %-20s %s' % (epoch, '%.4f / %.4f' % (dev['wer'], dev['cer']),
                                          '%.4f / %.4f' % (dev_ood['wer'], dev_ood['cer'])) \
            in summary
    # Three test files were transcribed and printed against their references.
    assert result.stdout.count('\n  reference:  ') == 3
    assert result.stdout.count('\n  transcript: ') == 3


def test_the_checkpoint_evaluates_with_no_flags(demo_run):
    tmp_path, _ = demo_run
    result = subprocess.run([sys.executable, str(REPO_ROOT / 'evaluate.py'),
                             str(tmp_path / 'model')], capture_output=True, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr
    assert 'utterances        %s ' % TINY['DEMO_DEV_UTTERANCES'] in result.stdout


def test_a_second_run_refuses_to_mix_runs(demo_run):
    tmp_path, _ = demo_run
    result = run_sh(tmp_path)
    assert result.returncode == 1
    assert 'already holds a training run. Pass --resume to continue it, --fresh to' in \
        result.stderr


def test_unknown_argument_is_rejected(tmp_path):
    result = run_sh(tmp_path, '--bogus')
    assert result.returncode == 2
    assert "run.sh: unknown argument '--bogus'" in result.stderr


def test_flite_without_flite_stops_before_any_work(tmp_path):
    """FLITE=1 on a machine without CMU Flite fails at once, naming the fix, before the
    environment, the corpus or the model directory are touched."""
    bin_dir = tmp_path / 'bin'  # a PATH with what run.sh needs before its checks, no flite
    bin_dir.mkdir()
    os.symlink(shutil.which('dirname'), bin_dir / 'dirname')
    env = dict(os.environ, PATH=str(bin_dir), FLITE='1', MODEL_DIR=str(tmp_path / 'model'),
               DATA_DIR=str(tmp_path / 'data'), MIRROR=str(tmp_path / 'mirror'))
    result = subprocess.run(['/bin/sh', str(REPO_ROOT / 'run.sh')], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'run.sh: FLITE=1 needs CMU Flite, and no flite program is on PATH' in result.stderr
    assert 'apt-get install flite' in result.stderr
    assert '==>' not in result.stdout  # no stage started
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bin']


def test_librispeech_mode_on_a_local_mirror(tmp_path, demo_mirror):
    """``run.sh librispeech --mirror DIR`` runs the reference's recipe end to end: all seven
    splits downloaded and prepared, train/dev manifests combined with the 27 s limit."""
    import hashlib
    import tarfile
    mirror = tmp_path / 'librispeech_mirror'
    mirror.mkdir()
    sources = {'train': ('train-clean-100', 'train-clean-360', 'train-other-500'),
               'dev': ('dev-clean', 'dev-other'), 'test': ('test-clean', 'test-other')}
    md5_lines = []
    for demo_split, names in sources.items():
        with tarfile.open(demo_mirror / ('%s.tar.gz' % demo_split)) as source:
            members = [(m.name, m, source.extractfile(m).read())
                       for m in source.getmembers() if m.isfile()]
        for name in names:
            path = mirror / ('%s.tar.gz' % name)
            with tarfile.open(path, 'w:gz') as target:
                for original, member, data in members:
                    member.name = original.replace('LibriSpeech/%s/' % demo_split,
                                                   'LibriSpeech/%s/' % name)
                    target.addfile(member, io.BytesIO(data))
            md5_lines.append('%s  %s' % (hashlib.md5(path.read_bytes()).hexdigest(), path.name))
    (mirror / 'md5sum.txt').write_text('\n'.join(md5_lines) + '\n')
    env = dict(os.environ, MODEL_DIR=str(tmp_path / 'model'), DATA_DIR=str(tmp_path / 'data'),
               **dict(TINY, EPOCHS='1'))
    result = subprocess.run(['sh', str(REPO_ROOT / 'run.sh'), 'librispeech', '--mirror',
                             str(mirror)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    combined = (tmp_path / 'data' / 'train-all.csv').read_text().splitlines()
    assert len(combined) - 1 == 3 * int(TINY['DEMO_TRAIN_UTTERANCES'])
    with zipfile.ZipFile(tmp_path / 'model' / json.loads(
            (tmp_path / 'model' / 'checkpoints.json').read_text())['latest']) as archive:
        config = json.loads(archive.read('meta.json'))['config']
    assert config['train']['wer_threshold'] == 0.23
    assert config['data']['train_data_dir'].endswith('train-all.csv')
    assert config['data']['eval_data_dir'].endswith('dev-all.csv')
    assert '==> summary (librispeech)' in result.stdout
