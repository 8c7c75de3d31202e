"""evaluate.py as a user runs it: what it scores, what it writes, and how it fails.

The model is the session's ``trained_model_dir`` (a tiny model, far from converged, with
non-empty deterministic transcripts), copied so that the files evaluate.py writes stay here.
Error rates are recomputed from the per-utterance results with a textbook edit distance.
"""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO_ROOT, edit_distance, lacks_bfloat16, needs_bfloat16
from gluon_ds2.checkpoint import read_index
from gluon_ds2.manifest import read_manifest

RESULT_COLUMNS = ['wav_filename', 'duration', 'reference', 'hypothesis', 'word_edits',
                  'reference_words', 'char_edits', 'reference_chars']

pytestmark = pytest.mark.slow


def evaluate(*args):
    return subprocess.run([sys.executable, str(REPO_ROOT / 'evaluate.py'), *map(str, args)],
                          capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS='1'), timeout=300)


def printed_rate(stdout, name):
    """The corpus rate evaluate.py printed, e.g. ``WER (corpus)      0.9787``."""
    return float(re.search(r'^%s \(corpus\)\s+([0-9.]+) ' % name, stdout, re.M).group(1))


def scored_checkpoint(stderr):
    """The checkpoint evaluate.py says it loaded."""
    return re.search(r'INFO checkpoint (\S+) \(epoch', stderr).group(1)


def read_results(path):
    with open(path) as f:
        if str(path).endswith('.csv'):
            return list(csv.DictReader(f))
        return [json.loads(line) for line in f]


def recomputed(results):
    """Corpus WER and CER from the references and hypotheses alone."""
    word_edits = sum(edit_distance(r['reference'].split(), r['hypothesis'].split())
                     for r in results)
    char_edits = sum(edit_distance(r['reference'], r['hypothesis']) for r in results)
    return (word_edits / sum(len(r['reference'].split()) for r in results),
            char_edits / sum(len(r['reference']) for r in results))


@pytest.fixture
def model_dir(trained_model_dir, tmp_path):
    copy = tmp_path / 'model'
    shutil.copytree(trained_model_dir, copy)
    return copy


def eval_record(model_dir, checkpoint):
    """The metrics.jsonl evaluation made in training of this checkpoint's step."""
    step = int(re.search(r'ckpt-(\d+)\.ckpt$', checkpoint).group(1))
    with open(os.path.join(model_dir, 'metrics.jsonl')) as f:
        return next(r for r in map(json.loads, f) if r['kind'] == 'eval' and r['step'] == step)


def test_model_dir_alone_scores_its_best_checkpoint_on_its_eval_set(model_dir, demo_manifests):
    result = evaluate(model_dir)
    assert result.returncode == 0, result.stderr
    index = read_index(str(model_dir))
    checkpoint = str(model_dir / index['best'])
    assert scored_checkpoint(result.stderr) == checkpoint
    assert 'scoring %s' % demo_manifests['dev'] in result.stderr  # recorded at training time

    output = model_dir / 'eval' / ('%s-dev.jsonl' % index['best'][:-len('.ckpt')])
    assert result.stdout.strip().splitlines()[-1] == 'per-utterance results: %s' % output
    results = read_results(output)
    dev = read_manifest(str(demo_manifests['dev']))
    assert sorted(r['wav_filename'] for r in results) == sorted(dev.wav_filename)
    assert {r['wav_filename']: r['reference'] for r in results} == \
        dict(zip(dev.wav_filename, dev.transcript))
    wer, cer = recomputed(results)
    assert printed_rate(result.stdout, 'WER') == round(wer, 4)
    assert printed_rate(result.stdout, 'CER') == round(cer, 4)
    # The same figures training logged for this checkpoint.
    record = eval_record(model_dir, checkpoint)
    assert (record['wer'], record['cer']) == pytest.approx((wer, cer), abs=1e-12)
    assert re.search(r'^utterances\s+%d ' % len(dev), result.stdout, re.M)


def test_which_latest_and_an_explicit_checkpoint_file(model_dir):
    index = read_index(str(model_dir))
    latest = evaluate(model_dir, '--which=latest', '--num_workers=0')
    assert latest.returncode == 0, latest.stderr
    assert scored_checkpoint(latest.stderr) == str(model_dir / index['latest'])
    by_file = evaluate(model_dir / index['latest'], '--num_workers=0')
    assert by_file.returncode == 0, by_file.stderr
    assert scored_checkpoint(by_file.stderr) == str(model_dir / index['latest'])
    assert printed_rate(by_file.stdout, 'CER') == printed_rate(latest.stdout, 'CER') == \
        round(eval_record(model_dir, index['latest'])['cer'], 4)


