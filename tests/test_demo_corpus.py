"""data/make_demo_corpus.py: a tiny corpus checked against the LibriSpeech release layout."""
import gzip
import hashlib
import io
import multiprocessing
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import espeakng_loader
import numpy as np
import pytest
import soundfile
import soxr

from conftest import REPO_ROOT, load_script

SPLITS = ('train', 'dev', 'test', 'dev_ood', 'test_ood')
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


def test_clean_sentence_spells_out_and_keeps_plain_words_only():
    module = load_script('data/make_demo_corpus.py')
    clean_sentence = module.clean_sentence
    assert (clean_sentence('Return ``True`` if the path exists.')
            == 'return true if the path exists.')
    assert (clean_sentence("It's a built-in function (see below); don't call it!")
            == "it's a built in function see below; don't call it!")
    assert (clean_sentence('"Well," said Mr. Brown, "it cost $5 in 1999?"')
            == 'well, said mister brown, it cost five dollars in nineteen ninety nine?')
    assert (module.transcript_of('well, said mister brown, it cost five dollars?')
            == 'well said mister brown it cost five dollars')
    assert clean_sentence('Use os.path.join to build the name.') is None   # inner period
    assert clean_sentence('Wrap the stream in a TextIOWrapper instead.') is None   # CamelCase
    assert clean_sentence('Version 3.11.2 must be used here.') is None   # not a number
    assert clean_sentence('Read the fs attribute of it.') is None   # no vowel: spelled out
    assert clean_sentence('Too short here.') is None
    assert clean_sentence(' '.join(['word'] * 19) + '.') is None


def test_every_source_gives_clean_distinct_sentences():
    module = load_script('data/make_demo_corpus.py')
    allowed = vocabulary_characters() | set(',.;:!?')
    for name in module.SOURCES:
        sentences = module.source_sentences(name)
        assert len(sentences) > 200, name
        assert list(sentences) == sorted(set(sentences)), name
        transcripts = [module.transcript_of(s) for s in sentences]
        assert len(set(transcripts)) == len(transcripts), name
        for sentence in sentences:
            assert set(sentence) <= allowed, (name, sentence)


def test_every_voice_is_in_the_espeak_data():
    module = load_script('data/make_demo_corpus.py')
    # Looked up on disk: loading espeak here would leak its state into forked workers.
    data = Path(espeakng_loader.get_data_path())
    accents = {path.name.lower() for path in (data / 'lang').rglob('*') if path.is_file()}
    assert set(module.ACCENTS) <= accents
    assert {a for a in accents if a.startswith('en')} - set(module.ACCENTS) == {'en-shaw'}
    assert set(module.VARIANTS) == {path.name for path in (data / 'voices' / '!v').iterdir()}
    assert len(module.VARIANTS) > 2 * module.HELDOUT_VARIANTS + 50


def _synthesize_in_fresh_process(text, speaker):
    synthesizer = load_script('data/make_demo_corpus.py').EspeakSynthesizer(rand_seed=5)
    return synthesizer.synthesize(text, speaker).tobytes()


def test_breath_noise_variants_are_reproducible_with_a_seed():
    Speaker = load_script('data/make_demo_corpus.py').Speaker
    speakers = [Speaker(1, 'en-us+%s' % variant, 180, 50, 50, 1, 2)
                for variant in ('whisper', 'f2')]
    jobs = [('a quiet word, then another.', speaker) for speaker in speakers] * 2
    with multiprocessing.get_context('fork').Pool(2, maxtasksperchild=1) as pool:
        first_whisper, first_f2, second_whisper, second_f2 = pool.starmap(
            _synthesize_in_fresh_process, jobs, chunksize=1)
    assert first_whisper == second_whisper and first_f2 == second_f2
    assert first_whisper != first_f2


