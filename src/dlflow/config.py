"""Typed parameters: every pipeline's parameters are checked here before any work starts.

Unknown keys and bad values are errors that name the offending key, e.g.
``cnn.training.lr: Input should be greater than 0``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainingParams(StrictModel):
    """Arguments of the shared training loop (``dlflow.training.TrainConfig``)."""

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
    seed: int = 42
    deterministic: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int | None = Field(default=None, ge=1)
    channels_last: bool = False
    checkpoint_dir: str | None = None
    resume: bool = True
    progress: bool = True


class ImageDataParams(StrictModel):
    validation_fraction: float = Field(gt=0, lt=1)
    split_seed: int = 42
    max_train_samples: int | None = Field(default=None, ge=10)
    max_test_samples: int | None = Field(default=None, ge=10)


class CnnModelParams(StrictModel):
    architecture: str
    options: dict[str, Any] = Field(default_factory=dict)


class AugmentationParams(StrictModel):
    horizontal_flip: bool = False
    flip_test_time: bool = False


class RegistrationParams(StrictModel):
    model_name: str = Field(min_length=1)
    metric: str = "test_accuracy"
    greater_is_better: bool = True
    min_improvement: float = Field(default=0.0, ge=0)
    enabled: bool = True  # false: log the model to the run without registering it


class CnnParams(StrictModel):
    data: ImageDataParams
    model: CnnModelParams
    training: TrainingParams
    augmentation: AugmentationParams = AugmentationParams()
    registration: RegistrationParams
    misclassified_examples: int = Field(default=25, ge=0, le=100)


PARAMETER_MODELS: dict[str, type[StrictModel]] = {"cnn": CnnParams}


def parse(name: str, params: dict[str, Any]) -> StrictModel:
    """Validate one pipeline's parameter block; raise ``ValueError`` naming each bad key."""
    model = PARAMETER_MODELS[name]
    try:
        return model.model_validate(params)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join([name, *map(str, item['loc'])])}: {item['msg']}"
            for item in error.errors()
        )
        raise ValueError(
            f"Invalid parameters in conf/*/parameters_{name}.yml: {problems}"
        ) from None


def validate_parameters(params: dict[str, Any]) -> None:
    """Check every known parameter block present in ``params``."""
    for name in PARAMETER_MODELS:
        if name in params:
            parse(name, params[name])
