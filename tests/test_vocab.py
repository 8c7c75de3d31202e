"""Vocabulary file <-> label ids, and transcript normalization."""
import re
import string

import pytest

from gluon_ds2.vocab import DEFAULT_VOCABULARY_FILE, Vocabulary, normalize_transcript

REFERENCE_TOKENS = [' '] + list(string.ascii_lowercase) + ["'"]


def test_default_vocabulary_is_the_reference_alphabet_with_blank_last():
    vocab = Vocabulary.from_file(DEFAULT_VOCABULARY_FILE)
    assert vocab.tokens == REFERENCE_TOKENS
    assert len(vocab.tokens) == 28
    assert vocab.num_classes == 29
    assert vocab.blank_id == 28 == vocab.num_classes - 1
    assert vocab.encode(' ') == [0]
    assert vocab.encode("a'z") == [1, 27, 26]


def test_encode_decode_round_trip():
    vocab = Vocabulary.from_file()
    text = "he hoped there would be stew for dinner turnips and carrots and bruised potatoes"
    ids = vocab.encode(text + " it's")
    # Independent encoding: position in the reference token list.
    assert ids == [REFERENCE_TOKENS.index(ch) for ch in text + " it's"]
    assert vocab.decode(ids) == text + " it's"


def test_decode_drops_blank_and_out_of_range_ids():
    vocab = Vocabulary.from_file()
    ids = vocab.encode('ab')
    assert vocab.decode([vocab.blank_id] + ids[:1] + [vocab.blank_id, 99, -1] + ids[1:]) == 'ab'


def test_unknown_characters_are_named():
    vocab = Vocabulary.from_file()
    with pytest.raises(ValueError) as info:
        vocab.encode('hello, World 42!')
    assert str(info.value) == "characters not in the vocabulary: '!,24W'"
    assert vocab.unknown_characters('hello, World 42!') == ['!', ',', '2', '4', 'W']
    assert vocab.unknown_characters('hello world') == []


@pytest.mark.parametrize('raw, expected', [
    ('Caf\u00e9 NA\u00cfVE', 'cafe naive'),
    ('\u00c5ngstr\u00f6m  \t \u00fcber\n', 'angstrom uber'),
    ('  leading and trailing\t\tspace  ', 'leading and trailing space'),
    ('\ufb01ne \u00bd', 'fine 12'),          # NFKD compatibility forms: ligature, fraction
    ('\u6f22\u5b57 only', 'only'),           # no ASCII decomposition: dropped
    ("DON'T", "don't"),
])
def test_normalize_transcript(raw, expected):
    assert normalize_transcript(raw) == expected


def test_normalized_librispeech_style_text_encodes():
    vocab = Vocabulary.from_file()
    text = normalize_transcript('CHAPTER ONE  Mrs. Rachel Lynde Is Surprised'.replace('.', ''))
    assert vocab.decode(vocab.encode(text)) == 'chapter one mrs rachel lynde is surprised'


def test_file_with_comments_blank_lines_and_crlf(tmp_path):
    path = tmp_path / 'vocab.txt'
    path.write_bytes(b'# comment\r\n \r\n\r\na\r\n#b is commented out\r\nc\r\n')
    vocab = Vocabulary.from_file(str(path))
    assert vocab.tokens == [' ', 'a', 'c']
    assert vocab.blank_id == 3


def test_multi_character_token_names_file_and_line(tmp_path):
    path = tmp_path / 'vocab.txt'
    path.write_text('# alphabet\n \na\nab\nc\n', encoding='utf-8')
    with pytest.raises(ValueError) as info:
        Vocabulary.from_file(str(path))
    assert str(info.value) == ("%s, line 4: a vocabulary token must be one character, got 'ab'"
                               % path)


def test_empty_and_repeated_vocabularies_are_errors(tmp_path):
    empty = tmp_path / 'empty.txt'
    empty.write_text('# nothing here\n\n', encoding='utf-8')
    with pytest.raises(ValueError, match='^%s: no tokens found$' % re.escape(str(empty))):
        Vocabulary.from_file(str(empty))
    repeated = tmp_path / 'repeated.txt'
    repeated.write_text('a\nb\na\n', encoding='utf-8')
    with pytest.raises(ValueError, match='repeated tokens'):
        Vocabulary.from_file(str(repeated))
