"""Where and how training runs: device, CPU threads, seeds and RNG state."""

from __future__ import annotations

import os
import random
import sys
from typing import Any

import numpy as np
import torch

_interop_threads_set = False


def select_device(preference: str | torch.device = "auto") -> torch.device:
    """The one place that picks a device: ``"auto"``: CUDA when available, else CPU; else the device named.

    ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a ``torch.device``; asking for CUDA
    where there is none is a ``RuntimeError``, an unknown name a ``ValueError``.
    """
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(preference)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or a torch device, got {preference!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={str(preference)!r} was requested but CUDA is not available (use device='auto' or device='cpu')"
        )
    return device


def usable_cores() -> int:
    """CPU cores this process may run on (respects taskset/cgroup affinity where the OS tells)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def configure_threads(num_threads: int | None = None) -> int:
    """Set torch's intra-op threads (``None``: all usable cores); return the number set.

    The inter-op pool is set to one thread, once per process: eager training
    never runs independent ops in parallel, and torch refuses to change the
    pool after it has started.
    """
    global _interop_threads_set
    threads = num_threads or usable_cores()
    torch.set_num_threads(threads)
    if not _interop_threads_set:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # the pool already started (e.g. set elsewhere): leave it
            pass
        _interop_threads_set = True
    return threads


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA); optionally ask for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        # cuBLAS needs this before its first call to be deterministic on CUDA >= 10.2.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    _use_deterministic_algorithms(deterministic)
    # Deterministic mode also fills every new uninitialised tensor with NaN, to expose kernels that
    # read memory they never wrote; ours do not, and the fills cost 7 % of a CPU training step.
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def _use_deterministic_algorithms(enabled: bool) -> None:
    """``torch.use_deterministic_algorithms(enabled, warn_only=True)``, without its import of
    ``torch._inductor.config`` (1.1 s on 2 cores) when inductor is not loaded.

    The public function also sets inductor's own ``deterministic`` flag, which only
    ``torch.compile`` reads; dlflow does not compile, so unless something in this process
    already loaded inductor, the flag is set on torch's C core alone.
    """
    if "torch._inductor.config" in sys.modules or not hasattr(torch._C, "_set_deterministic_algorithms"):
        torch.use_deterministic_algorithms(enabled, warn_only=True)
    else:
        torch._C._set_deterministic_algorithms(enabled, warn_only=True)


def rng_state() -> dict[str, Any]:
    """The global RNG states, as plain values and tensors (loadable with ``weights_only=True``)."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (name, keys.tolist(), position, has_gauss, cached_gaussian),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the global RNG states captured by ``rng_state``."""
    random.setstate(state["python"])
    name, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
