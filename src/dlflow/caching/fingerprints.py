"""Fingerprints that decide whether a node's persisted outputs are still current.

A node's fingerprint covers everything its outputs depend on:

* the content of every input (file bytes for file-backed data sets, the value
  for ``params:`` inputs) and the data set's own settings (load/save args);
* the code it runs: the node function's source, the functions of its own
  module it calls and the module constants it reads, and the whole source of
  every other ``dlflow`` module it uses, followed transitively. Editing one
  node of a module does not rerun its neighbours; editing a module a node
  imports from does.

A ``CacheRecord`` stores a fingerprint with the digests of the outputs the node
wrote and the MLflow run that wrote them. It is written (atomically) only after
the node completed and its outputs were saved, so a record never vouches for a
half-written output.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import sys
import types
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from dlflow.files import atomic_write, json_digest

PROJECT_PACKAGE = "dlflow"
_CHUNK = 1 << 20


# --------------------------------------------------------------------------- data


def path_digest(path: Path) -> str:
    """sha256 of a file's bytes, or of a folder's relative paths and file bytes; ``absent`` if missing."""
    digest = hashlib.sha256()
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
    else:
        return "absent"
    for file in files:
        digest.update(str(file.relative_to(path) if file != path else file.name).encode())
        with open(file, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def value_digest(value: Any) -> str:
    """sha256 of a JSON-able value (parameters)."""
    return json_digest(value)


def dataset_path(dataset: Any) -> Path | None:
    """The local file or folder behind a data set, or None (in-memory, remote, unknown)."""
    if getattr(dataset, "_protocol", "file") not in ("file", None):
        return None
    location = getattr(dataset, "_filepath", None) or getattr(dataset, "_folder", None)
    return Path(str(location)) if location is not None else None


def dataset_digest(dataset: Any) -> str | None:
    """What a data set holds now, plus how it is read; None when it cannot be fingerprinted."""
    path = dataset_path(dataset)
    if path is None:
        return None
    settings = {key: value for key, value in dataset._describe().items() if key not in ("mirror", "filepath")}
    return value_digest({"type": type(dataset).__name__, "settings": settings, "content": path_digest(path)})


# --------------------------------------------------------------------------- code


def _unwrap(func: Any) -> Any:
    while isinstance(func, partial):
        func = func.func
    return inspect.unwrap(func)


def _is_project(name: object) -> bool:
    return isinstance(name, str) and (name == PROJECT_PACKAGE or name.startswith(PROJECT_PACKAGE + "."))


def _project_modules(module: types.ModuleType) -> list[types.ModuleType]:
    """``module`` and the project modules it uses, following module globals transitively."""
    seen: dict[str, types.ModuleType] = {}
    queue = [module]
    while queue:
        module = queue.pop()
        if module.__name__ in seen:
            continue
        seen[module.__name__] = module
        for value in vars(module).values():
            name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
            if _is_project(name) and name not in seen and name in sys.modules:
                queue.append(sys.modules[name])
    return [seen[name] for name in sorted(seen)]


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):  # nested functions, lambdas, comprehensions
            names |= _global_names(constant)
    return names


def _code_parts(func: Any) -> dict[str, bytes]:
    """Source a function's result depends on: its own source and that of the functions of its
    module it calls (transitively), the values of module constants it reads, and the whole
    source of every other project module it uses (transitively), including modules it
    imports inside its body (their dotted names appear among the code's names)."""
    parts: dict[str, bytes] = {}
    modules: set[str] = set()
    queue = [_unwrap(func)]
    while queue:
        function = queue.pop()
        key = f"{function.__module__}.{function.__qualname__}"
        if key in parts:
            continue
        parts[key] = inspect.getsource(function).encode()
        for name in sorted(_global_names(function.__code__)):
            if _is_project(name) and name not in function.__globals__ and _importable(name):
                modules.add(name)  # imported inside the function (``from dlflow.x import y``)
                continue
            value = function.__globals__.get(name)
            owner = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
            if inspect.isfunction(value) and owner == function.__module__:
                queue.append(value)
            elif _is_project(owner) and owner in sys.modules:
                modules.add(owner)
            elif name in function.__globals__ and not callable(value) and not isinstance(value, types.ModuleType):
                parts[f"{function.__module__}:{name}"] = repr(value).encode()
    for module in {m.__name__: m for name in modules for m in _project_modules(sys.modules[name])}.values():
        source = getattr(module, "__file__", None)
        parts[module.__name__] = Path(source).read_bytes() if source else b""
    return parts


def _importable(name: str) -> bool:
    """Import project module ``name`` (so that its source can be followed); False if it is no module."""
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def code_digest(func: Any) -> str:
    """sha256 over the code a node's function runs (see ``_code_parts``) and its bound arguments."""
    digest = hashlib.sha256()
    if isinstance(func, partial):
        digest.update(value_digest([func.args, func.keywords]).encode())
    for key, source in sorted(_code_parts(func).items()):
        digest.update(key.encode() + b"\0" + source + b"\0")
    return digest.hexdigest()


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class CacheRecord:
    """A completed node: its fingerprint, what it wrote, and which run wrote it."""

    node: str
    fingerprint: str
    outputs: dict[str, str]
    run_id: str | None
    completed_at: str

    @classmethod
    def read(cls, path: Path) -> CacheRecord | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None  # missing or unreadable: the node simply runs

    def write(self, path: Path) -> None:
        with atomic_write(path, "w") as stream:
            json.dump(asdict(self), stream, indent=2, sort_keys=True)
