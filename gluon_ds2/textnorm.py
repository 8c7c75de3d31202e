"""Written English -> the words a reader says: numbers, money, dates, abbreviations, symbols.

LibriSpeech transcripts spell everything out ("in eighteen sixty one", "ten
dollars", "mister brown"); a corpus or a language model built from written
text must do the same, or it has to drop every sentence with a digit in it.
:func:`verbalize` rewrites the written forms below and leaves every other
character alone (punctuation included, so that a synthesizer still sees the
sentence's commas and question marks)::

    1,250 / 3.5 / -4         one thousand two hundred fifty / three point five / minus four
    21st / 1/2 / 3/4         twenty first / one half / three quarters
    1887 / 1905 / 2024       eighteen eighty seven / nineteen oh five / twenty twenty four
    1990s / 10:30 / 5:00     nineteen nineties / ten thirty / five o'clock
    $5 / $3.50 / $2 million  five dollars / three dollars fifty cents / two million dollars
    50% / & / #3 / 1914-1918 fifty percent / and / number three / nineteen fourteen to ...
    Mr. / Dr. / e.g. / etc.  mister / doctor / for example / et cetera

Numbers are read the American way, without "and" ("one hundred five"). Four-
digit numbers from 1100 to 2099 are read as years, the common case in prose.
"""
import re
import unicodedata

__all__ = ['verbalize', 'cardinal', 'ordinal', 'year']

_ONES = ('zero one two three four five six seven eight nine ten eleven twelve thirteen '
         'fourteen fifteen sixteen seventeen eighteen nineteen').split()
_TENS = ('', '', 'twenty', 'thirty', 'forty', 'fifty', 'sixty', 'seventy', 'eighty', 'ninety')
_SCALES = ((10 ** 12, 'trillion'), (10 ** 9, 'billion'), (10 ** 6, 'million'),
           (10 ** 3, 'thousand'))
_IRREGULAR_ORDINALS = {'one': 'first', 'two': 'second', 'three': 'third', 'five': 'fifth',
                       'eight': 'eighth', 'nine': 'ninth', 'twelve': 'twelfth'}
_CURRENCIES = {'$': ('dollar', 'dollars', 'cent', 'cents'),
               '£': ('pound', 'pounds', 'penny', 'pence'),
               '€': ('euro', 'euros', 'cent', 'cents')}
_FRACTIONS = {(1, 2): 'one half', (1, 4): 'one quarter', (3, 4): 'three quarters'}

# Abbreviations read as words. A title (Mr., Dr.) always precedes a name, so its
# period is never a sentence end; the others keep their period when the text ends
# there or a capitalized word follows (a new sentence).
_TITLES = {'Mr': 'mister', 'Mrs': 'missus', 'Ms': 'miz', 'Dr': 'doctor', 'Prof': 'professor',
           'Capt': 'captain', 'Col': 'colonel', 'Gen': 'general', 'Lt': 'lieutenant',
           'Sgt': 'sergeant', 'Rev': 'reverend', 'Hon': 'honorable', 'Gov': 'governor',
           'Sen': 'senator', 'Rep': 'representative', 'Mt': 'mount', 'Messrs': 'messieurs'}
_ABBREVIATIONS = {'e.g.': 'for example', 'i.e.': 'that is', 'etc.': 'et cetera',
                  'vs.': 'versus', 'a.m.': 'a m', 'p.m.': 'p m', 'approx.': 'approximately',
                  'Jr.': 'junior', 'Sr.': 'senior', 'Ave.': 'avenue', 'Inc.': 'incorporated',
                  'Ltd.': 'limited', 'Co.': 'company', 'Corp.': 'corporation',
                  'Jan.': 'january', 'Feb.': 'february', 'Mar.': 'march', 'Apr.': 'april',
                  'Aug.': 'august', 'Sept.': 'september', 'Sep.': 'september',
                  'Oct.': 'october', 'Nov.': 'november', 'Dec.': 'december'}

