"""A small word n-gram language model written as an ARPA file, for beam search demos and tests.

KenLM's ``lmplz`` is not installable from PyPI, so this builds a model from a
list of sentences with interpolated absolute discounting:

    p(w | h) = max(c(h w) - D, 0) / c(h) + gamma(h) * p(w | h'),
    gamma(h) = D * N1+(h .) / c(h)

where ``h'`` drops the oldest word of ``h`` and unigrams interpolate with the
uniform distribution over the vocabulary (``<unk>`` included). Written in ARPA
form, the interpolated probability is the n-gram's entry and the back-off
weight of ``h`` is what the words without an entry after ``h`` have left:

    bow(h) = (1 - sum_{w listed after h} p(w | h)) / (1 - sum_{same w} p(w | h'))

so the model is normalized exactly as KenLM reads it. Without pruning that is
``gamma(h)``; pruning (``min_count``) drops the n-grams of order 2 and up seen
fewer times, and their probability mass goes back to ``bow(h)``. Words are
lower-case as in the transcripts; for real corpora use lmplz.
"""
import collections
import math

from .atomic import atomic_write_text

__all__ = ['write_arpa']

_SENTENCE_START, _SENTENCE_END, _UNKNOWN = '<s>', '</s>', '<unk>'
# ARPA's conventional log10 probability for <s>, which is never predicted.
_NEVER = -99.0


def _count_ngrams(sentences, order):
    """n-gram counts per order: ``counts[n][ngram_tuple]`` for n = 1 .. order."""
    counts = {n: collections.Counter() for n in range(1, order + 1)}
    for sentence in sentences:
        words = sentence.split()
        reserved = {_SENTENCE_START, _SENTENCE_END, _UNKNOWN}.intersection(words)
        if reserved:
            raise ValueError('sentence %r uses the reserved word(s) %s'
                             % (sentence, ', '.join(sorted(reserved))))
        tokens = [_SENTENCE_START] + words + [_SENTENCE_END]
        for n in range(1, order + 1):
            # Every n-gram ends in a predicted token, so none ends in <s>.
            for end in range(1, len(tokens)):
                if end - n + 1 >= 0:
                    counts[n][tuple(tokens[end - n + 1:end + 1])] += 1
    return counts


def _interpolated_log10_probs(counts, order, discount):
    """log10 p(w | h) for every seen n-gram, interpolated with the lower orders."""
    unigram_total = sum(counts[1].values())
    vocabulary_size = len(counts[1]) + 1  # seen words and </s>, plus <unk>
    unigram_gamma = discount * len(counts[1]) / unigram_total
    probs = {(_UNKNOWN,): unigram_gamma / vocabulary_size}
    for (word,), count in counts[1].items():
        probs[(word,)] = (count - discount) / unigram_total + unigram_gamma / vocabulary_size
    gammas = {}
    for n in range(2, order + 1):
        context_totals = collections.Counter()
        context_types = collections.Counter()
        for ngram, count in counts[n].items():
            context_totals[ngram[:-1]] += count
            context_types[ngram[:-1]] += 1
        for context, total in context_totals.items():
            gammas[context] = discount * context_types[context] / total
        for ngram, count in counts[n].items():
            context = ngram[:-1]
            probs[ngram] = ((count - discount) / context_totals[context]
                            + gammas[context] * probs[ngram[1:]])
    return {ngram: math.log10(p) for ngram, p in probs.items()}


def _prune(log10_probs, counts, min_count):
    """Drop the n-grams of order >= 2 seen fewer than ``min_count`` times.

    Counts never grow with the order (every occurrence of ``a b c`` is one of
    ``a b`` and of ``b c``), so what is kept keeps its prefix and suffix, as
    ARPA requires.
    """
    return {ngram: p for ngram, p in log10_probs.items()
            if len(ngram) == 1 or counts[len(ngram)][ngram] >= min_count}


def _backoff_weights(log10_probs, order):
    """log10 bow(h) for every listed context h, from the listed probabilities (docstring)."""
    children = collections.defaultdict(list)
    for ngram in log10_probs:
        if len(ngram) > 1:
            children[ngram[:-1]].append(ngram[-1])
    log10_bows = {}

    def lower_order_log10_prob(ngram):
        # What the final model gives: the listed entry, or back off one word.
        if ngram in log10_probs:
            return log10_probs[ngram]
        return log10_bows.get(ngram[:-1], 0.0) + lower_order_log10_prob(ngram[1:])

    for n in range(1, order):     # contexts shortest first: each uses the shorter's weights
        for context in [c for c in children if len(c) == n]:
            words = children[context]
            listed = math.fsum(10 ** log10_probs[context + (w,)] for w in words)
            lower = math.fsum(10 ** lower_order_log10_prob(context[1:] + (w,)) for w in words)
            log10_bows[context] = math.log10(max(1.0 - listed, 1e-12)) - math.log10(
                max(1.0 - lower, 1e-12))
    return log10_bows


def write_arpa(sentences, path, order=3, discount=0.5, min_count=1):
    """Estimate an ``order``-gram model from ``sentences`` and write it to ``path`` as ARPA.

    Parameters
    ----------
    sentences : iterable of str
        Training text, one sentence per item, words separated by white space.
    path : str
        Output ARPA file; KenLM (and so pyctcdecode) loads it directly.
    order : int
        Longest n-gram, at least 2.
    discount : float
        Absolute discount ``D`` subtracted from every seen count, in (0, 1].
    min_count : int
        Pruning: n-grams of order 2 and up seen fewer times are left out (1 keeps all).

    Returns
    -------
    dict
        n-grams written per order: ``{1: ..., 2: ..., ...}``.
    """
    if not isinstance(order, int) or order < 2:
        raise ValueError('order must be an integer >= 2, got %r' % (order,))
    if not 0 < discount <= 1:
        raise ValueError('discount must be in (0, 1], got %r' % (discount,))
    if not isinstance(min_count, int) or min_count < 1:
        raise ValueError('min_count must be an integer >= 1, got %r' % (min_count,))
    counts = _count_ngrams([s for s in sentences if s.split()], order)
    if not counts[1]:
        raise ValueError('no words to build a language model from')
    log10_probs = _prune(_interpolated_log10_probs(counts, order, discount), counts, min_count)
    log10_bows = _backoff_weights(log10_probs, order)
    log10_probs[(_SENTENCE_START,)] = _NEVER

    by_order = collections.defaultdict(list)
    for ngram in log10_probs:
        by_order[len(ngram)].append(ngram)

    def arpa_lines():
        yield '\\data\\\n'
        for n in range(1, order + 1):
            yield 'ngram %d=%d\n' % (n, len(by_order[n]))
        for n in range(1, order + 1):
            yield '\n\\%d-grams:\n' % n
            for ngram in sorted(by_order[n]):
                line = '%.7f\t%s' % (log10_probs[ngram], ' '.join(ngram))
                # Unigram lines always carry a back-off column: pyctcdecode reads the
                # unigram list from lines with exactly three tab-separated fields.
                if n < order:
                    line += '\t%.7f' % log10_bows.get(ngram, 0.0)
                yield line + '\n'
        yield '\n\\end\\\n'

    atomic_write_text(path, arpa_lines())
    return {n: len(by_order[n]) for n in range(1, order + 1)}