def test_pico_speakers_join_train_at_their_share_and_leave_the_espeak_speakers_alone():
    module = load_script('data/make_demo_corpus.py')
    espeak_only = module._speakers_by_split(1, 0.0)
    mixed = module._speakers_by_split(1, 0.3)
    for split in ('dev', 'test', 'dev_ood', 'test_ood'):
        assert mixed[split] == espeak_only[split], split
    train = mixed['train']
    assert [s for s in train if s.engine == 'espeak'] == espeak_only['train']
    pico = [s for s in train if s.engine == 'pico']
    assert len(pico) == round(len(espeak_only['train']) * 0.3 / 0.7)
    # any prefix of the speakers (what an hours target keeps) holds about the share
    for prefix in (100, 300, len(train)):
        share = sum(s.engine == 'pico' for s in train[:prefix]) / prefix
        assert abs(share - 0.3) < 0.08, (prefix, share)
    assert {s.voice for s in pico} == set(module.PICO_VOICES)
    for speaker in pico:
        assert module.PICO_RATE_RANGE[0] <= speaker.rate <= module.PICO_RATE_RANGE[1]
        assert module.PICO_PITCH_RANGE[0] <= speaker.pitch <= module.PICO_PITCH_RANGE[1]
    ids = [s.speaker_id for split in ('train', 'dev', 'test') for s in mixed[split]]
    assert len(ids) == len(set(ids))


def _median_f0(samples, rate=16000):
    """Median pitch (Hz) of the loud 40 ms frames, by autocorrelation: independent of Pico."""
    frame, f0s = int(0.04 * rate), []
    loud = 0.3 * np.abs(samples).max()
    for start in range(0, len(samples) - frame, frame):
        x = samples[start:start + frame].astype(np.float64)
        if np.abs(x).max() < loud:
            continue
        x = x - x.mean()
        correlation = np.correlate(x, x, 'full')[frame - 1:]
        low, high = rate // 400, rate // 60
        lag = low + int(np.argmax(correlation[low:high]))
        if correlation[lag] > 0.5 * correlation[0]:
            f0s.append(rate / lag)
    return float(np.median(f0s))


def test_pico_rate_and_pitch_change_the_speech():
    module = load_script('data/make_demo_corpus.py')
    Speaker = module.Speaker
    synthesizer = module.PicoSynthesizer()
    text = 'the old sailor walked slowly along the harbour, looking at the boats.'

    def speak(voice, rate, pitch):
        audio = synthesizer.synthesize(text, Speaker(1, voice, rate, pitch, 0, 0, 0, 'pico'))
        assert audio.dtype == np.int16 and synthesizer.sample_rate == 16000
        voiced = np.flatnonzero(np.abs(audio) > module.SILENCE_THRESHOLD)
        return audio[voiced[0]:voiced[-1] + 1].astype(np.float64) / 32768

    slow, fast = speak('en-US', 75, 100), speak('en-US', 130, 100)
    assert 1.4 < len(slow) / len(fast) < 2.1   # 130 / 75 = 1.73
    assert 12 * 0.15 < len(fast) / 16000 < 12 * 0.6   # 12 words
    low, high = speak('en-GB', 100, 65), speak('en-GB', 100, 135)
    assert 1.6 < _median_f0(high) / _median_f0(low) < 2.6   # 135 / 65 = 2.08
    assert not np.array_equal(speak('en-US', 100, 100)[:16000], speak('en-GB', 100, 100)[:16000])
    with pytest.raises(RuntimeError, match="SVOX Pico has no voice 'en-AU'"):
        synthesizer.synthesize(text, Speaker(1, 'en-AU', 100, 100, 0, 0, 0, 'pico'))


