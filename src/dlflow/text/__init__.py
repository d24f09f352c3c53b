"""Framework-free text processing shared by the Word2Vec and RNN pipelines:
the one tokeniser and the vocabulary."""

from dlflow.text.tokenize import tokenize
from dlflow.text.vocabulary import PAD, PAD_ID, SPECIALS, UNK, UNK_ID, Vocabulary

__all__ = ["PAD", "PAD_ID", "SPECIALS", "UNK", "UNK_ID", "Vocabulary", "tokenize"]
