"""Text pipeline nodes on small real-format inputs: a multi-class table from a real file, the corpus, the vocabulary."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd
import pytest

from dlflow.io import LabelledTextDataset, TextCorpusDataset, TokenIdsDataset
from dlflow.pipelines.text.nodes import build_text_corpus, build_vocabulary, prepare_labelled_sentences
from dlflow.sources.errors import DataValidationError
from dlflow.text import Vocabulary, tokenize

VOCABULARY = {"min_count": 1}


def corpus_of(labelled, subjectivity, movie_reviews, brown, user, corpora, corpus_repeats=None):
    """``build_text_corpus`` with what ``params:text.corpora`` / ``corpus_repeats`` / ``max_corpus_sentences`` give it."""
    return build_text_corpus(labelled, subjectivity, movie_reviews, brown, user, corpora, corpus_repeats or {}, None)


def saved(stream, folder: Path) -> list[list[str]]:
    """The corpus as the catalog's ``text_corpus`` stores it (token ids on disk), read back as token lists."""
    dataset = TokenIdsDataset(filepath=str(folder / "corpus"))
    dataset.save(stream)
    corpus = dataset.load()
    return [[corpus.words[i] for i in sentence] for sentence in corpus.sentences()]


def never_read():
    raise AssertionError("a corpus that text.corpora does not name was read")


def test_user_corpus_is_read_lazily_and_only_when_chosen(tmp_path):
    archive = tmp_path / "mine.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.txt", "The cat sat .\nThe dog ran !\n")
        zf.writestr("b.txt", "A cat and a dog .\n")
    user = TextCorpusDataset(filepath=str(archive), lazy=True).load()
    assert callable(user)
    mr = pd.DataFrame({"sentence": ["never used"], "label": [1], "fold": [0]})

    corpus = corpus_of(mr, never_read, never_read, never_read, user, ["user"])
    expected = [["the", "cat", "sat"], ["the", "dog", "ran", "!"], ["a", "cat", "and", "a", "dog"]]
    assert saved(corpus, tmp_path) == expected

    on_disk = TokenIdsDataset(filepath=str(tmp_path / "corpus")).load()
    vocabulary = Vocabulary.from_dict(build_vocabulary(on_disk, VOCABULARY))
    assert vocabulary.words[:4] == ("<pad>", "<unk>", "a", "cat")  # by count, ties alphabetical
    assert vocabulary == Vocabulary.build(expected)  # counted in the corpus' one pass, as if from the token lists
    streamed = corpus_of(mr, never_read, never_read, never_read, user, ["user"])  # not saved: counted on the way
    assert Vocabulary.from_dict(build_vocabulary(streamed, VOCABULARY)) == vocabulary


def test_unknown_corpus_name_is_rejected_before_reading():
    with pytest.raises(ValueError, match=r"text\.corpora"):
        corpus_of(pd.DataFrame(), never_read, never_read, never_read, never_read, ["wikipedia"])


def test_corpus_repeats_weigh_in_domain_text_and_reject_zero(tmp_path):
    mr = pd.DataFrame({"sentence": ["A fine film ."], "label": [1], "fold": [0]})
    subjectivity = lambda: ["The plot thickens ."]  # noqa: E731
    corpus = corpus_of(mr, subjectivity, never_read, never_read, never_read, ["labelled", "subjectivity"], {"labelled": 3})
    lines = [" ".join(tokens) for tokens in saved(corpus, tmp_path)]
    assert lines == ["a fine film"] * 3 + ["the plot thickens"]

    with pytest.raises(ValueError, match="corpus_repeats"):
        corpus_of(mr, subjectivity, never_read, never_read, never_read, ["labelled", "subjectivity"], {"labelled": 0})


GENRES = {
    "news": "the minister said on monday that the budget vote is delayed .",
    "romance": "she smiled at him across the candle lit table , her heart racing .",
    "science": "the samples were heated to 400 kelvin and the spectra recorded .",
}


