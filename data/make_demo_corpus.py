"""python data/make_demo_corpus.py --out_dir data/demo_mirror

Synthesize a small English speech corpus with libespeak-ng, packed exactly like
a LibriSpeech release, so that ``data/download.py --mirror data/demo_mirror``
prepares it through the same code path as the real corpus.

The sentences are the docstrings of Python's own standard library (parsed with
``ast``, never imported), cleaned to the vocabulary: lower case, letters,
apostrophes and spaces, 4 to 18 words. What espeak is asked to say is that
cleaned text, so every transcript is exactly what the audio says.

Each speaker is an espeak voice (an accent such as ``en-gb-scotland`` with a
variant such as ``+m3``) with its own rate and pitch. ``dev`` and ``test``
sentences never occur in ``train``, and like in LibriSpeech the ``dev`` and
``test`` speakers are held out from ``train`` (and from each other): both
measure the same thing, speech from unseen voices, so early stopping on
``dev`` picks what generalizes to ``test``.

Output, in ``--out_dir``::

    train.tar.gz dev.tar.gz test.tar.gz   LibriSpeech/<split>/<speaker>/<chapter>/...
    md5sum.txt                            "<md5>  <split>.tar.gz", as md5sum writes it
    corpus_info.json                      parameters, counts, hours, voices per split

The same ``--seed`` gives byte-identical FLAC files and tarballs, whatever
``--workers``. Two properties of libespeak-ng 1.52 stand in the way, and are
worked around: its output depends on what the process synthesized before
(state carries over between calls; ``espeak_Terminate`` and a new
``espeak_Initialize`` do not reset it), so every chapter is synthesized in a
freshly forked process; and the variants with breath noise (``f2``, ``f3``,
``f5``) differ from run to run even in a fresh process (seeding ``rand()``
does not help), so the voice list leaves them out. A directory that already
holds a complete corpus made with the same parameters is reused (``--force``
remakes it). The default size (2.5 h of train, 300 dev and 300 test
utterances, about 220 MB) takes well under a minute on two cores.
"""
import argparse
import ast
import ctypes
import dataclasses
import functools
import gzip
import hashlib
import importlib.metadata
import json
import logging
import multiprocessing
import os
import platform
import random
import re
import shutil
import sysconfig
import tarfile
import time
from pathlib import Path

import espeakng_loader
import numpy as np
import soundfile
import soxr
from tqdm import tqdm

__all__ = ['make_demo_corpus', 'stdlib_sentences', 'clean_sentence', 'plan_corpus',
           'EspeakSynthesizer', 'Speaker', 'Chapter', 'SPLITS', 'VOICES',
           'DEFAULT_OUT_DIR', 'main']

logger = logging.getLogger(__name__)

DEFAULT_OUT_DIR = Path(__file__).resolve().parent / 'demo_mirror'
DEFAULT_TRAIN_HOURS = 2.5
SPLITS = ('train', 'dev', 'test')
INFO_FILE = 'corpus_info.json'
MD5_FILE = 'md5sum.txt'

# Accents of the espeak-ng data (lang/gmw/en*) and voice variants (voices/!v) that
# synthesize deterministically; en-Shaw is left out (it reads the Shavian alphabet).
ACCENTS = ('en-us', 'en', 'en-gb-x-rp', 'en-gb-scotland', 'en-us-nyc', 'en-029',
           'en-gb-x-gbclan', 'en-gb-x-gbcwmd')
VARIANTS = ('m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'f1', 'f4', 'aunty', 'linda', 'steph')
VOICES = tuple('%s+%s' % (accent, variant) for accent in ACCENTS for variant in VARIANTS)
RATE_RANGE = (140, 200)   # words per minute
PITCH_RANGE = (35, 65)    # espeak's 0-100 scale; 50 is the variant's own pitch
HELDOUT_SPEAKERS = 10     # voices reserved for dev, and as many again for test
CHAPTER_UTTERANCES = 20

MIN_WORDS, MAX_WORDS = 4, 18
SKIPPED_STDLIB_DIRS = {'test', 'tests', 'idlelib', 'lib2to3', 'site-packages'}
_LEADING_PUNCTUATION = '"\'([{`'
_TRAILING_PUNCTUATION = '"\')]}`.,;:!?'
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*\Z")
_VOWEL = re.compile('[aeiouy]')
_SENTENCE_END = re.compile(r'(?<=[.!?])\s+')

SAMPLE_RATE = 16000
SILENCE_THRESHOLD = 16          # int16 amplitude below which espeak output counts as silence
PAUSE_SECONDS = (0.1, 0.3)      # silence added before and after the speech
HEADROOM = 0.8                  # espeak peaks near full scale; leave room for the resampler
DITHER = 2e-4                   # noise floor, about -74 dBFS: digital silence would put
                                # log(0)-like outliers into the spectrogram

# libespeak-ng's speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_AUTO = 0
_PARAMETER_RATE = 1
_PARAMETER_PITCH = 3
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                   ctypes.c_void_p)


