"""data/make_demo_corpus.py: a tiny corpus checked against the LibriSpeech release layout."""
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import espeakng_loader
import numpy as np
import pytest
import soundfile

from conftest import REPO_ROOT, load_data_script

SPLITS = ('train', 'dev', 'test')
AUDIO_MEMBER = re.compile(r'LibriSpeech/(?P<split>\w+)/(?P<speaker>\d+)/(?P<chapter>\d+)/'
                          r'(?P=speaker)-(?P=chapter)-(?P<index>\d{4})\.flac\Z')
TRANSCRIPT_MEMBER = re.compile(r'LibriSpeech/(?P<split>\w+)/(?P<speaker>\d+)/(?P<chapter>\d+)/'
                               r'(?P=speaker)-(?P=chapter)\.trans\.txt\Z')
TRANSCRIPT_LINE = re.compile(r"(?P<id>\d+-\d+-\d{4}) (?P<text>[A-Z']+(?: [A-Z']+)*)\Z")


def read_split(mirror, split):
    """Tarball -> (member names in order, {utterance id: transcript}, {utterance id: FLAC})."""
    names, transcripts, audio = [], {}, {}
    with tarfile.open(mirror / ('%s.tar.gz' % split)) as tar:
        for member in tar:
            assert member.isfile(), member.name
            names.append(member.name)
            data = tar.extractfile(member).read()
            if member.name.endswith('.flac'):
                audio[member.name.rsplit('/', 1)[1][:-len('.flac')]] = data
            else:
                lines = data.decode('ascii').splitlines()
                assert lines == sorted(lines), member.name
                for line in lines:
                    match = TRANSCRIPT_LINE.match(line)
                    assert match, '%s: %r' % (member.name, line)
                    transcripts[match['id']] = match['text']
    return names, transcripts, audio


@pytest.fixture(scope='module')
def corpus(demo_mirror):
    """corpus_info.json and the contents of every split of the tiny corpus."""
    info = json.loads((demo_mirror / 'corpus_info.json').read_text())
    return info, {split: read_split(demo_mirror, split) for split in SPLITS}


def vocabulary_characters():
    """Tokens of data/vocabulary.txt, read here independently of gluon_ds2.vocab.

    Its last line, '-', is the CTC blank (as in the reference's file), not a character.
    """
    lines = (REPO_ROOT / 'data' / 'vocabulary.txt').read_text(encoding='utf-8').splitlines()
    tokens = [line for line in lines if len(line) == 1 and line != '#']
    assert tokens[-1] == '-'
    return set(tokens[:-1])


def test_clean_sentence_keeps_plain_words_only():
    clean_sentence = load_data_script('make_demo_corpus').clean_sentence
    assert (clean_sentence('Return ``True`` if the path exists.')
            == 'return true if the path exists')
    assert (clean_sentence("It's a built-in function (see below); don't call it!")
            == "it's a built in function see below don't call it")
    assert clean_sentence('Use os.path.join to build the name.') is None   # inner period
    assert clean_sentence('Wrap the stream in a TextIOWrapper instead.') is None   # CamelCase
    assert clean_sentence('The value must be 42 or more.') is None   # digits
    assert clean_sentence('Read the fs attribute of it.') is None   # no vowel: spelled out
    assert clean_sentence('Too short here.') is None
    assert clean_sentence(' '.join(['word'] * 19) + '.') is None


def test_every_voice_is_in_the_espeak_data():
    module = load_data_script('make_demo_corpus')
    # Looked up on disk: loading espeak here would leak its state into forked workers.
    data = Path(espeakng_loader.get_data_path())
    accents = {path.name.lower() for path in (data / 'lang').rglob('*') if path.is_file()}
    variants = {path.name for path in (data / 'voices' / '!v').iterdir()}
    for voice in module.VOICES:
        accent, variant = voice.split('+')
        assert accent in accents and variant in variants, voice


def test_size_flags_are_checked():
    make_demo_corpus = load_data_script('make_demo_corpus').make_demo_corpus
    with pytest.raises(ValueError, match='give --train_hours or --train_utterances, not both'):
        make_demo_corpus('unused', train_hours=1.0, train_utterances=10)
    with pytest.raises(ValueError, match='--dev_utterances must be positive, got 0'):
        make_demo_corpus('unused', dev_utterances=0)


def test_tarballs_follow_the_librispeech_layout(corpus):
    info, splits = corpus
    for split, (names, transcripts, audio) in splits.items():
        assert names == sorted(names)
        chapters = {}
        for name in names:
            match = AUDIO_MEMBER.match(name) or TRANSCRIPT_MEMBER.match(name)
            assert match and match['split'] == split, name
            chapters.setdefault((match['speaker'], match['chapter']), []).append(name)
        for (speaker, chapter), members in chapters.items():
            transcript_files = [m for m in members if m.endswith('.trans.txt')]
            assert len(transcript_files) == 1, (speaker, chapter)
        assert sorted(transcripts) == sorted(audio)
        summary = info['splits'][split]
        assert len(audio) == summary['utterances'] == info['parameters']['%s_utterances' % split]
        assert len(chapters) == summary['chapters']
        assert len({speaker for speaker, _ in chapters}) == summary['speakers']


