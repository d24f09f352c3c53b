"""The training recipe: ``TrainConfig`` is ``dlflow.config.TrainingParams``.

One pydantic model holds the recipe's fields, their defaults and their checks,
whether the recipe comes from ``conf/*/parameters_*.yml`` or is written in code::

    TrainConfig(epochs=5, batch_size=64, lr=1e-3)  # a bad value is a ValueError naming the field
    TrainConfig(**params.model_dump() | {"checkpoint_dir": folder})  # a checked copy with one change

The model is frozen; ``config.model_copy(update=...)`` makes an unchecked variant.
"""

from __future__ import annotations

from dlflow.config import TrainingParams

TrainConfig = TrainingParams

__all__ = ["TrainConfig"]
