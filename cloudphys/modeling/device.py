"""Device and precision choice, shared by training and prediction.

* device ``auto`` → ``cuda:LOCAL_RANK`` if CUDA is available, else CPU;
* precision ``auto`` → bf16 autocast on CUDA, fp32 on the CPU (the physics head always runs in
  float32, see :class:`~cloudphys.modeling.model.ScopePhysicsModel`).
"""

from __future__ import annotations

import contextlib
import os

import torch

from ..errors import ConfigError

__all__ = ["autocast", "resolve_device"]


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → ``cuda:LOCAL_RANK`` if CUDA is available, else ``cpu``; a named CUDA device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(
            f"device {name!r} is not a device torch knows ({exc}); use 'auto', 'cpu' or 'cuda[:N]'"
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name!r} but CUDA is not available; use 'auto' or 'cpu'")
    return dev


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for ``precision`` ``bf16`` (or ``auto`` on CUDA), else a no-op context."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
