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


def test_seen_continuations_are_preferred(tmp_path):
    path = str(tmp_path / 'model.arpa')
    write_arpa(SENTENCES, path, order=3)
    model = kenlm.Model(path)
    assert model.score('the cat sat') > model.score('the kat sat')
    assert log10_prob(model, ['the'], 'cat') > log10_prob(model, ['the'], 'log')


@pytest.mark.parametrize('kwargs, message', [
    (dict(order=1), 'order must be an integer >= 2'),
    (dict(discount=0.0), r'discount must be in \(0, 1\]'),
])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_arpa(SENTENCES, str(tmp_path / 'x.arpa'), **kwargs)


def test_bad_sentences(tmp_path):
    with pytest.raises(ValueError, match='no words'):
        write_arpa(['', '  '], str(tmp_path / 'x.arpa'))
    with pytest.raises(ValueError, match='reserved word'):
        write_arpa(['the <unk> sat'], str(tmp_path / 'x.arpa'))