def test_hibari_speakers_join_train_at_their_share_and_leave_the_others_alone():
    module = load_script('data/make_demo_corpus.py')
    without = module._speakers_by_split(1, 0.1)
    mixed = module._speakers_by_split(1, 0.1, hibari_share=0.2)
    for split in ('dev', 'test', 'dev_ood', 'test_ood'):
        assert mixed[split] == without[split], split
    train = mixed['train']
    assert [s for s in train if s.engine != 'hibari'] == without['train']
    hibari = [s for s in train if s.engine == 'hibari']
    assert len(hibari) == round(len(without['train']) * 0.2 / 0.8)
    for prefix in (100, 300, len(train)):
        share = sum(s.engine == 'hibari' for s in train[:prefix]) / prefix
        assert abs(share - 0.2) < 0.08, (prefix, share)
    for speaker in hibari:
        assert speaker.voice == module.HIBARI_VOICE
        assert module.HIBARI_TEMPO_RANGE[0] <= speaker.rate <= module.HIBARI_TEMPO_RANGE[1]
        assert module.HIBARI_PITCH_RANGE[0] <= speaker.pitch <= module.HIBARI_PITCH_RANGE[1]
    assert len({(s.rate, s.pitch) for s in hibari}) > len(hibari) // 2
    ids = [s.speaker_id for split in ('train', 'dev', 'test') for s in mixed[split]]
    assert len(ids) == len(set(ids))


def _hibari_speech(rate, pitch, seed):
    """A hibari speaker's trimmed speech at 16 kHz, as _finish_audio plays it."""
    module = load_script('data/make_demo_corpus.py')
    audio, sample_rate = module.HibariSynthesizer().synthesize(
        'the old sailor walked slowly along the harbour, looking at the boats.',
        module.Speaker(1, 'heart', rate, pitch, 0, 0, 0, 'hibari'), seed=seed)
    assert audio.dtype == np.int16 and 0.85 < np.abs(audio).max() / 32767 <= 0.9
    assert sample_rate == 24000 * pitch / 100
    voiced = np.flatnonzero(np.abs(audio) > module.SILENCE_THRESHOLD)
    speech = audio[voiced[0]:voiced[-1] + 1].astype(np.float32) / 32768
    return soxr.resample(speech, sample_rate, 16000)


def test_hibari_tempo_and_pitch_change_the_speech():
    # In child processes, as the corpus runs hibari: this process stays as other tests expect
    # it (the espeak output of corpora made later in it was seen to change after hibari ran here).
    jobs = [(80, 100, 0), (125, 100, 0), (100, 85, 0), (100, 118, 0), (100, 100, 3),
            (100, 100, 3)]
    with multiprocessing.get_context('fork').Pool(2, maxtasksperchild=1) as pool:
        slow, fast, low, high, first, again = pool.starmap(_hibari_speech, jobs, chunksize=1)
    assert 1.35 < len(slow) / len(fast) < 1.8   # 125 / 80 = 1.56
    assert 12 * 0.15 < len(fast) / 16000 < 12 * 0.6   # 12 words
    assert 0.85 < len(low) / len(high) < 1.15   # the tempo stays
    assert 1.2 < _median_f0(high) / _median_f0(low) < 1.6   # 118 / 85 = 1.39
    assert np.array_equal(first, again)   # the same seed, the same samples


def test_size_flags_are_checked():
    make_demo_corpus = load_script('data/make_demo_corpus.py').make_demo_corpus
    with pytest.raises(ValueError, match='give --train_hours or --train_utterances, not both'):
        make_demo_corpus('unused', train_hours=1.0, train_utterances=10)
    with pytest.raises(ValueError, match='--dev_utterances must be positive, got 0'):
        make_demo_corpus('unused', dev_utterances=0)
    with pytest.raises(ValueError, match='--test_ood_utterances must be positive, got -1'):
        make_demo_corpus('unused', test_ood_utterances=-1)
    with pytest.raises(ValueError, match="--ood_source 'novels': choose one of docstrings, "):
        make_demo_corpus('unused', ood_source='novels')
    with pytest.raises(ValueError, match='--pico_share must be at least 0 and below 1, got 1.0'):
        make_demo_corpus('unused', pico_share=1.0)
    with pytest.raises(ValueError, match=r'--hibari_share must be at least 0 and below 1 - '
                                         r'--pico_share \(0.9\), got 0.9'):
        make_demo_corpus('unused', pico_share=0.1, hibari_share=0.9)


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