def clean_sentence(sentence):
    """One docstring sentence -> spoken lower-case text, or None if it is not plain words.

    Punctuation at the edges of words is dropped and hyphens split words; a
    sentence is kept only if every word is then letters with inner apostrophes,
    has a vowel (so espeak says it rather than spelling it) and has no capital
    after its first letter (``TextIOWrapper``, ``HTTP`` are code or acronyms).

    Parameters
    ----------
    sentence : str
        One sentence, white space already folded.

    Returns
    -------
    str or None
        Words joined by single spaces, if there are 4 to 18 of them.
    """
    words = []
    for token in sentence.split():
        token = token.lstrip(_LEADING_PUNCTUATION).rstrip(_TRAILING_PUNCTUATION)
        for word in token.split('-'):
            if not word:
                continue
            if word[1:] != word[1:].lower():
                return None
            word = word.lower()
            if not _WORD.match(word) or not _VOWEL.search(word):
                return None
            words.append(word)
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return None
    return ' '.join(words)


def _docstring_sentences(docstring):
    """Sentences of a docstring: capitalized, ending in . ! or ?, within one paragraph."""
    for paragraph in re.split(r'\n\s*\n', docstring):
        for sentence in _SENTENCE_END.split(' '.join(paragraph.split())):
            if (sentence.lstrip(_LEADING_PUNCTUATION)[:1].isupper()
                    and sentence.rstrip('"\')]').endswith(('.', '!', '?'))):
                yield sentence


@functools.lru_cache(maxsize=1)
def stdlib_sentences():
    """Unique cleaned sentences from the standard library's docstrings, sorted.

    The files are read in sorted order and parsed with ``ast``; the tests, IDLE
    and lib2to3 are left out. The result depends on the Python version only.

    Returns
    -------
    tuple of str
    """
    root = sysconfig.get_paths()['stdlib']
    sentences = set()
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if d not in SKIPPED_STDLIB_DIRS)
        for name in sorted(f for f in files if f.endswith('.py')):
            path = os.path.join(directory, name)
            with open(path, 'rb') as f:
                source = f.read()
            try:
                tree = ast.parse(source, filename=path)
            except (SyntaxError, ValueError):
                logger.debug('skipping %s: not parseable by this Python', path)
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                     ast.AsyncFunctionDef)):
                    docstring = ast.get_docstring(node)
                    for sentence in _docstring_sentences(docstring or ''):
                        text = clean_sentence(sentence)
                        if text is not None:
                            sentences.add(text)
    return tuple(sorted(sentences))


@dataclasses.dataclass(frozen=True)
class Speaker:
    """An espeak voice (``accent+variant``) at its own rate and pitch."""
    speaker_id: int
    voice: str
    rate: int
    pitch: int


@dataclasses.dataclass(frozen=True)
class Chapter:
    """Consecutive utterances of one speaker: the unit one worker process synthesizes."""
    split: str
    speaker: Speaker
    chapter_id: int
    texts: tuple

    @property
    def directory(self):
        """``LibriSpeech/<split>/<speaker>/<chapter>``, as in the release."""
        return 'LibriSpeech/%s/%d/%d' % (self.split, self.speaker.speaker_id, self.chapter_id)

    @property
    def transcript_name(self):
        """Path of the chapter's ``<speaker>-<chapter>.trans.txt`` inside the tarball."""
        return '%s/%d-%d.trans.txt' % (self.directory, self.speaker.speaker_id, self.chapter_id)

    def utterance_id(self, index):
        """``<speaker>-<chapter>-<index:04d>``."""
        return '%d-%d-%04d' % (self.speaker.speaker_id, self.chapter_id, index)

    def audio_name(self, index):
        """Path of utterance ``index``'s FLAC file inside the tarball."""
        return '%s/%s.flac' % (self.directory, self.utterance_id(index))


