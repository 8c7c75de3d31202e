"""A small word n-gram language model written as an ARPA file, for beam search demos and tests.

KenLM's ``lmplz`` is not installable from PyPI, so this builds a model from a
list of sentences with interpolated absolute discounting:

    p(w | h) = max(c(h w) - D, 0) / c(h) + gamma(h) * p(w | h'),
    gamma(h) = D * N1+(h .) / c(h)

where ``h'`` drops the oldest word of ``h`` and unigrams interpolate with the
uniform distribution over the vocabulary (``<unk>`` included). Written in ARPA
form, the interpolated probability is the n-gram's entry and ``gamma(h)`` is
the back-off weight of ``h``, so the model is normalized exactly as KenLM reads
it. Words are lower-case as in the transcripts; for real corpora use lmplz.
"""
import collections
import math

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
    """log10 p(w | h) for every seen n-gram, and log10 gamma(h) for every seen context."""
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
    log10_probs = {ngram: math.log10(p) for ngram, p in probs.items()}
    log10_gammas = {context: math.log10(g) for context, g in gammas.items()}
    return log10_probs, log10_gammas


def write_arpa(sentences, path, order=3, discount=0.5):
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
    """
    if not isinstance(order, int) or order < 2:
        raise ValueError('order must be an integer >= 2, got %r' % (order,))
    if not 0 < discount <= 1:
        raise ValueError('discount must be in (0, 1], got %r' % (discount,))
    counts = _count_ngrams([s for s in sentences if s.split()], order)
    if not counts[1]:
        raise ValueError('no words to build a language model from')
    log10_probs, log10_gammas = _interpolated_log10_probs(counts, order, discount)
    log10_probs[(_SENTENCE_START,)] = _NEVER

    by_order = collections.defaultdict(list)
    for ngram in log10_probs:
        by_order[len(ngram)].append(ngram)
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\\data\\\n')
        for n in range(1, order + 1):
            f.write('ngram %d=%d\n' % (n, len(by_order[n])))
        for n in range(1, order + 1):
            f.write('\n\\%d-grams:\n' % n)
            for ngram in sorted(by_order[n]):
                line = '%.7f\t%s' % (log10_probs[ngram], ' '.join(ngram))
                # Unigram lines always carry a back-off column: pyctcdecode reads the
                # unigram list from lines with exactly three tab-separated fields.
                if n < order:
                    line += '\t%.7f' % log10_gammas.get(ngram, 0.0)
                f.write(line + '\n')
        f.write('\n\\end\\\n')
