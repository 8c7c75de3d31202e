"""Characters <-> label ids, in the reference's vocabulary file format.

The file lists one token per line; lines starting with ``#`` are comments and
the line holding a single space is the space token. The reference's file ends
with a ``-`` line: its CTC blank, the last class (a-z, apostrophe, space, then
the blank: 29 classes, blank id 28). A final ``-`` is read as the blank, not
as a token; a file without one gets the blank appended. Either way the blank
is the last class, which is where ``gluon.loss.CTCLoss`` expects it
(``blank_label='last'``).

Checkpoints store their token list (blank excluded), so a model keeps the
order it was trained with whatever file is current: checkpoints written before
we took the reference's order (space first) still load and decode correctly.
"""
import os
import unicodedata

__all__ = ['Vocabulary', 'normalize_transcript', 'DEFAULT_VOCABULARY_FILE', 'BLANK_SYMBOL']

# Shipped inside the package (package data), so that a non-editable install finds it;
# data/vocabulary.txt, the path the reference's users pass, links to it.
DEFAULT_VOCABULARY_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                       'vocabulary.txt')
# The reference's vocabulary file lists its blank last, as this character.
BLANK_SYMBOL = '-'


def normalize_transcript(text):
    """NFKD-normalize to ASCII, lower-case and collapse white space.

    This is what the reference's LibriSpeech preparation does to transcripts
    (``unicodedata.normalize('NFKD', ...).encode('ascii', 'ignore')``, then
    ``lower()``), plus white-space folding so that tabs or doubled spaces in a
    source file cannot end up inside a tab-separated manifest.
    """
    ascii_text = unicodedata.normalize('NFKD', text).encode('ascii', 'ignore').decode('ascii')
    return ' '.join(ascii_text.lower().split())


class Vocabulary:
    """Token list read from a vocabulary file; the blank id is ``len(tokens)``.

    Parameters
    ----------
    tokens : list of str
        Single-character tokens in label-id order, the blank excluded.
    """

    def __init__(self, tokens):
        if len(set(tokens)) != len(tokens):
            raise ValueError('vocabulary has repeated tokens: %r' % (tokens,))
        self.tokens = list(tokens)
        self._ids = {token: index for index, token in enumerate(self.tokens)}

    @classmethod
    def from_file(cls, path=DEFAULT_VOCABULARY_FILE):
        """Read the reference's format: one token per line, ``#`` comments, blank last."""
        tokens = []
        with open(path, encoding='utf-8') as f:
            for line_number, line in enumerate(f, 1):
                token = line.rstrip('\r\n')
                if token.startswith('#'):
                    continue
                if len(token) != 1:
                    if token.strip() == '':
                        # A line of a single space is the space token; blank or
                        # longer white-space lines are layout, not tokens.
                        if token != ' ':
                            continue
                    else:
                        raise ValueError('%s, line %d: a vocabulary token must be one character, '
                                         'got %r' % (path, line_number, token))
                tokens.append(token)
        if tokens and tokens[-1] == BLANK_SYMBOL:
            tokens.pop()
        if not tokens:
            raise ValueError('%s: no tokens found' % path)
        return cls(tokens)

    @property
    def blank_id(self):
        """CTC blank: the class after the last token."""
        return len(self.tokens)

    @property
    def num_classes(self):
        """Output classes of the model: tokens plus the blank."""
        return len(self.tokens) + 1

    def unknown_characters(self, text):
        """Sorted characters of ``text`` that the vocabulary lacks."""
        return sorted(set(ch for ch in text if ch not in self._ids))

    def encode(self, text):
        """Transcript -> list of label ids; ``ValueError`` names unknown characters."""
        try:
            return [self._ids[ch] for ch in text]
        except KeyError:
            raise ValueError('characters not in the vocabulary: %r'
                             % (''.join(self.unknown_characters(text)),)) from None

    def decode(self, ids):
        """Label ids -> string; the blank and ids out of range are dropped."""
        return ''.join(self.tokens[i] for i in ids if 0 <= i < len(self.tokens))

    def to_list(self):
        """Tokens, for storing inside a checkpoint's JSON."""
        return list(self.tokens)
