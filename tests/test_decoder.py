"""Greedy decoding on hand-built logits; beam search against greedy and with a KenLM model."""
import os
import shutil
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from gluon_ds2.decoder import BeamSearchDecoder, greedy_decode, greedy_decode_batch
from gluon_ds2.lm import write_arpa
from gluon_ds2.vocab import Vocabulary

VOCAB = Vocabulary.from_file()
LM_SENTENCES = ['the cat sat on the mat', 'the cat ate the fish', 'a cat and the dog',
                'the dog sat', 'the cat']


def path_logits(path, vocab=VOCAB):
    """(T, C) logits whose argmax spells ``path`` frame by frame; '_' is the blank."""
    ids = [vocab.blank_id if ch == '_' else vocab.encode(ch)[0] for ch in path]
    logits = np.zeros((len(ids), vocab.num_classes), dtype=np.float32)
    logits[np.arange(len(ids)), ids] = 1.0
    return logits


@pytest.mark.parametrize('path, expected', [
    ('hheel_llo', 'hello'),        # repeats merge; a blank separates the double l
    ('hhel_lo', 'hello'),
    ('a_a_a', 'aaa'),
    ('aaa', 'a'),
    ('_____', ''),
    ('__a b__', 'a b'),
    ("  it's  ", " it's "),        # spaces are kept as decoded, like the reference
])
def test_greedy_on_hand_built_paths(path, expected):
    assert greedy_decode(path_logits(path), len(path), VOCAB) == expected


def test_greedy_reads_only_the_valid_frames():
    logits = np.stack([path_logits('ab_c'), path_logits('xyzz')])
    assert greedy_decode_batch(logits, np.array([2, 4]), VOCAB) == ['ab', 'xyz']
    assert greedy_decode_batch(logits, [0, 3], VOCAB) == ['', 'xyz']
    # A repeat that straddles the cut is one character either way.
    assert greedy_decode(path_logits('aab'), 2, VOCAB) == 'a'


def test_greedy_checks_shapes():
    logits = np.zeros((2, 5, VOCAB.num_classes - 1))
    with pytest.raises(ValueError, match=r'expected logits of shape \(N, T, 29\)'):
        greedy_decode_batch(logits, [5, 5], VOCAB)
    logits = np.zeros((2, 5, VOCAB.num_classes))
    with pytest.raises(ValueError, match='output lengths must lie in'):
        greedy_decode_batch(logits, [5, 6], VOCAB)
    with pytest.raises(ValueError, match='expected 2 output lengths'):
        greedy_decode_batch(logits, [5], VOCAB)


def test_missing_pyctcdecode_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, 'pyctcdecode', None)
    with pytest.raises(RuntimeError, match='pip install pyctcdecode'):
        BeamSearchDecoder(VOCAB)


def test_missing_kenlm_is_a_clear_error(monkeypatch, tmp_path):
    pytest.importorskip('pyctcdecode')
    monkeypatch.setitem(sys.modules, 'kenlm', None)
    with pytest.raises(RuntimeError, match='pip install kenlm'):
        BeamSearchDecoder(VOCAB, lm_path=str(tmp_path / 'lm.arpa'))


def random_peaky_logits(rng, frames):
    """Logits with one clearly winning class per frame, blanks and repeats common."""
    logits = rng.normal(size=(frames, VOCAB.num_classes)).astype(np.float32)
    winners = rng.choice([VOCAB.blank_id, 1, 2, 0, rng.integers(VOCAB.num_classes)], size=frames)
    logits[np.arange(frames), winners] += 6.0
    return logits


def test_beam_width_one_without_lm_equals_greedy():
    pytest.importorskip('pyctcdecode')
    decoder = BeamSearchDecoder(VOCAB, beam_width=1)
    rng = np.random.default_rng(0)
    for _ in range(40):
        logits = np.stack([random_peaky_logits(rng, 30) for _ in range(4)])
        lengths = rng.integers(0, 31, size=4)
        greedy = greedy_decode_batch(logits, lengths, VOCAB)
        beam = decoder.decode_batch(logits, lengths)
        # pyctcdecode collapses and strips white space; greedy keeps it.
        assert beam == [' '.join(text.split()) for text in greedy]


