"""Typed parameters: every pipeline's parameters are checked here before any work starts.

Unknown keys and bad values are errors that name the offending key, e.g.
``cnn.training.lr: Input should be greater than 0``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainingParams(StrictModel):
    """The recipe of the shared training loop: its fields, defaults and checks, in one place.

    ``dlflow.training.TrainConfig`` is this class, so a recipe from
    ``parameters_*.yml`` and one written in code are checked alike; a bad value
    is a ``ValueError`` (pydantic's ``ValidationError``) naming the field.
    ``epochs``, ``batch_size`` and ``lr`` have no default: every recipe states them.

    ``label_smoothing`` configures the default loss and is ignored when ``fit``
    gets its own ``loss_fn``. ``validate_every``: validate after every n-th
    epoch and after the last (the other epochs record NaN validation metrics).
    ``early_stopping_patience`` counts validations without a lower validation
    loss; the best validated epoch's weights are restored at the end.
    ``min_steps``: ``fit`` raises ``epochs`` so that training takes at least this many
    optimiser steps (``epochs_for``): a recipe tuned on 60,000 images still trains on 1,500.
    ``bucket_by_feature`` names the feature (e.g. sequence lengths) by which
    training batches are grouped, see ``TensorDataset.batches``.
    ``processes > 1`` trains data-parallel under ``torchrun`` (one GPU per
    process on CUDA, gloo on CPU), ``batch_size`` being the global batch.
    ``num_threads`` is per process; ``None``: the machine's cores divided among
    its processes. ``progress``, ``checkpoint_dir``, ``resume`` and
    ``num_threads`` do not change the result, so they are not part of the
    checkpoint key (``processes`` is: a run never resumes from a checkpoint of
    another process count).
    """

    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    eval_batch_size: int = Field(default=1024, ge=1)
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = Field(gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    schedule: Literal["constant", "onecycle", "cosine"] = "constant"
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    max_grad_norm: float | None = Field(default=None, gt=0)
    early_stopping_patience: int | None = Field(default=None, ge=1)
    min_steps: int | None = Field(default=None, ge=1)  # at least this many optimiser steps: more epochs on small data
    validate_every: int = Field(default=1, ge=1)  # validate after every n-th epoch and after the last
    seed: int = 42
    deterministic: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    processes: int = Field(default=1, ge=1)  # > 1: DistributedDataParallel under torchrun (gloo on CPU, NCCL on GPU)
    num_threads: int | None = Field(default=None, ge=1)  # per process
    channels_last: bool = False
    bucket_by_feature: int | None = Field(default=None, ge=0)  # e.g. 1: the RNN's sentence lengths
    checkpoint_dir: str | None = None
    resume: bool = True
    progress: bool = True

    def epochs_for(self, samples: int) -> int:
        """``epochs``, raised where ``samples`` make so few batches that training would take fewer than
        ``min_steps`` optimiser steps (a few hundred images at batch 256 are a handful of steps an epoch)."""
        if self.min_steps is None or samples <= 0:
            return self.epochs
        return max(self.epochs, math.ceil(self.min_steps / math.ceil(samples / self.batch_size)))

    @model_validator(mode="after")
    def _every_process_gets_a_slice_of_each_batch(self) -> TrainingParams:
        if self.processes > self.batch_size:
            raise ValueError(
                f"processes ({self.processes}) must not exceed batch_size ({self.batch_size}): "
                "each process trains on a slice of every batch"
            )
        return self


class ImageDataParams(StrictModel):
    validation_fraction: float = Field(gt=0, lt=1)
    split_seed: int = 42
    max_train_samples: int | None = Field(default=None, ge=10)
    max_test_samples: int | None = Field(default=None, ge=10)


class CnnModelParams(StrictModel):
    """The architecture and its constructor's options; the input channels and size come from the data."""

    architecture: str
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("options")
    @classmethod
    def _data_decides_the_input(cls, options: dict[str, Any]) -> dict[str, Any]:
        taken = sorted({"num_classes", "in_channels", "image_size"} & set(options))
        if taken:
            raise ValueError(
                f"{', '.join(taken)} come from the image table (its classes, channels and size), not from "
                "cnn.model.options: remove them, and set the ingestion's size and channels to change the input"
            )
        return options


#: Image sources whose classes survive a left-right mirror. A flip turns one digit or letter into
#: another (MNIST, scanned forms), so flips are on by default for these sources only.
MIRROR_SAFE_SOURCES = frozenset({"fashion_mnist"})


class AugmentationParams(StrictModel):
    """Flip augmentations: random left-right flips of training batches, and test-time averaging over
    each image and its mirror. ``None`` (the default): on for the sources in ``MIRROR_SAFE_SOURCES``
    (Fashion-MNIST), off for every other source; ``true``/``false`` decide for any source.
    ``resolved(image_source)`` gives the values a run uses."""

    horizontal_flip: bool | None = None
    flip_test_time: bool | None = None

    def resolved(self, image_source: str) -> AugmentationParams:
        """These settings for ``image_source``: every ``None`` replaced by that source's default."""
        default = image_source in MIRROR_SAFE_SOURCES
        return AugmentationParams(
            horizontal_flip=default if self.horizontal_flip is None else self.horizontal_flip,
            flip_test_time=default if self.flip_test_time is None else self.flip_test_time,
        )


class RegistrationParams(StrictModel):
    """Where a family registers its model; the promotion rules live in ``promotion`` (PromotionParams)."""

    model_name: str = Field(min_length=1)
    enabled: bool = True  # false: log the model to the run without registering it


class PromotionRules(StrictModel):
    """The gate's rules: when a new version takes ``champion`` from the current one.

    Both must be measured on the same test data. The candidate's ``metric`` must
    beat the champion's by at least ``min_improvement``, and no class's
    ``class_metric`` may drop by more than ``max_class_drop`` (null: no per-class rule).
    """

    metric: str = Field(default="test_accuracy", min_length=1)
    greater_is_better: bool = True
    min_improvement: float = Field(default=0.0, ge=0)
    class_metric: Literal["recall", "precision", "f1"] = "recall"
    max_class_drop: float | None = Field(default=None, ge=0, le=1)


class PromotionOverride(StrictModel):
    """A family's exceptions to the default rules: only the keys given replace the default's."""

    metric: str | None = Field(default=None, min_length=1)
    greater_is_better: bool | None = None
    min_improvement: float | None = Field(default=None, ge=0)
    class_metric: Literal["recall", "precision", "f1"] | None = None
    max_class_drop: float | None = Field(default=None, ge=0, le=1)  # an explicit null switches the rule off

    def apply(self, base: PromotionRules) -> PromotionRules:
        given = {
            key: value
            for key, value in self.model_dump(include=self.model_fields_set).items()
            if value is not None or key == "max_class_drop"  # the only key where null means something
        }
        return PromotionRules.model_validate(base.model_dump() | given)


class PromotionParams(StrictModel):
    """``conf/*/parameters_promotion.yml``: default rules and per-family overrides."""

    default: PromotionRules = PromotionRules()
    families: dict[Literal["cnn", "rnn", "word2vec"], PromotionOverride] = Field(default_factory=dict)

    def rules_for(self, family: str) -> PromotionRules:
        override = self.families.get(family)  # type: ignore[call-overload]
        return override.apply(self.default) if override is not None else self.default


def _no_checkpoint_dir(training: TrainingParams) -> TrainingParams:
    """A pipeline's checkpoints live in the catalog (``<family>_checkpoints``), not in its parameters."""
    if training.checkpoint_dir is not None:
        raise ValueError(
            "checkpoint_dir is set in the catalog, not in the parameters: "
            "change `<family>_checkpoints` in conf/<env>/catalog.yml instead"
        )
    return training


class StreamingParams(StrictModel):
    """Whether training holds its images in memory or streams them from the parquet shards.

    ``auto``: in memory when the decoded training images (float32) fit ``memory_budget_mb`` and a
    quarter of the machine's memory, else streamed (``dlflow.training.streaming.ShardStream``, shuffled
    by shard and within a buffer of ``shuffle_buffer_rows`` rows); ``memory`` or ``shards`` decide.
    """

    mode: Literal["auto", "memory", "shards"] = "auto"
    memory_budget_mb: int = Field(default=2048, ge=1)
    shuffle_buffer_rows: int = Field(default=32768, ge=1)


class CnnParams(StrictModel):
    data: ImageDataParams
    model: CnnModelParams
    training: Annotated[TrainingParams, AfterValidator(_no_checkpoint_dir)]
    streaming: StreamingParams = StreamingParams()
    augmentation: AugmentationParams = AugmentationParams()
    registration: RegistrationParams
    misclassified_examples: int = Field(default=25, ge=0, le=100)
    feedback: bool = True  # train on the feedback data too (labelled batches monitoring kept; appended to the training split)


class VocabularyParams(StrictModel):
    min_count: int = Field(default=5, ge=1)
    max_size: int | None = Field(default=None, ge=10)


#: ``labelled``: the labelled sentences themselves (MR's, or the user's table with ``text_source=table``).
CorpusName = Literal["labelled", "subjectivity", "movie_reviews", "brown", "user"]


class TextParams(StrictModel):
    """Shared text preprocessing: folds of the labelled sentences, the Word2Vec corpus, the vocabulary."""

    folds: int = Field(default=10, ge=2, le=20)
    fold_seed: int = 42
    corpora: list[CorpusName] = Field(default=["labelled", "subjectivity", "movie_reviews", "brown"], min_length=1)
    # times a corpus' sentences enter the Word2Vec corpus (in-domain text weighs more); default 1
    corpus_repeats: dict[CorpusName, PositiveInt] = Field(default_factory=dict)
    max_corpus_sentences: int | None = Field(default=None, ge=100)
    vocabulary: VocabularyParams = VocabularyParams()


class LabelledTextParams(StrictModel):
    """Where the labelled sentences come from: top-level runtime parameters, which the catalog's
    ``labelled_text_raw`` reads too (``kedro run --pipeline rnn --params text_source=table,labelled_text=f.csv``).

    ``text_source``: ``mr`` (MR sentence polarity, fetched) or ``table`` (the CSV, TSV, parquet or
    JSON Lines file ``labelled_text``, its columns ``text_column`` and ``label_column``, decoded as
    ``labelled_text_encoding``; null: utf-8, MR's latin-1).
    """

    text_source: Literal["mr", "table"] = "mr"
    labelled_text: str | None = None
    text_column: str = Field(default="text", min_length=1)
    label_column: str = Field(default="label", min_length=1)
    labelled_text_encoding: str | None = None

    @field_validator("labelled_text", "text_column", "label_column", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        """``--params text_column=2`` arrives as the number 2: a column or file name is text."""
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @field_validator("labelled_text_encoding")
    @classmethod
    def _known_encoding(cls, encoding: str | None) -> str | None:
        import codecs

        if encoding is not None:
            try:
                codecs.lookup(encoding)
            except LookupError:
                raise ValueError(f"unknown text encoding {encoding!r} (try utf-8, latin-1, cp1252 or utf-16)") from None
        return encoding

    @model_validator(mode="after")
    def _a_table_needs_a_file(self) -> LabelledTextParams:
        if self.text_source == "table" and not self.labelled_text:
            raise ValueError("text_source=table reads the file labelled_text: add --params labelled_text=/path/to/file")
        if self.text_source == "mr" and self.labelled_text:
            raise ValueError(
                f"labelled_text ({self.labelled_text}) is read only with text_source=table; add --params text_source=table"
            )
        if self.text_column == self.label_column:
            raise ValueError(f"text_column and label_column are both {self.text_column!r}: they name two columns")
        return self


class ImageSourceParams(StrictModel):
    """Where the images come from: top-level runtime parameters, which the catalog's ``image_raw`` reads too
    (``kedro run --pipeline cnn --params image_source=folder,images_dir=/path/to/images``).

    ``image_source``: a registered data set (``fashion_mnist``, ``mnist``: IDX files, fetched) or
    ``folder`` (the class folders of ``images_dir``, read as the ``images`` block says).
    """

    image_source: str = "fashion_mnist"
    images_dir: str | None = None

    @field_validator("images_dir", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        """``--params images_dir=2024`` arrives as the number 2024: a folder name is text."""
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _a_folder_needs_a_path(self) -> ImageSourceParams:
        """(An unknown registered source is refused by the catalog's ``image_raw``, which lists the known ones.)"""
        if self.image_source == "folder" and not self.images_dir:
            raise ValueError("image_source=folder reads the folder images_dir: add --params images_dir=/path/to/images")
        if self.image_source != "folder":
            if self.images_dir:
                raise ValueError(
                    f"images_dir ({self.images_dir}) is read only with image_source=folder; add --params image_source=folder"
                )
        return self


def _image_size(value: Any) -> Any:
    """``64`` (a square), ``"64x48"`` (``--params images.image_size=64x48``) or ``[64, 48]``: (height, width)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, str):
        parts = value.lower().replace(" ", "").split("x")
        if len(parts) == 2 and all(part.isdigit() for part in parts):
            return (int(parts[0]), int(parts[1]))
        raise ValueError(f"give the size as height x width, e.g. 64x48, or one number for a square; got {value!r}")
    return value


class ImagesParams(StrictModel):
    """``images`` (conf/*/parameters_images.yml): how ingestion reads a folder of images (``image_source=folder``).

    ``image_size`` (height, width) and ``channels`` (1 grey, 3 RGB) default to the data's: the most
    common size, and RGB when any image is in colour. ``resize`` fits other sizes: ``stretch``, ``pad``
    (letter-boxed) or ``crop`` (centre). Without a test/ folder ``test_fraction`` of the distinct images
    is held out, stratified and seeded by ``split_seed``. ``on_bad_file``: ``fail`` stops on corrupt,
    truncated, empty or non-image files, listing them; ``skip`` leaves them out and lists them in MLflow.
    ``workers``: decoding processes (null: one per core).
    """

    image_size: Annotated[
        tuple[Annotated[int, Field(ge=1, le=65535)], Annotated[int, Field(ge=1, le=65535)]] | None, BeforeValidator(_image_size)
    ] = None
    channels: Literal[1, 3] | None = None
    resize: Literal["stretch", "pad", "crop"] = "stretch"
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    split_seed: int = 42
    on_bad_file: Literal["fail", "skip"] = "fail"
    workers: int | None = Field(default=None, ge=1)


class Word2VecTrainingParams(StrictModel):
    """Settings of a Word2Vec run, checked up front; defaults are gensim's (``Word2Vec(sg=0 or 1)``).

    ``dlflow.training.word2vec.Word2VecConfig`` is this class, so ``word2vec.training`` in
    ``parameters_word2vec.yml`` and a config written in code are checked alike; a bad value
    is a ``ValueError`` (pydantic's ``ValidationError``) naming the field. The model is
    frozen; ``config.model_copy(update=...)`` makes an unchecked variant.

    ``window`` is the largest distance between a word and its context (the window used
    for each centre word is drawn uniformly from 1..window). The learning rate decays
    linearly from ``alpha`` to ``min_alpha`` over all words of all epochs. ``batch_words``:
    corpus words per job; ``None``: 10,000 for the kernel, 2,000 for the torch engine
    (whose job applies its updates together). ``seed`` seeds initialisation, sub-sampling,
    windows and noise words. ``device``: ``auto`` is CUDA when present.
    """

    mode: Literal["cbow", "skipgram"] = "cbow"  # cbow: the mean of the context predicts the word
    # vector size; 1 is enough for everything downstream (the PCA map pads a single component)
    dim: int = Field(default=100, ge=1)
    window: int = Field(default=5, ge=1)
    negative: int = Field(default=5, ge=1)  # noise words per positive example
    sample: float = Field(default=1e-3, ge=0, lt=1)  # sub-sampling threshold of frequent words (gensim's formula; 0: off)
    epochs: int = Field(default=5, ge=1)
    alpha: float = Field(default=0.025, gt=0)
    min_alpha: float = Field(default=1e-4, ge=0)  # at most alpha
    batch_words: int | None = Field(default=None, ge=1)
    threads: int | None = Field(default=None, ge=1)  # worker threads; None: every CPU core
    deterministic: bool = False  # true: one thread, bit-identical vectors (about half the speed)
    seed: int = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # auto: the compiled kernel (word2vec.c's loop, numba) on CPU, tensor operations (torch) on CUDA
    engine: Literal["auto", "kernel", "torch"] = "auto"

    @field_validator("min_alpha")
    @classmethod
    def _decays_to_min_alpha(cls, min_alpha: float, info: ValidationInfo) -> float:
        alpha = info.data.get("alpha")  # absent when alpha itself was refused
        if alpha is not None and min_alpha > alpha:
            raise ValueError(f"must not exceed alpha ({alpha}): the learning rate decays from alpha to min_alpha")
        return min_alpha

    @field_validator("engine")
    @classmethod
    def _kernel_on_cpu(cls, engine: str, info: ValidationInfo) -> str:
        if engine == "kernel" and info.data.get("device") == "cuda":
            raise ValueError("'kernel' runs on the CPU only; use device 'cpu' or engine 'torch'")
        return engine


class Word2VecParams(StrictModel):
    training: Word2VecTrainingParams
    probes: list[str] = Field(default=["good", "bad", "movie", "funny", "boring", "actor"], min_length=1)
    map_words: int = Field(default=300, ge=10)
    analogy_restrict_vocab: int = Field(default=30000, ge=100)
    registration: RegistrationParams


class RnnModelParams(StrictModel):
    cell: Literal["lstm", "gru"] = "lstm"
    bidirectional: bool = True
    hidden_size: int = Field(default=72, ge=1)
    num_layers: int = Field(default=1, ge=1)
    dropout: float = Field(default=0.5, ge=0, lt=1)
    pooling: Literal["max", "last"] = "max"
    embedding_mode: Literal["rand", "static", "non_static"] = "non_static"
    conv_filters: int = Field(default=0, ge=0)  # a convolution over the recurrent states before pooling; 0: none
    conv_kernel: int = Field(default=3, ge=1)  # its width in time steps (odd)
    bf16: bool | None = None  # bfloat16 autocast after the embedding; None: where the hardware computes bf16 natively

    @model_validator(mode="after")
    def _conv_fits(self) -> RnnModelParams:
        if self.conv_filters and self.conv_kernel % 2 == 0:
            raise ValueError(f"conv_kernel must be odd (the states keep their length), got {self.conv_kernel}")
        if self.conv_filters and self.pooling == "last":
            raise ValueError("conv_filters needs pooling: max (the convolution's outputs are pooled over time)")
        return self


class RnnEvaluationParams(StrictModel):
    """``mode``: ``cv`` (every fold held out in turn), ``split`` (only ``test_fold``), or ``None``: ``cv`` for
    at most ``cv_max_sentences`` sentences, ``split`` above (:meth:`resolved_mode`).
    ``workers``: processes that train folds side by side (``None``: one per core, at most one per fold)."""

    mode: Literal["cv", "split"] | None = None
    cv_max_sentences: int = Field(default=20000, ge=0)
    test_fold: int = Field(default=0, ge=0)
    validation_fraction: float = Field(default=0.1, gt=0, lt=1)
    workers: int | None = Field(default=None, ge=1)

    def resolved_mode(self, sentences: int) -> Literal["cv", "split"]:
        """The mode for a data set of ``sentences``: ``mode`` if set, else by size."""
        if self.mode is not None:
            return self.mode
        return "cv" if sentences <= self.cv_max_sentences else "split"


class NaiveBayesParams(StrictModel):
    alpha: float = Field(default=1.0, gt=0)
    ngram_max: int = Field(default=2, ge=1, le=3)


class RnnAdversarialParams(StrictModel):
    """Adversarial training on the word vectors (``training.adversarial``); ``epsilon`` 0 turns it off."""

    epsilon: float = Field(default=0.0, ge=0)


class RnnRecipe(StrictModel):
    """What training and cross-validating the RNN reads (``dlflow.training.rnn``): a node that
    trains gets these four blocks only, so changing ``max_length`` or the baseline does not rerun it."""

    model: RnnModelParams = RnnModelParams()
    adversarial: RnnAdversarialParams = RnnAdversarialParams()
    evaluation: RnnEvaluationParams = RnnEvaluationParams()
    training: Annotated[TrainingParams, AfterValidator(_no_checkpoint_dir)]


class RnnParams(RnnRecipe):
    max_length: int = Field(default=64, ge=1)
    baseline: NaiveBayesParams = NaiveBayesParams()
    registration: RegistrationParams
    feedback: bool = True  # train on the feedback data too (labelled batches monitoring kept; training-only rows)


class InferenceModelParams(StrictModel):
    """Which registered model a batch-inference pipeline loads (``models:/<model_name>@<alias>``), and how it reads.

    ``chunk_size``: records read, checked, scored and written at a time (memory
    holds about one chunk, whatever the input's size); ``batch_size``: records
    per call of the model's ``predict`` within a chunk.
    """

    model_name: str = Field(min_length=1)
    alias: str = Field(default="champion", min_length=1)
    batch_size: int = Field(default=1024, ge=1)
    chunk_size: int = Field(default=4096, ge=1)


class InferenceTextParams(InferenceModelParams):
    """``inference_rnn``: also the text column of a table (CSV, TSV, JSON Lines, parquet) and the encoding of text files."""

    text_column: str = Field(default="sentence", min_length=1)
    encoding: str = "utf-8"

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r} (e.g. utf-8, latin-1, cp1252, utf-16)") from None
        return value


class InferenceParams(StrictModel):
    """``inference_cnn`` / ``inference_rnn``: which registered model each one loads, and how it reads its input."""

    cnn: InferenceModelParams
    rnn: InferenceTextParams


class MonitoringProfileParams(StrictModel):
    """The reference profile made at registration: ``records`` held-out test records (at most ``max_fraction`` of
    them, so that the rest stays free for checking monitoring itself), chosen stratified with ``seed``."""

    records: int = Field(default=5000, ge=50)
    max_fraction: float = Field(default=0.5, gt=0, le=1)
    seed: int = 0


class MonitoringPolicyParams(StrictModel):
    """How the checks of one batch become one decision (``dlflow.monitoring.checks``).

    ``min_batch_size``: smaller batches are not judged (the run says so);
    ``alpha``: the significance level of the whole batch, ``correction``: for the
    number of checks (``bonferroni``, ``holm`` or ``none``); ``alert_on``: the kinds
    of check that raise the alert (``input``, ``prediction``, ``feature``,
    ``quality``: live accuracy significantly below the champion's test accuracy,
    judged once ``min_labelled`` labels came back); ``permutations`` of the MMD test.
    """

    min_batch_size: int = Field(default=200, ge=2)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    correction: Literal["bonferroni", "holm", "none"] = "bonferroni"
    alert_on: list[Literal["input", "prediction", "feature", "quality"]] = Field(
        default_factory=lambda: ["input", "prediction", "feature", "quality"], min_length=1
    )
    permutations: int = Field(default=500, ge=19)
    min_labelled: int = Field(default=100, ge=1)


class MonitoringParams(StrictModel):
    """Monitoring of batch inference (``conf/base/parameters_monitoring.yml``): the profile each registered model
    carries, the policy, how much of a batch is kept to compare (``batch_sample``: a uniform sample, bounded memory),
    the long-lived history run's experiment, the exit
    status of a ``kedro run`` whose batch raised the alert (``alert_exit_code``; 0 to exit as usual), and the folder
    whose ``<family>`` subfolder the scheduled monitor scores (``inbox``, ``dlflow.monitoring.inbox``)."""

    enabled: bool = True
    profile: MonitoringProfileParams = MonitoringProfileParams()
    policy: MonitoringPolicyParams = MonitoringPolicyParams()
    batch_sample: int = Field(default=5000, ge=100)
    history_experiment: str = Field(default="dlflow/monitor", min_length=1)
    alert_exit_code: int = Field(default=3, ge=0, le=125)
    inbox: str = Field(default="data/10_inbox", min_length=1)  # the monitor DAG of a family scores <inbox>/<family>


class CacheParams(StrictModel):
    """Skipping unchanged nodes (``dlflow.caching.runner.SkipUnchangedRunner``)."""

    enabled: bool = True
    tags: list[str] = Field(default_factory=lambda: ["ingestion", "preprocessing", "embeddings"])  # nodes that may be skipped


# --------------------------------------------------------------------------- hyperparameter tuning


class SearchDimension(StrictModel):
    """One dimension of a search space: ``float`` (``log`` for a log scale), ``int`` or ``categorical``."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(default=None, gt=0)
    choices: list[Any] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _a_range_or_choices(self) -> SearchDimension:
        if self.type == "categorical":
            if self.choices is None or self.low is not None or self.high is not None:
                raise ValueError("a categorical dimension takes `choices` (and no low/high)")
            return self
        if self.low is None or self.high is None or self.choices is not None:
            raise ValueError(f"a {self.type} dimension takes `low` and `high` (and no choices)")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log scale needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("`step` and `log` do not go together")
        if self.type == "int" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ValueError(f"an int dimension needs whole numbers, got {self.low}..{self.high}")
        return self

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one this dimension can draw."""
        if self.type == "categorical":
            return value in (self.choices or [])
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.type == "int" and not float(value).is_integer():
            return False
        on_grid = self.step is None or math.isclose((value - self.low) / self.step, round((value - self.low) / self.step))
        return self.low <= value <= self.high and on_grid

    def values_to_check(self) -> list[Any]:
        """The values the family's own validation must accept: both ends of a range, or every choice."""
        if self.type == "categorical":
            return list(self.choices or [])
        cast = int if self.type == "int" else float
        return [cast(self.low), cast(self.high)]


class SamplerParams(StrictModel):
    type: Literal["tpe", "random"] = "tpe"
    seed: int | None = 42  # seeded by default: the same trials in the same order on one worker
    n_startup_trials: int = Field(default=10, ge=0)  # TPE: random trials before the model takes over


class PrunerParams(StrictModel):
    """``median``: stop a trial whose epoch metric is worse than the median of earlier trials at that epoch;
    ``hyperband``: Optuna's HyperbandPruner over epochs; ``none``: never prune."""

    type: Literal["median", "hyperband", "none"] = "median"
    n_startup_trials: int = Field(default=3, ge=0)  # median: trials that finish before any is pruned
    n_warmup_steps: int = Field(default=0, ge=0)  # median: epochs before a trial may be pruned
    min_resource: int = Field(default=1, ge=1)  # hyperband: epochs every trial gets
    reduction_factor: int = Field(default=3, ge=2)  # hyperband


class StudyParams(StrictModel):
    """One family's search: what to optimise, how long, how to sample and prune, and the space.

    ``space`` maps dotted names under the family's parameters (``training.lr``,
    ``model.hidden_size``) to dimensions; ``n_trials`` counts the study's finished
    trials over all workers, ``timeout_minutes`` is each worker's budget (no trial
    starts after it; at least one of them must be set).
    """

    study_name: str = Field(min_length=1)
    metric: Literal["val_accuracy", "val_loss"] = "val_accuracy"  # validation data only: the test set is touched once
    direction: Literal["maximize", "minimize"] = "maximize"
    n_trials: int | None = Field(default=None, ge=1)
    timeout_minutes: float | None = Field(default=None, gt=0)
    sampler: SamplerParams = SamplerParams()
    pruner: PrunerParams = PrunerParams()
    enqueue_defaults: bool = True  # the first trial: the family's configured values, the recipe to beat
    space: dict[str, SearchDimension] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _dotted_names(cls, data: Any) -> Any:
        """``space`` may nest (``training: {lr: {...}}``, what ``--params tuning.cnn.space.training.lr.low=...``
        gives) or use dotted keys (``training.lr: {...}``); both become dotted names."""
        if isinstance(data, dict) and isinstance(data.get("space"), dict):
            data = data | {"space": _flatten_space(data["space"])}
        return data

    @model_validator(mode="after")
    def _a_budget_and_a_sensible_direction(self) -> StudyParams:
        if self.n_trials is None and self.timeout_minutes is None:
            raise ValueError("set n_trials, timeout_minutes or both: the study needs a budget")
        expected = "minimize" if self.metric == "val_loss" else "maximize"
        if self.direction != expected:
            raise ValueError(f"{self.metric} is to {expected}, not to {self.direction}")
        return self


_DIMENSION_KEYS = set(SearchDimension.model_fields)


def _flatten_space(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and not (_DIMENSION_KEYS & set(value)):
            items = _flatten_space(value, f"{name}.").items()
        else:
            items = [(name, value)]
        for dotted, dimension in items:
            if dotted in flat:
                raise ValueError(f"space: {dotted} is given twice")
            flat[dotted] = dimension
    return flat


class TuningParams(StrictModel):
    """``conf/*/parameters_tuning.yml``: the studies of ``tune_cnn`` / ``tune_rnn`` and where they live.

    ``storage``: an Optuna RDB URL (``postgresql://...`` in team mode); null: the
    ``DLFLOW_TUNING_STORAGE`` environment variable, else an SQLite file beside the
    MLflow store. A worker whose heartbeat stops for ``grace_period_seconds``
    has its trial failed and retried up to ``max_retry`` times.
    """

    storage: str | None = None
    heartbeat_interval_seconds: int = Field(default=30, ge=1)
    grace_period_seconds: int | None = Field(default=None, ge=1)  # null: 2 x the heartbeat interval (Optuna's default)
    max_retry: int = Field(default=1, ge=0)
    wait_for_workers_minutes: float = Field(default=60, ge=0)  # tune_<family> waits this long for other workers' trials
    cnn: StudyParams | None = None
    rnn: StudyParams | None = None


#: Top-level parameters checked together (runtime parameters that the catalog reads as well).
PARAMETER_GROUPS: tuple[type[StrictModel], ...] = (LabelledTextParams, ImageSourceParams)

PARAMETER_MODELS: dict[str, type[StrictModel]] = {
    "cnn": CnnParams,
    "images": ImagesParams,
    "text": TextParams,
    "word2vec": Word2VecParams,
    "rnn": RnnParams,
    "inference": InferenceParams,
    "monitoring": MonitoringParams,
    "promotion": PromotionParams,
    "cache": CacheParams,
    "tuning": TuningParams,
}


def parse(name: str, params: dict[str, Any]) -> StrictModel:
    """Validate one pipeline's parameter block; raise ``ValueError`` naming each bad key."""
    model = PARAMETER_MODELS[name]
    try:
        return model.model_validate(params)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join([name, *map(str, item['loc'])])}: {item['msg']}" for item in error.errors())
        raise ValueError(f"Invalid parameters in conf/*/parameters_{name}.yml: {problems}") from None


def validate_parameters(params: dict[str, Any]) -> None:
    """Check every known parameter block present in ``params``, each by itself.

    A tuning search space against its family's parameters is checked by
    ``dlflow.tuning.checks.validate_search_spaces``.
    """
    for name in PARAMETER_MODELS:
        if name in params:
            parse(name, params[name])
    for group in PARAMETER_GROUPS:
        given = {key: params[key] for key in group.model_fields if key in params}
        try:
            group.model_validate(given)
        except ValidationError as error:
            problems = "; ".join(
                ".".join(map(str, item["loc"])) + ": " * bool(item["loc"]) + item["msg"].removeprefix("Value error, ")
                for item in error.errors()
            )
            raise ValueError(f"Invalid parameters: {problems}") from None
