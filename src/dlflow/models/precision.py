"""Where bfloat16 is worth it: the one place the models decide whether to compute in bf16.

On CPUs with AVX512-BF16 or AMX (and CUDA GPUs from Ampere on) bf16 matrix
products run natively and are faster than float32; elsewhere they are
emulated and slower. A model constructed with ``bf16=None`` therefore runs
under bf16 autocast exactly where it is native (``native_bf16``), and
``bf16=True`` / ``False`` force the choice.
"""

from __future__ import annotations

import functools
import os

import torch


@functools.cache
def native_bf16(device_type: str) -> bool:
    """Whether ``device_type`` (``"cpu"``, ``"cuda"``) computes bfloat16 natively, i.e. fast."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8  # Ampere+
    if device_type == "cpu":
        if not _onednn_isa_allows_bf16():
            return False
        cpu = torch.cpu
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(cpu, name, lambda: False)() for name in checks)
    return False


def _onednn_isa_allows_bf16() -> bool:
    """False when ``ONEDNN_MAX_CPU_ISA`` caps oneDNN below AVX512-BF16 (e.g. ``AVX2``).

    That variable is how a float32-only CPU is emulated on a bf16-capable one
    (the benchmarks' ``--emulate-avx2``): the kernels obey it, and so must the
    choice of precision.
    """
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    return not cap or cap in ("ALL", "DEFAULT") or "BF16" in cap or "AMX" in cap or "AVX10" in cap


def bf16_autocast(device_type: str, bf16: bool | None) -> torch.autocast:
    """bfloat16 autocast on ``device_type`` if ``bf16`` says so (``None``: where it is native)."""
    enabled = native_bf16(device_type) if bf16 is None else bf16
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=enabled)