def test_beam_search_checks_arguments(tmp_path):
    pytest.importorskip('pyctcdecode')
    with pytest.raises(ValueError, match='beam_width must be at least 1'):
        BeamSearchDecoder(VOCAB, beam_width=0)
    pytest.importorskip('kenlm')
    with pytest.raises(ValueError, match='missing.arpa: language model file not found'):
        BeamSearchDecoder(VOCAB, lm_path=str(tmp_path / 'missing.arpa'))
    with pytest.raises(ValueError, match=r'expected logits of shape \(N, T, 29\)'):
        BeamSearchDecoder(VOCAB).decode_batch(np.zeros((1, 3, 5)), [3])


def ambiguous_logits():
    """(1, T, C) logits spelling 'the ?at' where '?' is 'k' (0.5) or 'c' (0.4)."""
    frames = []
    for ch in 'the_ #at':
        probs = np.full(VOCAB.num_classes, 0.1 / (VOCAB.num_classes - 1))
        if ch == '#':
            probs[:] = 0.1 / (VOCAB.num_classes - 2)
            probs[VOCAB.encode('k')[0]], probs[VOCAB.encode('c')[0]] = 0.5, 0.4
        else:
            probs[VOCAB.blank_id if ch == '_' else VOCAB.encode(ch)[0]] = 0.9
        frames.append(np.log(probs))
    return np.array(frames, dtype=np.float32)[np.newaxis]


@pytest.fixture
def arpa_path(tmp_path):
    path = str(tmp_path / 'lm.arpa')
    write_arpa(LM_SENTENCES, path, order=3)
    return path


def test_language_model_prefers_in_vocabulary_words(arpa_path):
    pytest.importorskip('pyctcdecode')
    pytest.importorskip('kenlm')
    logits = ambiguous_logits()
    lengths = np.array([logits.shape[1]])
    assert greedy_decode_batch(logits, lengths, VOCAB) == ['the kat']
    assert BeamSearchDecoder(VOCAB, beam_width=16).decode_batch(logits, lengths) == ['the kat']
    with_lm = BeamSearchDecoder(VOCAB, beam_width=16, lm_path=arpa_path, alpha=0.5, beta=1.0)
    assert with_lm.decode_batch(logits, lengths) == ['the cat']
    # The language model's weight, not some other part of the search, makes the change.
    weightless = BeamSearchDecoder(VOCAB, beam_width=16, lm_path=arpa_path, alpha=0.0, beta=0.0)
    assert weightless.decode_batch(logits, lengths) == ['the kat']


def test_arpa_without_arpa_extension_still_gives_unigrams(tmp_path):
    pytest.importorskip('pyctcdecode')
    pytest.importorskip('kenlm')
    path = str(tmp_path / 'lm.txt')
    write_arpa(LM_SENTENCES, path, order=2)
    decoder = BeamSearchDecoder(VOCAB, beam_width=16, lm_path=path)
    logits = ambiguous_logits()
    assert decoder.decode_batch(logits, [logits.shape[1]]) == ['the cat']


def test_kenlm_binary_model_loads(arpa_path, tmp_path):
    pytest.importorskip('pyctcdecode')
    pytest.importorskip('kenlm')
    build_binary = shutil.which('build_binary') or shutil.which(
        'build_binary', path=os.path.dirname(sys.executable))
    if build_binary is None:
        pytest.skip("KenLM's build_binary is not on PATH (the kenlm pip package does not "
                    "ship it), so no binary model can be made to test")
    binary_path = str(tmp_path / 'lm.binary')
    subprocess.run([build_binary, arpa_path, binary_path], check=True, capture_output=True)
    logits = ambiguous_logits()
    unigrams = sorted({w for s in LM_SENTENCES for w in s.split()})
    for given_unigrams in (unigrams, None):  # a binary file does not list its words
        decoder = BeamSearchDecoder(VOCAB, beam_width=16, lm_path=binary_path,
                                    unigrams=given_unigrams)
        assert decoder.decode_batch(logits, [logits.shape[1]]) == ['the cat']


def mixed_batch(seed=0):
    """(6, T, C) logits: the ambiguous 'the ?at' twice, random frames, an empty utterance."""
    ambiguous = ambiguous_logits()[0]
    frames = 40
    rng = np.random.RandomState(seed)
    logits = rng.normal(0, 2, size=(6, frames, VOCAB.num_classes)).astype(np.float32)
    logits[0, :len(ambiguous)] = logits[3, :len(ambiguous)] = ambiguous
    lengths = np.array([len(ambiguous), frames, 25, len(ambiguous), 0, 31])
    return logits, lengths


