"""kedro-datasets file datasets that save atomically (``dlflow.files.atomic_path``): a temporary sibling, then a rename.

A crash (or ``kill -9``) in the middle of a save leaves the previous file, or no
file, never a truncated one that a later run would load or that the node cache
(``dlflow.caching.runner``) would vouch for; a reader running at the same time sees the
old file or the new one. Use them in the catalog like the originals:
``type: dlflow.io.atomic.ParquetDataset``.

``MatplotlibDataset`` is made on first use: importing kedro-datasets' matplotlib dataset imports
``matplotlib.pyplot`` (about 0.4 s), which a run that loads this module for its parquet or JSON
entries, batch inference for one, does not need.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import get_filepath_str
from kedro_datasets.json import JSONDataset as _JSONDataset
from kedro_datasets.pandas import ParquetDataset as _ParquetDataset
from kedro_datasets.pickle import PickleDataset as _PickleDataset
from kedro_datasets.text import TextDataset as _TextDataset

from dlflow.files import atomic_path


class AtomicSave:
    """Mixin for a kedro-datasets file dataset: ``save`` writes to a hidden sibling, then renames it."""

    _staging: PurePosixPath | None = None

    def _get_save_path(self) -> PurePosixPath:
        return self._staging if self._staging is not None else super()._get_save_path()

    def save(self, data: Any) -> None:
        if getattr(self, "_protocol", "file") != "file":  # object stores write whole objects anyway
            return super().save(data)
        target = Path(get_filepath_str(super()._get_save_path(), self._protocol))
        with atomic_path(target) as staging:  # a folder of plots is replaced as a whole
            self._staging = PurePosixPath(staging.as_posix())
            try:
                super().save(data)
            finally:
                self._staging = None


class ParquetDataset(AtomicSave, _ParquetDataset):
    """``pandas.ParquetDataset``, saved atomically."""


class JSONDataset(AtomicSave, _JSONDataset):
    """``json.JSONDataset``, saved atomically."""


class PickleDataset(AtomicSave, _PickleDataset):
    """``pickle.PickleDataset``, saved atomically."""


class TextDataset(AtomicSave, _TextDataset):
    """``text.TextDataset``, saved atomically."""


def __getattr__(name: str) -> Any:
    """``MatplotlibDataset`` (``matplotlib.MatplotlibDataset``, saved atomically), made on first use."""
    if name != "MatplotlibDataset":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from kedro_datasets.matplotlib import MatplotlibDataset as _MatplotlibDataset

    cls = type("MatplotlibDataset", (AtomicSave, _MatplotlibDataset),
               {"__doc__": "``matplotlib.MatplotlibDataset``, saved atomically.", "__module__": __name__})  # fmt: skip
    globals()[name] = cls
    return cls
