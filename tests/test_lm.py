"""The ARPA writer: hand-computed probabilities, and a normalized model as KenLM reads it."""
import math

import pytest

from gluon_ds2.lm import write_arpa

kenlm = pytest.importorskip('kenlm')

SENTENCES = ['the cat sat on the mat', 'the cat ate', 'a dog sat on a log', "the dog's mat"]


def log10_prob(model, context, word, sentence_start=True):
    """log10 p(word | context) through KenLM's own back-off arithmetic."""
    state, next_state = kenlm.State(), kenlm.State()
    if sentence_start:
        model.BeginSentenceWrite(state)
    else:
        model.NullContextWrite(state)
    for context_word in context:
        model.BaseScore(state, context_word, next_state)
        state, next_state = next_state, state
    return model.BaseScore(state, word, next_state)


def test_probabilities_computed_by_hand(tmp_path):
    path = str(tmp_path / 'tiny.arpa')
    write_arpa(['a b'], path, order=2, discount=0.5)
    model = kenlm.Model(path)
    # Predicted tokens a, b, </s>: N = 3, three types, |V| = 4 with <unk>.
    # gamma = 0.5 * 3 / 3; p(a) = (1 - 0.5) / 3 + gamma / 4 = 7/24, p(<unk>) = gamma / 4.
    assert log10_prob(model, [], 'a', sentence_start=False) == pytest.approx(
        math.log10(7 / 24), abs=1e-6)
    assert log10_prob(model, [], '<unk>', sentence_start=False) == pytest.approx(
        math.log10(1 / 8), abs=1e-6)
    # p(a | <s>) = (1 - 0.5) / 1 + 0.5 * p(a) = 31/48.
    assert log10_prob(model, [], 'a') == pytest.approx(math.log10(31 / 48), abs=1e-6)
    # b never follows <s>: back-off weight 0.5 times p(b) = 7/24.
    assert log10_prob(model, [], 'b') == pytest.approx(math.log10(0.5 * 7 / 24), abs=1e-6)


@pytest.mark.parametrize('order', [2, 3, 4])
def test_every_context_is_a_distribution(tmp_path, order):
    path = str(tmp_path / 'model.arpa')
    write_arpa(SENTENCES, path, order=order)
    model = kenlm.Model(path)
    assert model.order == order
    vocabulary = sorted({w for s in SENTENCES for w in s.split()}) + ['</s>', '<unk>']
    contexts = [[], ['the'], ['the', 'cat'], ['on', 'a'], ['mat'], ['zebra'], ['cat', 'zebra']]
    for sentence_start in (True, False):
        for context in contexts:
            total = sum(10 ** log10_prob(model, context, word, sentence_start)
                        for word in vocabulary)
            assert total == pytest.approx(1.0, abs=1e-5), (sentence_start, context)


def test_pruned_probabilities_computed_by_hand(tmp_path):
    path = str(tmp_path / 'pruned.arpa')
    assert write_arpa(['a b', 'a b', 'a c'], path, order=2, min_count=2) == {1: 6, 2: 3}
    model = kenlm.Model(path)
    # Predicted a, a, a, b, b, c, </s> x 3: N = 9, four types, |V| = 5 with <unk>.
    unigram_gamma = 0.5 * 4 / 9
    p_b = 1.5 / 9 + unigram_gamma / 5
    p_c = 0.5 / 9 + unigram_gamma / 5
    # After a: b twice, c once (pruned); gamma(a) = 0.5 * 2 / 3.
    p_b_after_a = 1.5 / 3 + (1 / 3) * p_b
    bow_a = (1 - p_b_after_a) / (1 - p_b)
    assert log10_prob(model, ['a'], 'b') == pytest.approx(math.log10(p_b_after_a), abs=1e-6)
    assert log10_prob(model, ['a'], 'c') == pytest.approx(math.log10(bow_a * p_c), abs=1e-6)


@pytest.mark.parametrize('order, min_count', [(3, 2), (4, 2), (3, 3)])
def test_a_pruned_model_is_still_normalized_and_smaller(tmp_path, order, min_count):
    sentences = SENTENCES * 2 + ['the cat sat on a log', 'a dog ate the mat']
    full = write_arpa(sentences, str(tmp_path / 'full.arpa'), order=order)
    path = str(tmp_path / 'pruned.arpa')
    pruned = write_arpa(sentences, path, order=order, min_count=min_count)
    assert pruned[1] == full[1] and sum(pruned.values()) < sum(full.values())
    model = kenlm.Model(path)
    vocabulary = sorted({w for s in sentences for w in s.split()}) + ['</s>', '<unk>']
    for sentence_start in (True, False):
        for context in [[], ['the'], ['the', 'cat'], ['a', 'dog'], ['cat', 'sat', 'on'],
                        ['log'], ['ate', 'the']]:
            total = sum(10 ** log10_prob(model, context, word, sentence_start)
                        for word in vocabulary)
            assert total == pytest.approx(1.0, abs=1e-5), (sentence_start, context)


def test_seen_continuations_are_preferred(tmp_path):
    path = str(tmp_path / 'model.arpa')
    write_arpa(SENTENCES, path, order=3)
    model = kenlm.Model(path)
    assert model.score('the cat sat') > model.score('the kat sat')
    assert log10_prob(model, ['the'], 'cat') > log10_prob(model, ['the'], 'log')


@pytest.mark.parametrize('kwargs, message', [
    (dict(order=1), 'order must be an integer >= 2'),
    (dict(discount=0.0), r'discount must be in \(0, 1\]'),
    (dict(min_count=0), 'min_count must be an integer >= 1, got 0'),
])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_arpa(SENTENCES, str(tmp_path / 'x.arpa'), **kwargs)


def test_bad_sentences(tmp_path):
    with pytest.raises(ValueError, match='no words'):
        write_arpa(['', '  '], str(tmp_path / 'x.arpa'))
    with pytest.raises(ValueError, match='reserved word'):
        write_arpa(['the <unk> sat'], str(tmp_path / 'x.arpa'))


def test_build_lm_script_reads_gzipped_text_and_manifests(tmp_path):
    import gzip
    import subprocess
    import sys

    from conftest import REPO_ROOT
    text = tmp_path / 'lm-norm.txt.gz'
    with gzip.open(text, 'wt', encoding='ascii') as f:
        f.write('THE CAT SAT ON THE MAT\nTHE CAT SAT\nA DOG SAT\n')
    manifest = tmp_path / 'train.csv'
    manifest.write_text('wav_filename\twav_filesize\ttranscript\n/x.wav\t1\tthe dog ate\n')
    output = tmp_path / 'lm.arpa'
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'scripts' / 'build_lm.py'), str(text), str(manifest),
         '--order', '3', '--min_count', '2', '--output', str(output)],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # Seen twice or more: bigrams <s> the, the cat, cat sat, sat </s>; trigrams <s> the cat,
    # the cat sat.
    assert 'from 4 sentences' in result.stdout and '4 2-grams, 2 3-grams' in result.stdout
    model = kenlm.Model(str(output))
    assert 'cat' in model and 'ate' in model and 'CAT' not in model
    assert log10_prob(model, ['the'], 'cat') > log10_prob(model, ['the'], 'dog')