_NUMBER = r'\d{1,3}(?:,\d{3})+(?!\d)|\d+'
_SCALE_WORD = r'(?:\s+(thousand|million|billion|trillion)\b)?'
_UNICODE_PUNCTUATION = str.maketrans({'\u2018': "'", '\u2019': "'", '\u201c': '"',
                                      '\u201d': '"', '\u2026': '...', '\u00a0': ' ',
                                      '\u00bd': ' 1/2', '\u00bc': ' 1/4', '\u00be': ' 3/4'})


def cardinal(number):
    """Non-negative integer -> words: ``1205`` -> ``'one thousand two hundred five'``."""
    if not 0 <= number < 10 ** 15:
        raise ValueError('cardinal() reads 0 to 10**15 - 1, got %r' % (number,))
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + (' ' + _ONES[ones] if ones else '')
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return _ONES[hundreds] + ' hundred' + (' ' + cardinal(rest) if rest else '')
    for scale, name in _SCALES:
        if number >= scale:
            high, rest = divmod(number, scale)
            return cardinal(high) + ' ' + name + (' ' + cardinal(rest) if rest else '')
    raise AssertionError('unreachable')


def _ordinal_word(word):
    """Last word of a cardinal -> its ordinal: ``'twenty'`` -> ``'twentieth'``."""
    if word in _IRREGULAR_ORDINALS:
        return _IRREGULAR_ORDINALS[word]
    if word.endswith('y'):
        return word[:-1] + 'ieth'
    return word + 'th'


def ordinal(number):
    """Non-negative integer -> ordinal words: ``21`` -> ``'twenty first'``."""
    words = cardinal(number).split()
    return ' '.join(words[:-1] + [_ordinal_word(words[-1])])


def year(number):
    """A year as read aloud: 1887 -> eighteen eighty seven, 1900 -> nineteen hundred,
    1905 -> nineteen oh five, 2005 -> two thousand five, 2024 -> twenty twenty four."""
    if not 1000 <= number <= 9999:
        raise ValueError('year() reads four-digit years, got %r' % (number,))
    century, rest = divmod(number, 100)
    if century % 10 == 0 and rest < 10:        # 1000-1009, 2000-2009: "two thousand five"
        return cardinal(number)
    if rest == 0:
        return cardinal(century) + ' hundred'
    if rest < 10:
        return cardinal(century) + ' oh ' + cardinal(rest)
    return cardinal(century) + ' ' + cardinal(rest)


def _integer(text):
    return int(text.replace(',', ''))


def _plural(words):
    """Plural of number words (decades, fractions): ``'nineteen ninety'`` -> ``'... nineties'``."""
    if words.endswith('y'):
        return words[:-1] + 'ies'
    return words + 's'


def _money(match):
    symbol, whole, cents, scale = match.groups()
    one, many, cent, cents_name = _CURRENCIES[symbol]
    amount = _integer(whole)
    if scale:                                            # $2 million, $1.5 billion
        number = cardinal(amount) + (' point ' + _digits(cents) if cents else '')
        return '%s %s %s' % (number, scale, many)
    hundredths = int(cents.ljust(2, '0')[:2]) if cents else 0     # $3.5 is $3.50
    parts = []
    if amount or not hundredths:
        parts.append('%s %s' % (cardinal(amount), one if amount == 1 else many))
    if hundredths:
        parts.append('%s %s' % (cardinal(hundredths), cent if hundredths == 1 else cents_name))
    return ' '.join(parts)


def _digits(text):
    """Digits read one by one, as after a decimal point: ``'05'`` -> ``'zero five'``."""
    return ' '.join(_ONES[int(d)] for d in text)


def _decimal(match):
    return cardinal(_integer(match.group(1))) + ' point ' + _digits(match.group(2))


def _time(match):
    hour, minute = int(match.group(1)), int(match.group(2))
    if minute == 0:
        return cardinal(hour) + " o'clock"
    return cardinal(hour) + (' oh ' if minute < 10 else ' ') + cardinal(minute)


def _fraction(match):
    numerator, denominator = int(match.group(1)), int(match.group(2))
    if (numerator, denominator) in _FRACTIONS:
        return _FRACTIONS[(numerator, denominator)]
    if denominator == 2:
        name = 'half' if numerator == 1 else 'halves'
    else:
        name = ordinal(denominator)
        if numerator != 1:
            name = _plural(name)
    return cardinal(numerator) + ' ' + name


