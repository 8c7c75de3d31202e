"""Edit distance, word and character error rates, and an accumulator over a corpus.

Per-utterance rates follow the reference's ``DeepSpeechDecoder``: WER is the
Levenshtein distance between the white-space-split word lists divided by the
number of reference words; CER is the Levenshtein distance between the two
strings as given, spaces included, divided by the reference's length. (The
TF reference does not strip spaces for CER; deepspeech.pytorch does.) The
reference then reports the mean of these per-utterance rates; papers and
jiwer report the corpus rate, total edits over total reference length.
:class:`ErrorRateAccumulator` keeps both.

Edit distances come from rapidfuzz (C++), which takes strings or lists of words.
"""
import numpy as np
from rapidfuzz.distance import Levenshtein

__all__ = ['word_edits', 'char_edits', 'wer', 'cer', 'ErrorRateAccumulator']


def word_edits(reference, hypothesis):
    """Word substitutions, insertions and deletions turning ``reference`` into ``hypothesis``."""
    return Levenshtein.distance(reference.split(), hypothesis.split())


def char_edits(reference, hypothesis):
    """Character substitutions, insertions and deletions, spaces counted as characters."""
    return Levenshtein.distance(reference, hypothesis)


def _reference_words(reference):
    words = reference.split()
    if not words:
        raise ValueError('the reference transcript %r has no words: WER is undefined '
                         '(the reference implementation would divide by zero); '
                         'drop empty transcripts from the manifest' % (reference,))
    return len(words)


def _reference_chars(reference):
    if not reference:
        raise ValueError('the reference transcript is empty: CER is undefined '
                         '(the reference implementation would divide by zero); '
                         'drop empty transcripts from the manifest')
    return len(reference)


def wer(reference, hypothesis):
    """Word error rate of one utterance: word edits / reference words."""
    return word_edits(reference, hypothesis) / _reference_words(reference)


def cer(reference, hypothesis):
    """Character error rate of one utterance: character edits / reference characters."""
    return char_edits(reference, hypothesis) / _reference_chars(reference)


class ErrorRateAccumulator:
    """Sums edit counts and per-utterance rates over many utterances.

    The sums travel as one float64 vector (:meth:`to_vector`), so ranks of a
    distributed evaluation can add theirs with a single allreduce and rebuild
    the total with :meth:`from_vector`. Counts stay exact in float64 up to 2**53.
    """

    _FIELDS = ('word_edits', 'reference_words', 'char_edits', 'reference_chars',
               'wer_sum', 'cer_sum', 'utterances')

    def __init__(self):
        for name in self._FIELDS:
            setattr(self, name, 0)

    def add(self, reference, hypothesis):
        """Count one utterance; an empty reference raises ``ValueError``.

        Returns the utterance's ``word_edits``, ``reference_words``,
        ``char_edits`` and ``reference_chars``, for per-utterance reports.
        """
        reference_words = _reference_words(reference)
        reference_chars = _reference_chars(reference)
        utterance_word_edits = word_edits(reference, hypothesis)
        utterance_char_edits = char_edits(reference, hypothesis)
        self.word_edits += utterance_word_edits
        self.reference_words += reference_words
        self.char_edits += utterance_char_edits
        self.reference_chars += reference_chars
        self.wer_sum += utterance_word_edits / reference_words
        self.cer_sum += utterance_char_edits / reference_chars
        self.utterances += 1
        return dict(word_edits=utterance_word_edits, reference_words=reference_words,
                    char_edits=utterance_char_edits, reference_chars=reference_chars)

    def to_vector(self):
        """The sums as a flat float64 array, in the order of ``_FIELDS``."""
        return np.array([getattr(self, name) for name in self._FIELDS], dtype=np.float64)

    @classmethod
    def from_vector(cls, vector):
        """Rebuild an accumulator from :meth:`to_vector` output (or a sum of several)."""
        vector = np.asarray(vector, dtype=np.float64).ravel()
        if vector.shape != (len(cls._FIELDS),):
            raise ValueError('expected %d sums (%s), got an array of shape %s'
                             % (len(cls._FIELDS), ', '.join(cls._FIELDS), vector.shape))
        accumulator = cls()
        for name, value in zip(cls._FIELDS, vector):
            is_count = not name.endswith('_sum')
            setattr(accumulator, name, int(round(value)) if is_count else float(value))
        return accumulator

    def result(self):
        """Corpus rates (``wer``, ``cer``), the reference's per-utterance means
        (``mean_wer``, ``mean_cer``) and the raw counts, as a dict."""
        if self.utterances == 0:
            raise ValueError('no utterances were added: error rates are undefined')
        return {
            'wer': self.word_edits / self.reference_words,
            'cer': self.char_edits / self.reference_chars,
            'mean_wer': self.wer_sum / self.utterances,
            'mean_cer': self.cer_sum / self.utterances,
            'utterances': self.utterances,
            'word_edits': self.word_edits,
            'reference_words': self.reference_words,
            'char_edits': self.char_edits,
            'reference_chars': self.reference_chars,
        }