@pytest.mark.parametrize('suffix', ['jsonl', 'csv'])
def test_eval_data_dir_overrides_and_results_have_the_documented_columns(
        model_dir, demo_manifests, tmp_path, suffix):
    output = tmp_path / ('results.%s' % suffix)
    result = evaluate(model_dir, '--eval_data_dir=%s' % demo_manifests['test'],
                      '--output=%s' % output, '--num_workers=0')
    assert result.returncode == 0, result.stderr
    assert 'scoring %s' % demo_manifests['test'] in result.stderr
    results = read_results(output)
    if suffix == 'csv':
        with open(output) as f:
            assert next(csv.reader(f)) == RESULT_COLUMNS
    else:
        assert all(list(r) == RESULT_COLUMNS for r in results)
    test = read_manifest(str(demo_manifests['test']))
    assert {r['wav_filename']: r['reference'] for r in results} == \
        dict(zip(test.wav_filename, test.transcript))
    for r in results:
        reference, hypothesis = r['reference'], r['hypothesis'] or ''  # CSV: '' reads as ''
        assert int(r['word_edits']) == edit_distance(reference.split(), hypothesis.split())
        assert int(r['char_edits']) == edit_distance(reference, hypothesis)
        assert int(r['reference_words']) == len(reference.split())
        assert int(r['reference_chars']) == len(reference)
        assert 0 < float(r['duration']) < 10
    wer, cer = recomputed(results)
    assert printed_rate(result.stdout, 'WER') == round(wer, 4)
    assert printed_rate(result.stdout, 'CER') == round(cer, 4)


def test_padded_batches_give_the_hypotheses_of_single_utterances(model_dir, demo_manifests,
                                                                 tmp_path):
    hypotheses = {}
    for batch_size in (1, 8):
        output = tmp_path / ('batch%d.jsonl' % batch_size)
        result = evaluate(model_dir, '--eval_data_dir=%s' % demo_manifests['test'],
                          '--batch_size=%d' % batch_size, '--output=%s' % output,
                          '--num_workers=0')
        assert result.returncode == 0, result.stderr
        hypotheses[batch_size] = {r['wav_filename']: r['hypothesis']
                                  for r in read_results(output)}
    assert len(hypotheses[1]) == 6 and all(hypotheses[1].values())
    assert hypotheses[8] == hypotheses[1]


