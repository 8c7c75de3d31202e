"""Edit distances and error rates against a plain dynamic-programming Levenshtein."""
import random

import numpy as np
import pytest

from gluon_ds2.metrics import ErrorRateAccumulator, cer, char_edits, wer, word_edits


def dp_levenshtein(a, b):
    """Textbook O(len(a) * len(b)) edit distance over any two sequences."""
    previous = list(range(len(b) + 1))
    for i, item_a in enumerate(a, 1):
        current = [i]
        for j, item_b in enumerate(b, 1):
            current.append(min(previous[j] + 1,                          # deletion
                               current[j - 1] + 1,                       # insertion
                               previous[j - 1] + (item_a != item_b)))    # substitution
        previous = current
    return previous[-1]


@pytest.mark.parametrize('reference, hypothesis, expected_words, expected_chars', [
    ('the cat sat', 'the cat sat', 0, 0),
    ('the cat sat', '', 3, 11),
    ('the cat', 'the black cat sat', 2, 10),
    ('the black cat sat', 'the cat', 2, 10),
    ('a a a a', 'a a', 2, 4),
    ('a b a b', 'b a b a', 2, 4),
    ('kitten', 'sitting', 1, 3),
    ('  the   cat ', 'the cat', 0, 5),
])
def test_hand_computed_edits(reference, hypothesis, expected_words, expected_chars):
    assert word_edits(reference, hypothesis) == expected_words
    assert char_edits(reference, hypothesis) == expected_chars


def test_rates_divide_by_reference_length():
    assert wer('the cat sat', 'the bat sat') == pytest.approx(1 / 3)
    assert cer('the cat sat', 'the bat sat') == pytest.approx(1 / 11)
    # Insertions alone can push a rate past 1.
    assert wer('cat', 'the cat sat down') == pytest.approx(3.0)
    assert wer('the cat', '') == 1.0
    assert cer('the cat', '') == 1.0


def test_cer_keeps_spaces_like_the_reference():
    # The reference's cer is nltk's edit_distance on the untouched strings.
    assert cer('ab cd', 'abcd') == pytest.approx(1 / 5)


@pytest.mark.parametrize('reference', ['', '   '])
def test_empty_reference_is_rejected(reference):
    with pytest.raises(ValueError, match='has no words: WER is undefined'):
        wer(reference, 'anything')
    with pytest.raises(ValueError, match='has no words'):
        ErrorRateAccumulator().add(reference, 'anything')


def test_empty_reference_string_rejected_for_cer():
    with pytest.raises(ValueError, match='the reference transcript is empty: CER is undefined'):
        cer('', 'anything')


def test_random_strings_match_dynamic_programming():
    rng = random.Random(0)
    alphabet = "ab c'"
    for _ in range(500):
        reference = ''.join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        hypothesis = ''.join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert char_edits(reference, hypothesis) == dp_levenshtein(reference, hypothesis)
        assert word_edits(reference, hypothesis) == dp_levenshtein(reference.split(),
                                                                    hypothesis.split())


def test_corpus_rate_and_mean_rate_differ_as_computed_by_hand():
    accumulator = ErrorRateAccumulator()
    accumulator.add('a b', 'a c')                  # 1 word edit / 2 words, 1 char / 3 chars
    accumulator.add('a b c d e f', 'a b c d e f')  # 0 / 6 words, 0 / 11 chars
    result = accumulator.result()
    assert result['wer'] == pytest.approx(1 / 8)
    assert result['mean_wer'] == pytest.approx((1 / 2 + 0) / 2)
    assert result['cer'] == pytest.approx(1 / 14)
    assert result['mean_cer'] == pytest.approx((1 / 3 + 0) / 2)
    assert (result['utterances'], result['word_edits'], result['reference_words'],
            result['char_edits'], result['reference_chars']) == (2, 1, 8, 1, 14)


def test_mean_rates_equal_averaged_per_utterance_rates():
    rng = random.Random(1)
    pairs = [(' '.join(rng.choice(['the', 'cat', 'sat', 'on']) for _ in range(rng.randint(1, 8))),
              ' '.join(rng.choice(['the', 'cat', 'mat']) for _ in range(rng.randint(0, 8))))
             for _ in range(50)]
    accumulator = ErrorRateAccumulator()
    for reference, hypothesis in pairs:
        accumulator.add(reference, hypothesis)
    result = accumulator.result()
    assert result['mean_wer'] == pytest.approx(np.mean([wer(r, h) for r, h in pairs]))
    assert result['mean_cer'] == pytest.approx(np.mean([cer(r, h) for r, h in pairs]))


def test_vector_round_trip_and_sum_across_ranks():
    pairs = [('the cat sat', 'the cat'), ('on the mat', 'on a mat'), ('hello', 'hallo'),
             ('a b c', 'c b a')]
    whole = ErrorRateAccumulator()
    ranks = [ErrorRateAccumulator(), ErrorRateAccumulator()]
    for index, (reference, hypothesis) in enumerate(pairs):
        whole.add(reference, hypothesis)
        ranks[index % 2].add(reference, hypothesis)

    vector = whole.to_vector()
    assert vector.dtype == np.float64 and vector.ndim == 1
    assert ErrorRateAccumulator.from_vector(vector).result() == whole.result()

    # What an allreduce(op=Sum) of the ranks' vectors would give.
    summed = ErrorRateAccumulator.from_vector(ranks[0].to_vector() + ranks[1].to_vector())
    for key, value in whole.result().items():
        assert summed.result()[key] == pytest.approx(value)
    assert isinstance(summed.result()['utterances'], int)


def test_from_vector_rejects_wrong_length():
    with pytest.raises(ValueError, match='expected 7 sums'):
        ErrorRateAccumulator.from_vector(np.zeros(3))


def test_result_of_nothing_is_an_error():
    with pytest.raises(ValueError, match='no utterances were added'):
        ErrorRateAccumulator().result()


def test_add_returns_the_utterance_counts():
    accumulator = ErrorRateAccumulator()
    reference, hypothesis = 'the cat sat on the mat', 'the cat sat on mat mat'
    counts = accumulator.add(reference, hypothesis)
    assert counts == dict(word_edits=dp_levenshtein(reference.split(), hypothesis.split()),
                          reference_words=6, char_edits=dp_levenshtein(reference, hypothesis),
                          reference_chars=len(reference))