def _speakers_by_split(seed):
    """Shuffle the voices, give each a rate and pitch; the first 2x10 are test and dev."""
    rng = random.Random('%d/voices' % seed)
    voices = list(VOICES)
    rng.shuffle(voices)
    speakers = [Speaker(101 + i, voice, rng.randint(*RATE_RANGE), rng.randint(*PITCH_RANGE))
                for i, voice in enumerate(voices)]
    return {'test': speakers[:HELDOUT_SPEAKERS],
            'dev': speakers[HELDOUT_SPEAKERS:2 * HELDOUT_SPEAKERS],
            'train': speakers[2 * HELDOUT_SPEAKERS:]}


def _plan_chapters(split, texts, speakers):
    """Deal texts to speakers in turn and cut each one's share into chapters.

    Chapters are ordered round by round (every speaker's first chapter, then
    every speaker's second, ...) so that any prefix of the list, which is what
    an hours target keeps, is balanced over speakers.
    """
    speakers = speakers[:len(texts)]
    shares = [texts[i::len(speakers)] for i in range(len(speakers))]
    rounds = -(-len(shares[0]) // CHAPTER_UTTERANCES)
    chapters = []
    for round_index in range(rounds):
        for speaker, share in zip(speakers, shares):
            part = share[round_index * CHAPTER_UTTERANCES:(round_index + 1) * CHAPTER_UTTERANCES]
            if part:
                chapters.append(Chapter(split, speaker, speaker.speaker_id * 1000 + round_index,
                                        tuple(part)))
    return chapters


def plan_corpus(sentences, seed, train_utterances, dev_utterances, test_utterances):
    """Partition the sentences and the voices into splits, and the splits into chapters.

    Parameters
    ----------
    sentences : sequence of str
        Candidate texts, in a deterministic order (``stdlib_sentences()``).
    seed : int
        Seeds the sentence shuffle and the voices' order, rates and pitches.
    train_utterances : int or None
        Train size; None plans every sentence left after dev and test (an hours
        target then keeps a prefix of the chapters).
    dev_utterances, test_utterances : int
        Held-out sizes, at least 1 each.

    Returns
    -------
    dict
        Split name -> list of `Chapter`.
    """
    order = list(sentences)
    random.Random('%d/sentences' % seed).shuffle(order)
    needed = dev_utterances + test_utterances + (train_utterances or 1)
    if needed > len(order):
        raise ValueError('--dev_utterances + --test_utterances + --train_utterances = %d, but '
                         'the standard library docstrings give only %d sentences'
                         % (needed, len(order)))
    held_out = dev_utterances + test_utterances
    texts = {'dev': order[:dev_utterances],
             'test': order[dev_utterances:held_out],
             'train': order[held_out:][:train_utterances]}
    speakers = _speakers_by_split(seed)
    return {split: _plan_chapters(split, texts[split], speakers[split]) for split in SPLITS}


class EspeakSynthesizer:
    """libespeak-ng through ctypes, in synchronous mode: one call, one waveform.

    Output depends on what the process synthesized before, so create one per
    fresh process when the result must be reproducible.
    """

    def __init__(self):
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                          ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                     ctypes.c_int, ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p,
                                     ctypes.c_void_p]
        self._lib = lib
        self._data_path = espeakng_loader.get_data_path()
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                                 self._data_path.encode(), _INITIALIZE_DONT_EXIT)
        if self.sample_rate <= 0:
            raise RuntimeError('espeak_Initialize failed with data directory %s'
                               % self._data_path)
        self._chunks = []
        # espeak keeps only the C pointer: the ctypes object must outlive every call.
        self._callback = _SYNTH_CALLBACK(self._collect)
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, num_samples, events):
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0

    def synthesize(self, text, voice, rate, pitch):
        """Speak ASCII ``text``; returns int16 samples at ``self.sample_rate`` (22050 Hz).

        Parameters
        ----------
        text : str
        voice : str
            espeak voice name, ``accent+variant`` such as ``en-us+m3``.
        rate : int
            Words per minute.
        pitch : int
            0-100; 50 is the voice's own pitch.
        """
        status = self._lib.espeak_SetVoiceByName(voice.encode('ascii'))
        if status != 0:
            raise ValueError('espeak-ng has no voice %r (status %d); the accents are in '
                             '%s/lang, the variants in %s/voices/!v'
                             % (voice, status, self._data_path, self._data_path))
        self._lib.espeak_SetParameter(_PARAMETER_RATE, rate, 0)
        self._lib.espeak_SetParameter(_PARAMETER_PITCH, pitch, 0)
        self._chunks = []
        data = text.encode('ascii')
        status = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_AUTO,
                                        None, None)
        self._lib.espeak_Synchronize()
        if status != 0 or not self._chunks:
            raise RuntimeError('espeak_Synth failed (status %d) on %r with voice %s'
                               % (status, text, voice))
        return np.concatenate(self._chunks)