def genre_file(tmp_path: Path, per_class: dict[str, int]) -> Path:
    """A real CSV of labelled sentences, ``per_class[name]`` of each class."""
    rows = [(f"{GENRES[name]} ({i})", name) for name, count in per_class.items() for i in range(count)]
    path = tmp_path / "genres.csv"
    pd.DataFrame(rows, columns=["text", "label"]).sample(frac=1, random_state=0).to_csv(path, index=False)
    return path


def test_a_multi_class_table_gets_stratified_folds_and_feeds_the_corpus(tmp_path: Path) -> None:
    raw = LabelledTextDataset(filepath=str(genre_file(tmp_path, {"news": 30, "romance": 20, "science": 10})), source="table")
    sentences = prepare_labelled_sentences(raw.load(), folds=5, fold_seed=1)
    assert list(sentences.columns) == ["sentence", "label", "class_name", "fold"]
    assert sentences.groupby("class_name")["fold"].value_counts().unstack().to_dict("index") == {
        "news": dict.fromkeys(range(5), 6),
        "romance": dict.fromkeys(range(5), 4),
        "science": dict.fromkeys(range(5), 2),
    }  # every fold holds its share of every class
    assert sentences.attrs == {}  # the file's path stays with the raw data set

    # text.corpora's `labelled`: the table's own sentences take MR's place in the Word2Vec corpus
    user = lambda: ["an unlabelled sentence of the user ."]  # noqa: E731
    corpus = saved(
        corpus_of(sentences, never_read, never_read, never_read, user, ["labelled", "user"], {"labelled": 2}), tmp_path
    )
    assert len(corpus) == 2 * 60 + 1 and corpus[-1] == tokenize("an unlabelled sentence of the user .")
    assert corpus[:60] == [tokenize(s) for s in sentences["sentence"]]


def test_a_class_too_small_for_the_folds_is_refused_by_name_and_count(tmp_path: Path) -> None:
    raw = LabelledTextDataset(filepath=str(genre_file(tmp_path, {"news": 30, "romance": 20, "science": 6})), source="table")
    frame = raw.load()
    with pytest.raises(DataValidationError) as error:
        prepare_labelled_sentences(frame, folds=10, fold_seed=1)
    message = str(error.value)
    assert "genres.csv" in message and "'science' has 6" in message and "at least 10" in message
    assert "--params text.folds=6" in message and "'news'" not in message
    assert len(prepare_labelled_sentences(frame, folds=6, fold_seed=1)) == 56  # as the message suggests

    tiny = LabelledTextDataset(filepath=str(genre_file(tmp_path, {"news": 30, "romance": 3, "science": 2})), source="table")
    with pytest.raises(DataValidationError, match=r"2 classes .*'science' has 2, 'romance' has 3; each class needs at least 4"):
        prepare_labelled_sentences(tiny.load(), folds=2, fold_seed=1)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"text_source": "table"}, r"text_source=table reads the file labelled_text: add --params labelled_text="),
        ({"labelled_text": "a.csv"}, r"labelled_text \(a\.csv\) is read only with text_source=table"),
        ({"text_source": "imdb"}, r"text_source: Input should be 'mr' or 'table'"),
        ({"text_source": "table", "labelled_text": "a.csv", "label_column": "text"}, "both 'text'"),
        ({"text_source": "table", "labelled_text": "a.csv", "labelled_text_encoding": "klingon"}, "unknown text encoding"),
        ({"text": {"corpora": ["mr"]}}, r"text\.corpora\.0: Input should be 'labelled'"),
    ],
)
def test_the_text_source_parameters_are_checked_before_any_work(params, message):
    from dlflow.config import validate_parameters

    with pytest.raises(ValueError, match=message):
        validate_parameters(params)


def test_valid_text_source_parameters_pass():
    from dlflow.config import validate_parameters

    validate_parameters({"text_source": "mr", "labelled_text": None, "text_column": "text", "label_column": "label"})
    validate_parameters(
        {"text_source": "table", "labelled_text": "t.jsonl", "text_column": 3, "labelled_text_encoding": "cp1252"}
    )