def test_worker_processes_decode_as_one_process_does(arpa_path):
    pytest.importorskip('pyctcdecode')
    pytest.importorskip('kenlm')
    logits, lengths = mixed_batch()
    alone = BeamSearchDecoder(VOCAB, beam_width=16, lm_path=arpa_path, alpha=0.5, beta=1.0)
    shared = BeamSearchDecoder(VOCAB, beam_width=16, lm_path=arpa_path, alpha=0.5, beta=1.0,
                               processes=2)
    try:
        expected = alone.decode_batch(logits, lengths)
        assert expected[0] == expected[3] == 'the cat' and expected[4] == ''
        assert shared.decode_batch(logits, lengths) == expected
        workers = shared._pool._pool
        assert len(workers) == 2 and all(w.pid != os.getpid() for w in workers)
        # New weights reach the workers: without the LM's weight the acoustics win again.
        shared.set_weights(0.0, 0.0)
        alone.set_weights(0.0, 0.0)
        fresh = BeamSearchDecoder(VOCAB, beam_width=16, lm_path=arpa_path, alpha=0.0, beta=0.0)
        weightless = fresh.decode_batch(logits, lengths)
        assert weightless[0] == weightless[3] == 'the kat'
        assert shared.decode_batch(logits, lengths) == weightless
        assert alone.decode_batch(logits, lengths) == weightless
    finally:
        shared.close()
    for worker in workers:
        worker.join(timeout=10)
        assert not worker.is_alive()
    # One utterance, or a closed decoder asked again, decodes in this process (no new workers
    # for a single file); a batch starts them again.
    assert shared.decode_batch(logits[:1], lengths[:1]) == weightless[:1]
    assert shared._pool is None
    assert shared.decode_batch(logits, lengths) == weightless
    shared.close()


def test_processes_must_not_be_negative():
    pytest.importorskip('pyctcdecode')
    with pytest.raises(ValueError, match=r'processes must be 0 \(one per core\) or more, '
                                         r'got -1'):
        BeamSearchDecoder(VOCAB, processes=-1)
    assert BeamSearchDecoder(VOCAB, processes=0).processes >= 1


def test_auto_processes_keep_copies_of_an_arpa_model_within_memory():
    from gluon_ds2.decoder import auto_processes
    gib = 1 << 30
    assert auto_processes(8, 0, 1 * gib) == 8            # no LM, or a memory-mapped binary
    assert auto_processes(8, 100 << 20, None) == 8       # memory unknown
    assert auto_processes(8, 100 << 20, 64 * gib) == 8
    # A 2 GiB ARPA counts 4 GiB a copy; half of 24 GiB holds 3 of them.
    assert auto_processes(8, 2 * gib, 24 * gib) == 3
    assert auto_processes(2, 2 * gib, 24 * gib) == 2
    assert auto_processes(8, 20 * gib, 24 * gib) == 1    # never fewer than one


def _ignores_sigterm(pid):
    with open('/proc/%d/status' % pid) as f:
        ignored = next(int(line.split()[1], 16) for line in f if line.startswith('SigIgn:'))
    return bool(ignored & (1 << (signal.SIGTERM - 1)))


def _finishes(call, seconds=60):
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


@pytest.mark.skipif(not os.path.exists('/proc/self/status'), reason='reads /proc')
def test_workers_stop_after_the_loaders_fork_server_started_first(arpa_path):
    """The process has one fork server; started by a data loader, it ignores SIGTERM.

    run.sh's evaluate.py once hung for good at exit: Pool.terminate sent SIGTERM to
    workers that had inherited its being ignored, and took the queue lock one of them
    waited for.
    """
    pytest.importorskip('pyctcdecode')
    pytest.importorskip('kenlm')
    from gluon_ds2.batchify import worker_context
    worker_context()
    logits, lengths = mixed_batch()
    expected = BeamSearchDecoder(VOCAB, beam_width=16, lm_path=arpa_path).decode_batch(
        logits, lengths)
    for stop in ('close', 'terminate'):
        decoder = BeamSearchDecoder(VOCAB, beam_width=16, lm_path=arpa_path, processes=2)
        assert decoder.decode_batch(logits, lengths) == expected
        workers = list(decoder._pool._pool)
        assert not any(_ignores_sigterm(w.pid) for w in workers)
        assert _finishes(decoder.close if stop == 'close' else decoder._pool.terminate), stop
        for worker in workers:
            worker.join(timeout=10)
            assert not worker.is_alive(), stop
        decoder.close()