def test_held_out_sentences_and_voices_never_reach_train(corpus):
    info, splits = corpus
    sentences = {split: set(transcripts.values()) for split, (_, transcripts, _) in splits.items()}
    for held_out in SPLITS[1:]:
        assert not sentences[held_out] & sentences['train'], held_out
        for other in SPLITS[1:]:
            assert other == held_out or not sentences[held_out] & sentences[other]
    voices = {split: [v['voice'] for v in info['splits'][split]['voices']] for split in SPLITS}
    speakers = {split: {transcript_id.split('-')[0] for transcript_id in transcripts}
                for split, (_, transcripts, _) in splits.items()}
    engines = {split: {v['engine'] for v in info['splits'][split]['voices']} for split in SPLITS}
    assert engines['train'] == {'espeak', 'pico', 'hibari'}  # its 24 speakers hold all three
    for held_out in SPLITS[1:]:
        assert engines[held_out] == {'espeak'}, held_out
    train_variants = {v['voice'].split('+')[1] for v in info['splits']['train']['voices']
                      if v['engine'] == 'espeak'}
    for held_out in ('dev', 'test'):
        # a new variant for every held-out speaker, never heard in train
        variants = [voice.split('+')[1] for voice in voices[held_out]]
        assert len(set(variants)) == len(variants) and not set(variants) & train_variants
        assert not speakers[held_out] & speakers['train']
        # the out-of-domain split is read by the same speakers: only the text differs
        assert set(voices[held_out + '_ood']) <= set(voices[held_out])
    assert not speakers['dev'] & speakers['test']


def test_out_of_domain_splits_hold_the_held_out_source_only(corpus):
    info, splits = corpus
    ood_source = info['parameters']['ood_source']
    assert info['sources'][ood_source]['role'] == 'out-of-domain'
    for split in SPLITS:
        sources = info['splits'][split]['sources']
        if split.endswith('_ood'):
            assert list(sources) == [ood_source]
        else:
            assert ood_source not in sources and sum(sources.values()) > 0
    # every in-domain source takes turns in train
    assert set(info['splits']['train']['sources']) == set(info['sources']) - {ood_source}


def test_lm_text_is_every_in_domain_sentence_but_dev_and_test(demo_mirror, corpus):
    info, splits = corpus
    module = load_script('data/make_demo_corpus.py')
    with gzip.open(demo_mirror / 'lm-norm.txt.gz', 'rt', encoding='ascii') as f:
        lm_lines = f.read().splitlines()
    assert lm_lines == sorted(lm_lines) and len(lm_lines) == info['lm_text']['sentences']
    lm_sentences = set(lm_lines)
    held_out = set().union(*(set(splits[split][1].values()) for split in SPLITS[1:]))
    assert not lm_sentences & held_out
    assert set(splits['train'][1].values()) <= lm_sentences
    in_domain = set().union(*(
        {module.transcript_of(s).upper() for s in module.source_sentences(name)}
        for name, source in info['sources'].items() if source['role'] == 'in-domain'))
    ood = {module.transcript_of(s).upper()
           for s in module.source_sentences(info['parameters']['ood_source'])}
    assert lm_sentences == in_domain - held_out
    assert not lm_sentences & (ood - in_domain)


def test_md5sum_file_matches_the_tarballs(demo_mirror):
    lines = (demo_mirror / 'md5sum.txt').read_text().splitlines()
    assert [line.split('  ')[1] for line in lines] == sorted(
        ['%s.tar.gz' % split for split in SPLITS] + ['lm-norm.txt.gz'])
    for line in lines:
        assert re.fullmatch(r'[0-9a-f]{32}  \S+', line), line
        digest, name = line.split('  ')
        assert hashlib.md5((demo_mirror / name).read_bytes()).hexdigest() == digest, name


