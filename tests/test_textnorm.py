"""Written English -> spoken words, against expectations written out by hand."""
import pytest

from gluon_ds2.textnorm import cardinal, ordinal, verbalize, year


@pytest.mark.parametrize('number, words', [
    (0, 'zero'), (7, 'seven'), (13, 'thirteen'), (20, 'twenty'), (42, 'forty two'),
    (100, 'one hundred'), (105, 'one hundred five'), (999, 'nine hundred ninety nine'),
    (1000, 'one thousand'), (1205, 'one thousand two hundred five'),
    (20000, 'twenty thousand'), (1000001, 'one million one'),
    (3400000000, 'three billion four hundred million'),
])
def test_cardinal(number, words):
    assert cardinal(number) == words


@pytest.mark.parametrize('number, words', [
    (1, 'first'), (2, 'second'), (3, 'third'), (4, 'fourth'), (5, 'fifth'), (8, 'eighth'),
    (9, 'ninth'), (11, 'eleventh'), (12, 'twelfth'), (20, 'twentieth'), (21, 'twenty first'),
    (42, 'forty second'), (100, 'one hundredth'), (1000, 'one thousandth'),
])
def test_ordinal(number, words):
    assert ordinal(number) == words


@pytest.mark.parametrize('number, words', [
    (1066, 'ten sixty six'), (1776, 'seventeen seventy six'), (1900, 'nineteen hundred'),
    (1905, 'nineteen oh five'), (2000, 'two thousand'), (2008, 'two thousand eight'),
    (2010, 'twenty ten'), (2024, 'twenty twenty four'),
])
def test_year(number, words):
    assert year(number) == words


def test_out_of_range_numbers_are_refused_by_name():
    with pytest.raises(ValueError, match=r'cardinal\(\) reads 0 to 10\*\*15 - 1, got -1'):
        cardinal(-1)
    with pytest.raises(ValueError, match=r'year\(\) reads four-digit years, got 999'):
        year(999)


@pytest.mark.parametrize('written, spoken', [
    # numbers in prose
    ('In 1887 he was 21.', 'In eighteen eighty seven he was twenty one.'),
    ('There were 1,250 men and 3 dogs.', 'There were one thousand two hundred fifty men and '
                                         'three dogs.'),
    ('Pi is about 3.14.', 'Pi is about three point one four.'),
    ('It fell to -4 degrees.', 'It fell to minus four degrees.'),
    ('Call 007 now.', 'Call zero zero seven now.'),
    ('the 1st, 2nd, 3rd and 24th of May', 'the first, second, third and twenty fourth of May'),
    ('in the 1990s and the 1800s', 'in the nineteen nineties and the eighteen hundreds'),
    ('from 1914-1918', 'from nineteen fourteen to nineteen eighteen'),
    ('about 1/2 or 3/4 or 2/3 of it', 'about one half or three quarters or two thirds of it'),
    # money, percentages, times
    ('It cost $5.', 'It cost five dollars.'),
    ('It cost $3.50, not $1.', 'It cost three dollars fifty cents, not one dollar.'),
    ('only $0.99', 'only ninety nine cents'),
    ('a $2 million house', 'a two million dollars house'),
    ('\u00a31,000 and \u20ac3', 'one thousand pounds and three euros'),
    ('Prices rose 50% and 3.5%.', 'Prices rose fifty percent and three point five percent.'),
    ('at 10:30 a.m. or 5:00 p.m.', "at ten thirty a m or five o'clock p m."),  # ends the text
    ('at 9:05', 'at nine oh five'),
    # abbreviations: titles drop their period; a sentence-final one keeps it
    ('Mr. and Mrs. Smith met Dr. Jones.', 'mister and missus Smith met doctor Jones.'),
    ('St. Paul lived on Baker St. in town.', 'saint Paul lived on Baker street in town.'),
    ('apples, pears, etc. Then more.', 'apples, pears, et cetera. Then more.'),
    ('fruit, e.g. apples, i.e. food', 'fruit, for example apples, that is food'),
    ('See No. 5 and #3.', 'See number five and number three.'),
    # symbols and typography
    ('salt & pepper', 'salt and pepper'),
    ('2 + 2 = 4', 'two plus two equals four'),
    ('\u201cIt\u2019s late,\u201d she said \u2014 na\u00efvely.',
     '"It\'s late," she said, naively.'),
    ('It was 20 \u00b0C.', 'It was twenty degrees celsius.'),
    # nothing to do
    ("Don't touch the text: it's fine!", "Don't touch the text: it's fine!"),
])
def test_verbalize(written, spoken):
    assert verbalize(written) == spoken


def test_verbalize_leaves_no_digit_in_ordinary_numbers():
    text = verbalize('On 4 July 1776, 56 men signed; by 1800 about 5,308,483 people lived '
                     'there, 17.8% of them in 12 towns.')
    assert not any(ch.isdigit() for ch in text), text