def truncate(path):
    with open(path, 'r+b') as f:
        f.truncate(os.path.getsize(path) // 2)


def change_config(path):
    """The checkpoint now claims a wider model than its parameters are."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(members['meta.json'])
    meta['config']['model']['rnn_hidden_size'] *= 2
    members['meta.json'] = json.dumps(meta).encode()
    with zipfile.ZipFile(path, 'w') as archive:
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.mark.parametrize('damage, message', [
    (None, '{path}: checkpoint not found'),
    (truncate, '{path}: not a readable gluon-ds2 checkpoint ('),
    (change_config, '{path}: parameters do not fit the model ('),
], ids=['missing', 'truncated', 'other_model'])
def test_unusable_checkpoint_is_a_one_line_error(model_dir, damage, message):
    path = model_dir / read_index(str(model_dir))['latest']
    if damage is None:
        path = model_dir / 'ckpt-99999999.ckpt'
    else:
        damage(path)
    result = evaluate(path, '--num_workers=0')
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('evaluate.py: error: ' + message.format(path=path)), last


def test_greedy_and_beam_in_one_run_equal_two_separate_runs(model_dir, demo_manifests,
                                                             tmp_path):
    """``--decoder=greedy,beam`` decodes the same forward passes twice: each results file and
    report equals what a run with that decoder alone gives."""
    pytest.importorskip('pyctcdecode')
    import pandas as pd

    from gluon_ds2.lm import write_arpa
    lm = tmp_path / 'train.arpa'
    write_arpa(pd.read_csv(demo_manifests['train'], sep='\t').transcript, str(lm), order=3)
    common = ['--eval_data_dir=%s' % demo_manifests['test'], '--num_workers=0', '--worst=2',
              '--beam_width=8', '--lm=%s' % lm, '--alpha=0.5', '--beta=1']
    both = evaluate(model_dir, *common, '--decoder=greedy,beam',
                    '--output=%s,%s' % (tmp_path / 'g.jsonl', tmp_path / 'b.jsonl'))
    assert both.returncode == 0, both.stderr
    assert both.stderr.count('INFO checkpoint ') == 1  # one model, one pass over the data
    sections = both.stdout.split('decoder           ')[1:]
    assert [s.splitlines()[0] for s in sections] == [
        'greedy', 'beam search (width 8), LM %s, alpha 0.5, beta 1' % lm]
    for name, section, alone_flags in (
            ('g', sections[0], ['--decoder=greedy', '--lm=']),
            ('b', sections[1], ['--decoder=beam'])):
        output = tmp_path / ('%s_alone.jsonl' % name)
        alone = evaluate(model_dir, *common, *alone_flags, '--output=%s' % output)
        assert alone.returncode == 0, alone.stderr
        assert read_results(tmp_path / ('%s.jsonl' % name)) == read_results(output)
        drop_timing = re.compile(r'^decode time .*$|^per-utterance results: .*$', re.M)
        assert drop_timing.sub('', section.split('\n', 1)[1]).strip() == \
            drop_timing.sub('', alone.stdout).strip()
    # Beam search with an LM differs from greedy on this model, so the two files are not one
    # decoder's output written twice.
    assert read_results(tmp_path / 'g.jsonl') != read_results(tmp_path / 'b.jsonl')


def test_several_decoders_name_their_default_files_and_need_one_output_each(model_dir,
                                                                            tmp_path):
    result = evaluate(model_dir, '--decoder=greedy,beam', '--num_workers=0', '--beam_width=4')
    assert result.returncode == 0, result.stderr
    written = re.findall(r'^per-utterance results: (\S+)$', result.stdout, re.M)
    stem = os.path.join(str(model_dir), 'eval', os.path.basename(
        scored_checkpoint(result.stderr))[:-len('.ckpt')] + '-dev')
    assert written == [stem + '-greedy.jsonl', stem + '-beam.jsonl']
    assert all(os.path.exists(p) for p in written)

    result = evaluate(model_dir, '--decoder=greedy,beam', '--output=%s' % (tmp_path / 'one.jsonl'))
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        'evaluate.py: error: --output names 1 file(s) for 2 decoder(s) (greedy,beam): give one '
        'path per decoder, comma-separated in the same order')
    for value in ('greedy,greedy', 'beam,viterbi'):
        result = evaluate(model_dir, '--decoder=%s' % value)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines()[-1] == (
            "evaluate.py: error: argument --decoder: expected greedy or beam, or both "
            "comma-separated, each once; got %r" % value)


@pytest.mark.parametrize('flag, message', [
    ('--decode_processes=-1', 'argument --decode_processes: must be at least 0, got -1'),
    ('--beam_width=0', 'argument --beam_width: must be at least 1, got 0'),
    ('--batch_size=0', 'argument --batch_size: must be at least 1, got 0')])
def test_decoding_counts_below_their_minimum_are_errors_naming_the_flag(model_dir, flag,
                                                                        message):
    result = evaluate(model_dir, '--decoder=beam', flag)
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == 'evaluate.py: error: ' + message


def test_model_dir_without_checkpoints_and_missing_manifest_are_one_line_errors(model_dir,
                                                                                 tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    result = evaluate(empty)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        'evaluate.py: error: %s: no latest checkpoint in this model directory (nothing saved '
        'yet)' % empty)

    missing = tmp_path / 'missing.csv'
    result = evaluate(model_dir, '--eval_data_dir=%s' % missing, '--num_workers=0')
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('evaluate.py: error: ') and str(missing) in last, last


@needs_bfloat16
def test_bfloat16_scores_as_float32_does(model_dir):
    """--dtype bfloat16 (convs and dense layer in bfloat16): the same error rates, nearly."""
    rates = {}
    for dtype in ('float32', 'bfloat16'):
        result = evaluate(model_dir, '--dtype', dtype, '--num_workers=0',
                          '--output', model_dir / ('%s.jsonl' % dtype))
        assert result.returncode == 0, result.stderr
        rates[dtype] = printed_rate(result.stdout, 'WER'), printed_rate(result.stdout, 'CER')
    assert 'convolutions and dense layers in bfloat16' in result.stderr
    assert rates['bfloat16'] == pytest.approx(rates['float32'], abs=0.02)


@lacks_bfloat16
def test_bfloat16_on_a_cpu_without_its_kernels_is_a_one_line_error(model_dir):
    result = evaluate(model_dir, '--dtype', 'bfloat16', '--num_workers=0')
    assert result.returncode != 0 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        'evaluate.py: error: --dtype=bfloat16 needs a CPU with AVX-512: the oneDNN 2.4.4 '
        'inside mxnet 1.9.1 has no bfloat16 kernels for this one; use --dtype=float32')


def test_float16_on_cpu_is_a_one_line_error(model_dir):
    result = evaluate(model_dir, '--dtype', 'float16')
    assert result.returncode != 0
    assert '--dtype=float16 needs GPUs' in result.stderr.strip().splitlines()[-1]