def test_same_seed_gives_identical_tarballs_whatever_the_workers(demo_mirror, tmp_path):
    parameters = json.loads((demo_mirror / 'corpus_info.json').read_text())['parameters']
    del parameters['recipe_md5']   # not a flag: the code that made the corpus
    load_script('data/make_demo_corpus.py').make_demo_corpus(tmp_path, workers=1, **parameters)
    assert (tmp_path / 'md5sum.txt').read_text() == (demo_mirror / 'md5sum.txt').read_text()


def test_complete_corpus_is_reused(demo_mirror):
    make_demo_corpus = load_script('data/make_demo_corpus.py').make_demo_corpus
    info = json.loads((demo_mirror / 'corpus_info.json').read_text())
    stamps = {path.name: path.stat().st_mtime_ns for path in demo_mirror.iterdir()}
    flags = {name: value for name, value in info['parameters'].items() if name != 'recipe_md5'}
    assert make_demo_corpus(demo_mirror, **flags) == info
    flags = ['--out_dir', str(demo_mirror), '--seed', str(info['parameters']['seed'])]
    for split in SPLITS:
        flags += ['--%s_utterances' % split, str(info['parameters']['%s_utterances' % split])]
    flags += ['--pico_share', str(info['parameters']['pico_share']),
              '--hibari_share', str(info['parameters']['hibari_share'])]
    result = subprocess.run([sys.executable, str(REPO_ROOT / 'data' / 'make_demo_corpus.py')]
                            + flags, capture_output=True, text=True, timeout=60, check=True)
    assert 'reusing the demo corpus in %s' % demo_mirror in result.stderr
    assert {path.name: path.stat().st_mtime_ns for path in demo_mirror.iterdir()} == stamps


def test_a_corpus_made_by_other_code_is_not_reused(demo_mirror):
    module = load_script('data/make_demo_corpus.py')
    info = json.loads((demo_mirror / 'corpus_info.json').read_text())
    assert info['parameters']['recipe_md5'] == module._recipe_md5()
    assert module._reusable_corpus_info(demo_mirror, info['parameters']) == info
    other_code = dict(info['parameters'], recipe_md5='0' * 32)
    assert module._reusable_corpus_info(demo_mirror, other_code) is None


def _toy_pools(module):
    """Twenty made-up sentences per source, each starting with its source's name."""
    numbers = ('one two three four five six seven eight nine ten eleven twelve thirteen '
               'fourteen fifteen sixteen seventeen eighteen nineteen twenty').split()
    return {name: tuple('%s sentence number %s here' % (name, word) for word in numbers)
            for name in module.SOURCES}


def test_train_ablations_change_the_train_plan_only():
    module = load_script('data/make_demo_corpus.py')
    pools = _toy_pools(module)
    sizes = dict(train=None, dev=6, test=6, dev_ood=6, test_ood=6)
    default, default_lm = module.plan_corpus(pools, 'dialogue', 1, sizes, pico_share=0.3)
    for flags in (dict(train_sources=['jokes']), dict(train_voices='narrow'),
                  dict(train_sources=['docstrings', 'jokes'], train_voices='narrow'),
                  dict(train_chapter_utterances=1), dict(hibari_share=0.2)):
        plan, lm = module.plan_corpus(pools, 'dialogue', 1, sizes, pico_share=0.3, **flags)
        assert lm == default_lm, flags
        for split in SPLITS[1:]:  # same texts, speakers and chapter ids
            assert plan[split] == default[split], (flags, split)
        ids = [chapter.chapter_id for split in SPLITS for chapter in plan[split]]
        assert len(ids) == len(set(ids)), flags
        train_texts = [text for chapter in plan['train'] for text in chapter.texts]
        sources = {text.split()[0] for text in train_texts}
        assert sources == set(flags.get('train_sources', ['docstrings', 'scripture', 'jokes']))
        held_out = {text for split in SPLITS[1:] for c in plan[split] for text in c.texts}
        assert not held_out & set(train_texts)
        if 'train_sources' in flags:  # every sentence of the sources left after dev and test
            assert len(train_texts) == sum(
                1 for name in flags['train_sources'] for s in pools[name] if s not in held_out)


