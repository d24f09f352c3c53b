"""The one tokeniser of the text pipelines (Word2Vec and the RNN share it).

In the spirit of Kim (2014)'s ``clean_str``: lower-case; split off the clitics
``'s 're 've 'd 'll 'm`` and ``n't`` (``don't`` → ``do n't``); keep runs of
letters and digits (any script, so ``café`` stays one token) and the
punctuation ``( ) , ! ?`` as tokens; drop everything else (periods, quotes,
hyphens, slashes, ...), which splits ``jean-claude`` into ``jean claude``.
The typographic apostrophe ``’`` counts as ``'``.

One compiled regular expression does all the work per call, so a few million
tokens take a second or two.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r"""
      [^\W_]+(?=n't)                  # "do" of "don't", "ca" of "can't"
    | n't
    | '(?:s|re|ve|d|ll|m)(?![^\W_])   # clitics, not the start of a longer word ('sup)
    | [^\W_]+                         # letters and digits
    | [(),!?]                         # punctuation kept as tokens
    """,
    re.VERBOSE,
)


def tokenize(text: str) -> list[str]:
    """Lower-cased tokens of ``text``.

    >>> tokenize("The Rock's new film isn't \\"great\\" -- it's GREAT!")
    ['the', 'rock', "'s", 'new', 'film', 'is', "n't", 'great', 'it', "'s", 'great', '!']
    """
    return _TOKEN.findall(text.lower().replace("\u2019", "'"))