def test_audio_is_16khz_mono_pcm16_flac_with_speech(corpus):
    info, splits = corpus
    words, seconds = [], []
    for split, (_, transcripts, audio) in splits.items():
        for utterance_id, data in audio.items():
            meta = soundfile.info(io.BytesIO(data))
            assert (meta.format, meta.subtype, meta.samplerate, meta.channels) == \
                ('FLAC', 'PCM_16', 16000, 1), utterance_id
            samples, _ = soundfile.read(io.BytesIO(data), dtype='float64')
            assert np.sqrt(np.mean(samples ** 2)) > 0.02, utterance_id
            # a quiet pause, not digital silence, at both ends
            for pause in (samples[:1600], samples[-1600:]):
                assert 0 < np.abs(pause).max() < 0.01, utterance_id
            count = len(transcripts[utterance_id].split())
            duration = len(samples) / 16000
            # 140-200 words per minute plus 0.2-0.6 s of pauses, with room for word lengths
            assert 0.15 * count < duration < 1.0 * count + 0.6, (utterance_id, count, duration)
            words.append(count)
            seconds.append(duration)
        assert sum(seconds) > 0
    assert np.corrcoef(words, seconds)[0, 1] > 0.7
    total_hours = sum(summary['hours'] for summary in info['splits'].values())
    assert total_hours == pytest.approx(sum(seconds) / 3600, abs=1e-3)


def test_transcripts_use_only_vocabulary_characters(corpus):
    _, splits = corpus
    allowed = vocabulary_characters()
    for _, transcripts, _ in splits.values():
        for text in transcripts.values():
            assert set(text.lower()) <= allowed, text
            assert 4 <= len(text.split()) <= 18, text


def test_held_out_sentences_and_test_speakers_are_disjoint_from_train(corpus):
    info, splits = corpus
    sentences = {split: set(transcripts.values()) for split, (_, transcripts, _) in splits.items()}
    assert not sentences['dev'] & sentences['train']
    assert not sentences['test'] & sentences['train']
    assert not sentences['dev'] & sentences['test']
    voices = {split: {v['voice'] for v in info['splits'][split]['voices']} for split in SPLITS}
    speakers = {split: {transcript_id.split('-')[0] for transcript_id in transcripts}
                for split, (_, transcripts, _) in splits.items()}
    assert not voices['test'] & voices['train'] and not speakers['test'] & speakers['train']
    assert not voices['dev'] & voices['train'] and not speakers['dev'] & speakers['train']


def test_md5sum_file_matches_the_tarballs(demo_mirror):
    lines = (demo_mirror / 'md5sum.txt').read_text().splitlines()
    assert [line.split('  ')[1] for line in lines] == ['dev.tar.gz', 'test.tar.gz', 'train.tar.gz']
    for line in lines:
        assert re.fullmatch(r'[0-9a-f]{32}  \S+', line), line
        digest, name = line.split('  ')
        assert hashlib.md5((demo_mirror / name).read_bytes()).hexdigest() == digest, name


def test_same_seed_gives_identical_tarballs_whatever_the_workers(demo_mirror, tmp_path):
    parameters = json.loads((demo_mirror / 'corpus_info.json').read_text())['parameters']
    load_data_script('make_demo_corpus').make_demo_corpus(tmp_path, workers=1, **parameters)
    assert (tmp_path / 'md5sum.txt').read_text() == (demo_mirror / 'md5sum.txt').read_text()


def test_complete_corpus_is_reused(demo_mirror):
    make_demo_corpus = load_data_script('make_demo_corpus').make_demo_corpus
    info = json.loads((demo_mirror / 'corpus_info.json').read_text())
    stamps = {path.name: path.stat().st_mtime_ns for path in demo_mirror.iterdir()}
    start = time.monotonic()
    assert make_demo_corpus(demo_mirror, **info['parameters']) == info
    assert time.monotonic() - start < 1.0
    flags = ['--out_dir', str(demo_mirror), '--seed', str(info['parameters']['seed'])]
    for split in SPLITS:
        flags += ['--%s_utterances' % split, str(info['parameters']['%s_utterances' % split])]
    result = subprocess.run([sys.executable, str(REPO_ROOT / 'data' / 'make_demo_corpus.py')]
                            + flags, capture_output=True, text=True, timeout=60, check=True)
    assert 'reusing the demo corpus in %s' % demo_mirror in result.stderr
    assert {path.name: path.stat().st_mtime_ns for path in demo_mirror.iterdir()} == stamps
