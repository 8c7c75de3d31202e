"""Vocabulary file <-> label ids, and transcript normalization."""
import re
import string

import pytest

from conftest import REPO_ROOT
from gluon_ds2.vocab import DEFAULT_VOCABULARY_FILE, Vocabulary, normalize_transcript

# research/deep_speech/data/vocabulary.txt of tensorflow/models (commit 2dc6b914), byte for byte:
# two comment lines, a marker comment, a-z, apostrophe, space, '-' (its CTC blank), a marker.
REFERENCE_FILE_TEXT = (
    "# List of alphabets (utf-8 encoded). Note that '#' starts a comment line, which\n"
    "# will be ignored by the parser.\n"
    "# begin of vocabulary\n"
    + ''.join(ch + '\n' for ch in string.ascii_lowercase)
    + "'\n \n-\n"
    "# end of vocabulary\n")
# The reference's label ids: position in its file, comments skipped; '-' is class 28, the blank.
REFERENCE_TOKENS = list(string.ascii_lowercase) + ["'", ' ']


def test_reference_file_as_is_gives_29_classes_with_its_blank_last(tmp_path):
    assert len(REFERENCE_FILE_TEXT.encode('utf-8')) == 213
    path = tmp_path / 'vocabulary.txt'
    path.write_bytes(REFERENCE_FILE_TEXT.encode('utf-8'))
    vocab = Vocabulary.from_file(str(path))
    assert vocab.tokens == REFERENCE_TOKENS
    assert vocab.num_classes == 29
    assert vocab.blank_id == 28
    assert vocab.encode('a') == [0]
    assert vocab.encode('z') == [25]
    assert vocab.encode("'") == [26]
    assert vocab.encode(' ') == [27]
    with pytest.raises(ValueError, match="characters not in the vocabulary: '-'"):
        vocab.encode('-')  # the blank is not a token


def test_default_vocabulary_has_the_reference_ids():
    vocab = Vocabulary.from_file(DEFAULT_VOCABULARY_FILE)
    assert vocab.tokens == REFERENCE_TOKENS
    assert vocab.num_classes == 29
    assert vocab.blank_id == 28 == vocab.num_classes - 1
    assert vocab.encode("a'z ") == [0, 26, 25, 27]


def test_data_vocabulary_path_is_the_default_file():
    """data/vocabulary.txt, the path the reference's users pass, reads as the packaged file."""
    assert (REPO_ROOT / 'data' / 'vocabulary.txt').read_bytes() == \
        open(DEFAULT_VOCABULARY_FILE, 'rb').read()


def test_file_without_a_blank_line_gets_the_blank_appended(tmp_path):
    """Vocabulary files of earlier gluon-ds2 versions listed no blank: it is still added last."""
    path = tmp_path / 'vocab.txt'
    path.write_text('# older layout\n \n' + '\n'.join(string.ascii_lowercase) + "\n'\n",
                    encoding='utf-8')
    vocab = Vocabulary.from_file(str(path))
    assert vocab.tokens == [' '] + list(string.ascii_lowercase) + ["'"]
    assert vocab.num_classes == 29
    assert vocab.blank_id == 28
    assert vocab.encode(' a') == [0, 1]


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
