"""CTC output -> transcript: greedy decoding, and beam search with an optional KenLM model.

Greedy decoding is the reference's ``DeepSpeechDecoder.decode``: argmax per
frame, merge repeats, drop blanks; unlike the reference it reads only the
first ``output_length`` frames of each utterance, so padding frames cannot add
characters. Its output is not white-space normalized, as in the reference.

Beam search is pyctcdecode (pure Python), with KenLM n-gram shallow fusion
when a model is given. Both are optional extras::

    pip install pyctcdecode kenlm   # kenlm builds from source: needs g++, about a minute

pyctcdecode strips and collapses white space in what it returns. Beam search
is the slow part of scoring (pure Python, one utterance at a time), so a
:class:`BeamSearchDecoder` can spread a batch's utterances over worker
processes, each holding its own copy of the language model.
"""
import multiprocessing
import os
import weakref

import numpy as np

from .threads import available_cores

__all__ = ['greedy_decode', 'greedy_decode_batch', 'BeamSearchDecoder', 'auto_processes']

# KenLM binary files start with this; anything else is read as ARPA text.
_KENLM_BINARY_MAGIC = b'mmap lm http://kheafield.com/code'


def _check_logits(logits, output_lengths, vocab):
    """Validate (N, T, C) logits against the vocabulary and (N,) lengths."""
    if logits.ndim != 3 or logits.shape[2] != vocab.num_classes:
        raise ValueError('expected logits of shape (N, T, %d) for a vocabulary of %d tokens '
                         'plus the blank, got %s'
                         % (vocab.num_classes, len(vocab.tokens), logits.shape))
    if output_lengths.shape != logits.shape[:1]:
        raise ValueError('expected %d output lengths, got an array of shape %s'
                         % (logits.shape[0], output_lengths.shape))
    if np.any(output_lengths < 0) or np.any(output_lengths > logits.shape[1]):
        raise ValueError('output lengths must lie in [0, %d] (the frames of the logits), got %s'
                         % (logits.shape[1], output_lengths))


def greedy_decode(logits, length, vocab):
    """Best path of one utterance: argmax over (T, C) logits or log-probabilities -> str."""
    logits = np.asarray(logits)
    return greedy_decode_batch(logits[np.newaxis], np.array([length]), vocab)[0]


def greedy_decode_batch(logits, output_lengths, vocab):
    """Best path of each utterance in a batch.

    Parameters
    ----------
    logits : numpy.ndarray, shape (N, T, C)
        Logits or log-probabilities; C is ``vocab.num_classes``, the blank last.
    output_lengths : numpy.ndarray, shape (N,)
        Valid frames of each utterance (``model.output_length`` of its input length).
    vocab : gluon_ds2.vocab.Vocabulary

    Returns
    -------
    list of str
    """
    logits = np.asarray(logits)
    output_lengths = np.asarray(output_lengths).astype(np.int64)
    _check_logits(logits, output_lengths, vocab)
    best_paths = logits.argmax(axis=2)  # (N, T)
    transcripts = []
    for best_path, length in zip(best_paths, output_lengths):
        best_path = best_path[:length]
        # Keep the first frame of each run of equal ids, then drop the blanks.
        run_starts = np.ones(len(best_path), dtype=bool)
        run_starts[1:] = best_path[1:] != best_path[:-1]
        ids = best_path[run_starts]
        transcripts.append(vocab.decode(ids[ids != vocab.blank_id].tolist()))
    return transcripts


def _log_softmax(logits):
    """log-probabilities over the last axis, computed in float64 and returned as float32."""
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return (shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))).astype(np.float32)


def _is_kenlm_binary(path):
    with open(path, 'rb') as f:
        return f.read(len(_KENLM_BINARY_MAGIC)) == _KENLM_BINARY_MAGIC