def test_smaller_train_chapters_reach_more_speakers_with_as_many_utterances():
    module = load_script('data/make_demo_corpus.py')
    # enough sentences for every train speaker to read several chapters
    pools = {name: tuple('%s sentence %d' % (name, i) for i in range(4000))
             for name in module.SOURCES}
    sizes = dict(train=None, dev=6, test=6, dev_ood=6, test_ood=6)
    plans = {size: module.plan_corpus(pools, 'dialogue', 1, sizes,
                                      train_chapter_utterances=size)[0] for size in (8, 2)}
    speakers = len({chapter.speaker for chapter in plans[8]['train']})
    for size, plan in plans.items():
        assert max(len(chapter.texts) for chapter in plan['train']) == size
        # chapters are dealt round by round: the first round has every speaker once
        assert len({chapter.speaker for chapter in plan['train'][:speakers]}) == speakers
    texts = {size: sorted(t for chapter in plan['train'] for t in chapter.texts)
             for size, plan in plans.items()}
    assert texts[8] == texts[2]
    # what an hours target keeps, a prefix of the chapters: 2 * speakers utterances are
    # read by every speaker with chapters of 2, by a quarter of them with chapters of 8
    prefix = {size: plan['train'][:2 * speakers // size] for size, plan in plans.items()}
    assert len({chapter.speaker for chapter in prefix[2]}) == speakers
    assert len({chapter.speaker for chapter in prefix[8]}) == speakers // 4


def test_narrow_train_voices_are_the_first_corpus_voices_and_prosody():
    module = load_script('data/make_demo_corpus.py')
    default = module._speakers_by_split(1, 0.3)
    narrow = module._speakers_by_split(1, 0.3, 'narrow')
    for split in ('dev', 'test', 'dev_ood', 'test_ood'):
        assert narrow[split] == default[split], split
    held_out = {s.voice.split('+')[1] for split in ('dev', 'test') for s in default[split]}
    espeak = [s for s in narrow['train'] if s.engine == 'espeak']
    expected = {'%s+%s' % (accent, variant) for accent in module.ACCENTS
                for variant in ('m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'f1', 'f4', 'aunty',
                                'linda', 'steph') if variant not in held_out}
    assert {s.voice for s in espeak} == expected and len(espeak) == len(expected)
    for speaker in espeak:
        assert 140 <= speaker.rate <= 200 and 35 <= speaker.pitch <= 65, speaker
        assert (speaker.pitch_range, speaker.word_gap, speaker.intonation) == (50, 0, 0)
    assert len({(s.rate, s.pitch) for s in espeak}) > len(espeak) // 2  # drawn, not fixed
    pico = [s for s in narrow['train'] if s.engine == 'pico']
    assert len(pico) == round(len(espeak) * 0.3 / 0.7)
    ids = [s.speaker_id for split in ('train', 'dev', 'test') for s in narrow[split]]
    assert len(ids) == len(set(ids))


def test_train_ablation_flags_are_checked():
    module = load_script('data/make_demo_corpus.py')
    pools = _toy_pools(module)
    sizes = dict(train=None, dev=6, test=6, dev_ood=6, test_ood=6)
    for wrong in (['dialogue'], ['novels'], []):
        with pytest.raises(ValueError, match='--train_sources .*choose among the in-domain '
                                             'sources docstrings, jokes, scripture'):
            module.plan_corpus(pools, 'dialogue', 1, sizes, train_sources=wrong)
    with pytest.raises(ValueError, match='--train_utterances 40, but --train_sources jokes '
                                         'give only 1[0-9] sentences'):
        module.plan_corpus(pools, 'dialogue', 1, dict(sizes, train=40), train_sources=['jokes'])
    with pytest.raises(ValueError, match="--train_voices 'wide': choose one of all, narrow"):
        module.make_demo_corpus('/nonexistent', train_voices='wide')
    with pytest.raises(ValueError, match='--train_chapter_utterances must be at least 1, got 0'):
        module.make_demo_corpus('/nonexistent', train_chapter_utterances=0)
    script = str(REPO_ROOT / 'data' / 'make_demo_corpus.py')
    result = subprocess.run([sys.executable, script, '--train_voices', 'wide'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "invalid choice: 'wide'" in result.stderr


def test_a_bad_train_source_stops_before_the_corpus_is_touched(demo_mirror, tmp_path):
    # a copy of a complete corpus: it must stay reusable
    for path in demo_mirror.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    parameters = json.loads((tmp_path / 'corpus_info.json').read_text())['parameters']
    result = subprocess.run([sys.executable, str(REPO_ROOT / 'data' / 'make_demo_corpus.py'),
                             '--out_dir', str(tmp_path), '--train_utterances', '24',
                             '--train_sources', 'docstrings,dialogue'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.strip().endswith(
        'make_demo_corpus.py: error: --train_sources docstrings,dialogue: choose among the '
        'in-domain sources docstrings, jokes, scripture')
    module = load_script('data/make_demo_corpus.py')
    assert module._reusable_corpus_info(tmp_path, parameters) is not None


def test_train_ablation_corpus_keeps_every_other_file_byte_identical(demo_mirror, tmp_path):
    parameters = json.loads((demo_mirror / 'corpus_info.json').read_text())['parameters']
    for name in ('recipe_md5', 'train_sources', 'train_voices', 'train_chapter_utterances',
                 'hibari_share'):
        del parameters[name]
    info = load_script('data/make_demo_corpus.py').make_demo_corpus(
        tmp_path, workers=2, train_sources=['scripture'], train_voices='narrow',
        train_chapter_utterances=4, hibari_share=0.2, **parameters)
    ours, theirs = ((path / 'md5sum.txt').read_text().splitlines()
                    for path in (tmp_path, demo_mirror))
    assert [line for line in ours if 'train' not in line] == [
        line for line in theirs if 'train' not in line]
    assert [line for line in ours if 'train' in line] != [
        line for line in theirs if 'train' in line]
    assert info['parameters']['train_sources'] == ['scripture']
    train = info['splits']['train']
    assert set(train['sources']) == {'scripture'} and train['utterances'] == 24
    espeak_variants = {v['voice'].split('+')[1] for v in train['voices']
                       if v['engine'] == 'espeak'}
    assert espeak_variants <= {'m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'f1', 'f4', 'aunty',
                               'linda', 'steph'}
    # the 24 speakers of the first round hold every engine
    assert {v['engine'] for v in train['voices']} == {'espeak', 'pico', 'hibari'}
    assert info['hibari_tts_version'] == '0.2.1'
    hibari = {str(v['speaker_id']) for v in train['voices'] if v['engine'] == 'hibari'}
    with tarfile.open(tmp_path / 'train.tar.gz') as tar:
        names = [n for n in tar.getnames() if n.split('/')[2] in hibari]
        transcripts = dict(line.split(' ', 1) for n in names if n.endswith('.trans.txt')
                           for line in tar.extractfile(n).read().decode().splitlines())
        for name in (n for n in names if n.endswith('.flac')):
            audio, rate = soundfile.read(io.BytesIO(tar.extractfile(name).read()))
            words = len(transcripts[name.rsplit('/', 1)[1][:-5]].split())
            assert rate == 16000 and 0.15 * words < len(audio) / rate < 0.2 + 0.6 * words