def _number(match):
    text = match.group(0)
    value = _integer(text)
    if ',' not in text and len(text) == 4 and 1100 <= value <= 2099:
        return year(value)
    if len(text) > 1 and text.startswith('0') and ',' not in text:   # 007: digit by digit
        return _digits(text)
    if value >= 10 ** 15:
        return _digits(text.replace(',', ''))
    return cardinal(value)


def _abbreviation(match, words):
    spoken = words[match.group(0)]
    following = match.string[match.end():]
    # The period also ended the sentence: keep one.
    if not following.strip() or re.match(r'\s+[A-Z"]', following):
        spoken += '.'
    return spoken


def _saint_or_street(match):
    """``St.`` after a capitalized word is a street (Baker St.), else a saint (St. Paul)."""
    before = match.string[:match.start()].split()
    if before and before[-1][:1].isupper():
        return _abbreviation(match, {'St.': 'street'})
    return 'saint'


_RULES = (
    # 1914-1918, pages 3-5: a range
    (re.compile(r'(?<![\w.])(\d+)\s*[\u2013\u2014-]\s*(\d+)(?![\w.])'), r'\1 to \2'),
    (re.compile(r'\s*(?:[\u2013\u2014]|--)\s*'), ', '),
    (re.compile(r'([$£€])\s?(%s)(?:\.(\d+))?%s' % (_NUMBER, _SCALE_WORD)), _money),
    (re.compile(r'(?<![\w.])#\s?(?=\d)'), 'number '),
    (re.compile(r'\bNo\.\s?(?=\d)'), 'number '),
    (re.compile(r'(\d)\s?%'), r'\1 percent'),
    (re.compile(r'\b(\d+)(?:st|nd|rd|th)\b'), lambda m: ordinal(int(m.group(1)))),
    (re.compile(r"\b(1[1-9]\d0|20\d0)'?s\b"), lambda m: _plural(year(int(m.group(1))))),
    (re.compile(r'\b([01]?\d|2[0-3]):([0-5]\d)\b'), _time),
    (re.compile(r'(?<![\w./])(\d+)/(\d+)(?![\w/])'), _fraction),
    (re.compile(r'(?<!\w)(?<!\d\.)(%s)\.(\d+)(?!\w|\.\d)' % _NUMBER), _decimal),
    (re.compile(r'(?<![\w.-])-(?=\d)'), 'minus '),
    (re.compile(r'\b(?:%s)\b' % _NUMBER), _number),
    (re.compile(r'\b(%s)\.(?=\s)' % '|'.join(_TITLES)),
     lambda m: _TITLES[m.group(1)]),
    (re.compile(r'\bSt\.'), _saint_or_street),
    (re.compile(r'(?<![\w.])(%s)(?!\w)' % '|'.join(re.escape(a) for a in _ABBREVIATIONS)),
     lambda m: _abbreviation(m, _ABBREVIATIONS)),
    (re.compile(r'\s*&\s*'), ' and '),
    (re.compile(r'\s+\+\s+'), ' plus '),
    (re.compile(r'\s+=\s+'), ' equals '),
    (re.compile(r'\s*\u00b0\s*([CF])\b'), lambda m: ' degrees ' + {'C': 'celsius',
                                                                      'F': 'fahrenheit'}[m[1]]),
    (re.compile(r'\s*\u00b0'), ' degrees'),
    (re.compile(r'(?<=\w)\s*@\s*(?=\w)'), ' at '),
)


def verbalize(text):
    """Spell out the written forms of ``text`` (see the module docstring); keep the rest.

    Parameters
    ----------
    text : str
        Written English: a sentence or a paragraph, any case.

    Returns
    -------
    str
        The same text with numbers, money, times, ordinals, fractions, common
        abbreviations and the symbols ``& % # + = @ °`` in words, curly quotes
        and dashes made plain, accents stripped and white space folded.
    """
    text = text.translate(_UNICODE_PUNCTUATION)
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    text = unicodedata.normalize('NFKD', text).encode('ascii', 'ignore').decode('ascii')
    return ' '.join(text.split())