def _finish_audio(audio, sample_rate, rng):
    """espeak int16 -> 16 kHz int16: trimmed, resampled, padded with a seeded pause and dither."""
    voiced = np.flatnonzero(np.abs(audio) > SILENCE_THRESHOLD)
    speech = audio[voiced[0]:voiced[-1] + 1].astype(np.float32) * (HEADROOM / 32768)
    speech = soxr.resample(speech, sample_rate, SAMPLE_RATE)
    lead, trail = (rng.uniform(*PAUSE_SECONDS, size=2) * SAMPLE_RATE).astype(int)
    padded = np.pad(speech, (lead, trail))
    padded += rng.normal(0.0, DITHER, padded.size).astype(np.float32)
    return np.clip(np.round(padded * 32768), -32768, 32767).astype(np.int16)


def _synthesize_chapter(chapter, staging_dir, seed):
    """Write a chapter's FLAC files under ``staging_dir``; returns their durations in seconds."""
    synthesizer = EspeakSynthesizer()
    speaker = chapter.speaker
    durations = []
    for index, text in enumerate(chapter.texts):
        audio = synthesizer.synthesize(text, speaker.voice, speaker.rate, speaker.pitch)
        rng = np.random.default_rng([seed, chapter.chapter_id, index])
        samples = _finish_audio(audio, synthesizer.sample_rate, rng)
        path = staging_dir / chapter.audio_name(index)
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(path), samples, SAMPLE_RATE, format='FLAC', subtype='PCM_16')
        durations.append(len(samples) / SAMPLE_RATE)
    return durations


def _synthesize_split(split, chapters, staging_dir, seed, workers, target_seconds):
    """Synthesize chapters in order, each in a fresh process; returns [(chapter, durations)].

    With ``target_seconds``, stops at the utterance that reaches it: the last
    chapter kept may be cut short, and chapters past it are discarded.
    """
    if target_seconds is None:
        bar = tqdm(total=sum(len(c.texts) for c in chapters), desc=split, unit='utt')
    else:
        bar = tqdm(total=round(target_seconds), desc='%s (seconds of speech)' % split, unit='s')
    task = functools.partial(_synthesize_chapter, staging_dir=staging_dir, seed=seed)
    kept, seconds = [], 0.0
    # Fork, one chapter per process (maxtasksperchild=1): every chapter starts from
    # espeak's initial state, whichever worker runs it. This process never loads espeak.
    context = multiprocessing.get_context('fork')
    with context.Pool(min(workers, len(chapters)), maxtasksperchild=1) as pool, bar:
        for chapter, durations in zip(chapters, pool.imap(task, chapters)):
            if target_seconds is not None:
                reached = np.searchsorted(seconds + np.cumsum(durations), target_seconds)
                durations = durations[:reached + 1]
            kept.append((chapter, durations))
            seconds += sum(durations)
            bar.update(len(durations) if target_seconds is None
                       else min(round(seconds), bar.total) - bar.n)
            if target_seconds is not None and seconds >= target_seconds:
                break
    if target_seconds is not None and seconds < target_seconds:
        raise ValueError('--train_hours %.2f: the sentences left after dev and test give only '
                         '%.2f h of speech; ask for fewer hours'
                         % (target_seconds / 3600, seconds / 3600))
    return kept


