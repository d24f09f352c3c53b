"""Framework-free text processing shared by the Word2Vec and RNN pipelines:
the one tokeniser, the vocabulary, and corpora of any size as token ids on disk."""

from dlflow.text.token_ids import CorpusFormatError, TokenIds, TokenStream, write_token_ids
from dlflow.text.tokenize import tokenize
from dlflow.text.vocabulary import PAD, PAD_ID, SPECIALS, UNK, UNK_ID, Vocabulary

__all__ = [
    "PAD",
    "PAD_ID",
    "SPECIALS",
    "UNK",
    "UNK_ID",
    "CorpusFormatError",
    "TokenIds",
    "TokenStream",
    "Vocabulary",
    "tokenize",
    "write_token_ids",
]