class BeamSearchDecoder:
    """CTC prefix beam search (pyctcdecode), with an optional KenLM word n-gram model.

    Parameters
    ----------
    vocab : gluon_ds2.vocab.Vocabulary
    beam_width : int
        Prefixes kept after each frame.
    lm_path : str or None
        KenLM model, ARPA text or KenLM binary; its words must match the
        transcripts' normalization (lower case).
    alpha : float
        Weight of the language model's log-probability (shallow fusion).
    beta : float
        Bonus per decoded word, offsetting the LM's preference for short outputs.
    unigrams : collection of str or None
        The LM's vocabulary, which pyctcdecode uses to penalize out-of-vocabulary
        partial words. Read from the file when ``lm_path`` is ARPA; a binary model
        does not list it, and pyctcdecode warns if it is not given.
    processes : int
        Worker processes that decode a batch's utterances side by side (0: one per
        core, fewer if copies of an ARPA model would not fit in memory:
        :func:`auto_processes`; 1: in this process). Each loads its own copy of the LM
        (a KenLM binary is memory-mapped, so its pages are shared); the transcripts
        are the same.
        Call :meth:`close` to stop them before the decoder is collected.
    """

    def __init__(self, vocab, beam_width=100, lm_path=None, alpha=0.5, beta=1.0, unigrams=None,
                 processes=1):
        try:
            import pyctcdecode
        except ImportError:
            raise RuntimeError('beam search decoding needs pyctcdecode, an optional extra: '
                               'pip install pyctcdecode') from None
        if lm_path is not None:
            try:
                import kenlm  # noqa: F401  (pyctcdecode only logs a warning when it is missing)
            except ImportError:
                raise RuntimeError('decoding with a language model needs the kenlm module: '
                                   'pip install kenlm (builds from source with g++), or '
                                   'pip install https://github.com/kpu/kenlm/archive/master.zip'
                                   ) from None
            if not os.path.isfile(lm_path):
                raise ValueError('%s: language model file not found' % lm_path)
            if unigrams is None and not _is_kenlm_binary(lm_path):
                from pyctcdecode.language_model import load_unigram_set_from_arpa
                unigrams = load_unigram_set_from_arpa(lm_path)
        if beam_width < 1:
            raise ValueError('beam_width must be at least 1, got %r' % (beam_width,))
        if processes is None or processes < 0:
            raise ValueError('processes must be 0 (one per core) or more, got %r'
                             % (processes,))
        self.vocab = vocab
        self.beam_width = beam_width
        self.alpha, self.beta = alpha, beta
        self.processes = processes or auto_processes(
            available_cores(), _arpa_bytes(lm_path), _available_memory())
        # pyctcdecode wants one label per class: the blank is '' at its index, space is ' '.
        labels = list(vocab.tokens) + ['']
        self._decoder = pyctcdecode.build_ctcdecoder(
            labels, kenlm_model_path=lm_path, unigrams=unigrams, alpha=alpha, beta=beta)
        self._worker_args = (labels, lm_path, unigrams and sorted(unigrams), beam_width)
        self._pool = None

    def set_weights(self, alpha, beta):
        """New LM weight and word bonus, without loading the model again (tuning)."""
        self.alpha, self.beta = alpha, beta
        self._decoder.reset_params(alpha=alpha, beta=beta)

    def decode_batch(self, logits, output_lengths):
        """(N, T, C) logits and (N,) valid frames -> list of N transcripts."""
        logits = np.asarray(logits)
        output_lengths = np.asarray(output_lengths).astype(np.int64)
        _check_logits(logits, output_lengths, self.vocab)
        log_probs = _log_softmax(logits)
        utterances = [utterance[:length] for utterance, length in zip(log_probs, output_lengths)]
        if self.processes > 1 and len(utterances) > 1:
            tasks = [(utterance, self.alpha, self.beta) for utterance in utterances]
            return self._worker_pool().map(_decode_in_worker, tasks, chunksize=1)
        return [_decode_one(self._decoder, utterance, self.beam_width)
                for utterance in utterances]

    def _worker_pool(self):
        """The worker processes, started on first use and stopped with the decoder.

        They come from a fork server, as the data loader's workers do: a process
        forked from one whose MXNet engine and OpenMP threads are running is not
        safe to use.
        """
        if self._pool is None:
            context = multiprocessing.get_context('forkserver')
            self._pool = context.Pool(self.processes, initializer=_start_worker,
                                      initargs=self._worker_args)
            self._finalizer = weakref.finalize(self, _stop_pool, self._pool)
        return self._pool

    def close(self):
        """Stop the worker processes, if any were started (they finish their task first)."""
        if self._pool is not None:
            self._finalizer()
            self._pool = None


def _stop_pool(pool):
    # Not Pool.terminate: it takes the task queue's lock for good, and a worker that
    # wanted it, or its stop signal, would wait for ever if it ignored SIGTERM.
    pool.close()
    pool.join()


def auto_processes(cores, lm_bytes, available_bytes):
    """Worker processes for beam search: one per core, as many as memory allows.

    Each worker loads its own copy of an ARPA model (``lm_bytes``, 0 for none or a
    memory-mapped binary), counted at twice the file's size; the workers may take
    half of ``available_bytes`` (None: unknown, not limited).
    """
    if not lm_bytes or available_bytes is None:
        return cores
    return max(1, min(cores, int(available_bytes // 2 // (2 * lm_bytes))))


def _arpa_bytes(lm_path):
    if lm_path is None or _is_kenlm_binary(lm_path):
        return 0
    return os.path.getsize(lm_path)


def _available_memory():
    """MemAvailable from /proc/meminfo in bytes, or None where there is none."""
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _decode_one(decoder, log_probs, beam_width):
    # An utterance with no frames decodes to ''; pyctcdecode would warn on the empty array.
    return decoder.decode(log_probs, beam_width=beam_width) if len(log_probs) else ''


_WORKER = {}


def _start_worker(labels, lm_path, unigrams, beam_width):
    import logging
    import signal

    import pyctcdecode
    # The fork server is shared with the data loader, whose workers must ignore SIGTERM
    # (gluon_ds2.batchify); these may die of it (Pool.terminate).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # The parent has shown pyctcdecode's notes on the LM once already.
    logging.getLogger('pyctcdecode').setLevel(logging.ERROR)
    _WORKER['decoder'] = pyctcdecode.build_ctcdecoder(labels, kenlm_model_path=lm_path,
                                                      unigrams=unigrams)
    _WORKER['beam_width'] = beam_width


def _decode_in_worker(task):
    log_probs, alpha, beta = task
    decoder = _WORKER['decoder']
    decoder.reset_params(alpha=alpha, beta=beta)  # sets two attributes: no need to cache
    return _decode_one(decoder, log_probs, _WORKER['beam_width'])