def _write_transcripts(staging_dir, kept):
    """Write each chapter's trans.txt; returns every member name of the split's tarball."""
    names = []
    for chapter, durations in kept:
        lines = ['%s %s\n' % (chapter.utterance_id(i), chapter.texts[i].upper())
                 for i in range(len(durations))]
        (staging_dir / chapter.transcript_name).write_text(''.join(lines), encoding='ascii')
        names.append(chapter.transcript_name)
        names.extend(chapter.audio_name(i) for i in range(len(durations)))
    return names


def _write_tarball(path, root, names):
    """Deterministic gzipped tar of ``root/name`` files, written to a temp name and renamed.

    Members are sorted, with owner 0, mode 0644 and mtime 0; the gzip header has
    no file name and mtime 0, so equal files give an identical tarball.
    """
    temporary = path.with_name(path.name + '.tmp')
    with open(temporary, 'wb') as raw, \
            gzip.GzipFile(filename='', mode='wb', fileobj=raw, compresslevel=6, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode='w', format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(names):
            member = tarfile.TarInfo(name)
            member.size = (root / name).stat().st_size
            member.mode = 0o644
            with open(root / name, 'rb') as f:
                tar.addfile(member, f)
    os.replace(temporary, path)


def _md5(path):
    """Hex MD5 of a file, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _write_atomically(path, text):
    """Write a text file through a temp name and a rename, so it is never half written."""
    temporary = path.with_name(path.name + '.tmp')
    temporary.write_text(text, encoding='utf-8')
    os.replace(temporary, path)


def _split_summary(tarball, kept):
    """Counts, hours and voices of one split, for corpus_info.json."""
    utterances = {}
    for chapter, durations in kept:
        utterances[chapter.speaker] = utterances.get(chapter.speaker, 0) + len(durations)
    return {
        'tarball': tarball.name,
        'bytes': tarball.stat().st_size,
        'md5': _md5(tarball),
        'utterances': sum(utterances.values()),
        'chapters': len(kept),
        'speakers': len(utterances),
        'hours': round(sum(sum(durations) for _, durations in kept) / 3600, 4),
        'voices': [dict(dataclasses.asdict(speaker), utterances=count)
                   for speaker, count in sorted(utterances.items(),
                                                key=lambda item: item[0].speaker_id)],
    }


def _reusable_corpus_info(out_dir, parameters):
    """corpus_info.json of a complete corpus made with ``parameters``, else None."""
    try:
        info = json.loads((out_dir / INFO_FILE).read_text(encoding='utf-8'))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if info.get('parameters') != parameters or not (out_dir / MD5_FILE).is_file():
        return None
    for summary in info['splits'].values():
        tarball = out_dir / summary['tarball']
        if not tarball.is_file() or tarball.stat().st_size != summary['bytes']:
            return None
    return info


def make_demo_corpus(out_dir=DEFAULT_OUT_DIR, seed=1, train_hours=None, train_utterances=None,
                     dev_utterances=300, test_utterances=300, workers=None, force=False):
    """Synthesize the corpus into ``out_dir``, or reuse the one already there.

    Parameters
    ----------
    out_dir : str or Path
        Receives ``<split>.tar.gz``, ``md5sum.txt`` and ``corpus_info.json``.
    seed : int
        Same seed, same parameters -> byte-identical tarballs.
    train_hours : float, optional
        Train size in hours of audio (2.5 when neither size is given).
    train_utterances : int, optional
        Train size in utterances, instead of ``train_hours``.
    dev_utterances, test_utterances : int
        Held-out sizes.
    workers : int, optional
        Synthesis processes; ``os.cpu_count()`` by default. Does not change the output.
    force : bool
        Regenerate even if ``out_dir`` holds a corpus made with these parameters.

    Returns
    -------
    dict
        What corpus_info.json holds: ``parameters``, per-split ``splits``
        (tarball, bytes, md5, utterances, chapters, speakers, hours, voices),
        ``sentences_available``, ``generation_seconds``, versions.
    """
    if train_hours is not None and train_utterances is not None:
        raise ValueError('give --train_hours or --train_utterances, not both')
    if train_hours is None and train_utterances is None:
        train_hours = DEFAULT_TRAIN_HOURS
    for flag, value in (('--train_hours', train_hours), ('--train_utterances', train_utterances),
                        ('--dev_utterances', dev_utterances),
                        ('--test_utterances', test_utterances)):
        if value is not None and value <= 0:
            raise ValueError('%s must be positive, got %r' % (flag, value))
    parameters = {'seed': seed, 'train_hours': train_hours, 'train_utterances': train_utterances,
                  'dev_utterances': dev_utterances, 'test_utterances': test_utterances}
    out_dir = Path(out_dir)
    if not force:
        info = _reusable_corpus_info(out_dir, parameters)
        if info is not None:
            logger.info('reusing the demo corpus in %s: it was made with the same parameters '
                        '(--force remakes it)', out_dir)
            return info

    start = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    # Until the new corpus_info.json is written, nothing here counts as complete.
    (out_dir / INFO_FILE).unlink(missing_ok=True)
    sentences = stdlib_sentences()
    logger.info('%d usable sentences in the standard library docstrings', len(sentences))
    plan = plan_corpus(sentences, seed, train_utterances, dev_utterances, test_utterances)
    staging_dir = out_dir / '.staging'
    shutil.rmtree(staging_dir, ignore_errors=True)
    splits = {}
    try:
        for split in SPLITS:
            target_seconds = train_hours * 3600 if split == 'train' and train_hours else None
            kept = _synthesize_split(split, plan[split], staging_dir, seed,
                                     workers or os.cpu_count(), target_seconds)
            names = _write_transcripts(staging_dir, kept)
            tarball = out_dir / ('%s.tar.gz' % split)
            _write_tarball(tarball, staging_dir, names)
            splits[split] = _split_summary(tarball, kept)
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)

    _write_atomically(out_dir / MD5_FILE, ''.join(
        '%s  %s\n' % (summary['md5'], summary['tarball'])
        for summary in sorted(splits.values(), key=lambda s: s['tarball'])))
    info = {
        'parameters': parameters,
        'splits': splits,
        'sentences_available': len(sentences),
        'generation_seconds': round(time.monotonic() - start, 1),
        'python_version': platform.python_version(),
        'espeakng_loader_version': importlib.metadata.version('espeakng-loader'),
    }
    _write_atomically(out_dir / INFO_FILE, json.dumps(info, indent=1) + '\n')
    return info


def parse_args(argv=None):
    """Command-line flags of this script."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out_dir', default=str(DEFAULT_OUT_DIR),
                        help='directory receiving the tarballs (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=1, help='default: %(default)s')
    size = parser.add_mutually_exclusive_group()
    size.add_argument('--train_hours', type=float,
                      help='train size in hours of audio (default: %s)' % DEFAULT_TRAIN_HOURS)
    size.add_argument('--train_utterances', type=int, help='train size in utterances')
    parser.add_argument('--dev_utterances', type=int, default=300, help='default: %(default)s')
    parser.add_argument('--test_utterances', type=int, default=300, help='default: %(default)s')
    parser.add_argument('--workers', type=int, default=None,
                        help='synthesis processes (default: the number of CPUs)')
    parser.add_argument('--force', action='store_true',
                        help='regenerate even if --out_dir holds a corpus with these parameters')
    return parser.parse_args(argv)


def main(argv=None):
    """Entry point: make or reuse the corpus, then print its summary."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    info = make_demo_corpus(args.out_dir, seed=args.seed, train_hours=args.train_hours,
                            train_utterances=args.train_utterances,
                            dev_utterances=args.dev_utterances,
                            test_utterances=args.test_utterances, workers=args.workers,
                            force=args.force)
    print('demo corpus in %s, made with seed %d in %.1f s'
          % (args.out_dir, info['parameters']['seed'], info['generation_seconds']))
    print('%-6s %8s %11s %9s %7s %10s' % ('split', 'hours', 'utterances', 'speakers',
                                          'chapters', 'MB'))
    for split, summary in info['splits'].items():
        print('%-6s %8.3f %11d %9d %7d %10.1f' % (split, summary['hours'], summary['utterances'],
                                                  summary['speakers'], summary['chapters'],
                                                  summary['bytes'] / 1e6))


if __name__ == '__main__':
    main()
