"""An exponential moving average of a model's weights (``train.ema``), kept beside the trained ones.

After every optimizer step the average ``a`` of each floating-point parameter and buffer ``w``
moves towards it, ``a ← a + (1 − d)(w − a)``, with the decay ``d = min(ema, (1 + n)/(10 + n))``
after ``n`` updates (the usual warm-up, so that the first steps' weights — the initialisation —
do not linger in the average). The optimizer keeps stepping the trained weights; validation, the
best checkpoint ``model/`` and the model a run returns use the average (Polyak–Ruppert averaging;
PyTorch's ``torch.optim.swa_utils`` offers the same average as a wrapped copy of the module; here it
is a list of tensors beside the module, so checkpoints and DDP see the plain model). ``last/`` holds
the trained weights and the average (``ema.safetensors``), so a resumed run continues both.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from ..errors import CheckpointError

__all__ = ["EMA_FILE", "WeightAverage", "averaged"]

#: The average's file in a ``last/`` checkpoint.
EMA_FILE = "ema.safetensors"


class WeightAverage:
    """The moving average of ``model``'s floating-point state (parameters and persistent buffers).

    :param model: the module being trained; its tensors are read in place (keep the same module).
    :param decay: the largest decay ``d`` in (0, 1), e.g. 0.999 (an average over ~1/(1 − d) steps).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < float(decay) < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay!r}")
        self.decay = float(decay)
        self.updates = 0
        state = model.state_dict()
        self.names = [k for k, v in state.items() if v.is_floating_point()]
        self._live = [state[k] for k in self.names]  # share storage with the module's tensors
        self.average = [t.detach().clone() for t in self._live]

    def current_decay(self) -> float:
        """The decay the next :meth:`update` uses."""
        n = self.updates + 1
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the module's current weights (call after each optimizer step)."""
        weight = 1.0 - self.current_decay()
        self.updates += 1
        torch._foreach_lerp_(self.average, self._live, weight)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Inside the block the module holds the average; the trained weights come back after it."""
        with torch.no_grad():
            saved = [t.clone() for t in self._live]
            torch._foreach_copy_(self._live, self.average)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self._live, saved)

    def to_files(self, path: Path) -> None:
        """Write the average and its update count to ``path / EMA_FILE``."""
        from safetensors.torch import save_file

        tensors = {k: t.detach().cpu().contiguous() for k, t in zip(self.names, self.average)}
        save_file(tensors, str(path / EMA_FILE), metadata={"updates": str(self.updates), "decay": repr(self.decay)})

    def from_files(self, path: Path) -> bool:
        """Restore an average written by :meth:`to_files`; ``False`` if ``path`` has none (the
        average then starts again from the module's current weights)."""
        from safetensors import safe_open

        file = path / EMA_FILE
        if not file.is_file():
            with torch.no_grad():
                torch._foreach_copy_(self.average, self._live)
            self.updates = 0
            return False
        try:
            with safe_open(str(file), framework="pt") as fh:
                meta = fh.metadata() or {}
                found = set(fh.keys())
                if found != set(self.names):
                    raise KeyError(f"tensors {sorted(found ^ set(self.names))[:5]} differ from the model's")
                with torch.no_grad():
                    for k, t in zip(self.names, self.average):
                        t.copy_(fh.get_tensor(k))
                self.updates = int(meta.get("updates", "0"))
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"weight average {file} does not fit this model: {type(exc).__name__}: {exc}"
            ) from exc
        return True


def averaged(ema: WeightAverage | None) -> contextlib.AbstractContextManager[None]:
    """``ema.applied()``, or a block that changes nothing without an average."""
    return ema.applied() if ema is not None else contextlib.nullcontext()
