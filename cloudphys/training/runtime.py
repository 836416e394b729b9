"""Where and how a loop runs: DDP, CPU threads, learning-rate schedule, progress.

* device and precision (``auto``) are chosen by :mod:`cloudphys.modeling.device`
  (:func:`resolve_device`, :func:`autocast`; shared with prediction, re-exported here);
* under ``torchrun`` (``WORLD_SIZE`` > 1) :func:`distributed` joins the process group (gloo on CPU,
  NCCL on CUDA) and leaves it afterwards;
* :func:`threads` sets torch's CPU threads inside a block and restores them (library code never
  changes global state for good).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator

import torch

from ..modeling.device import autocast, resolve_device

__all__ = [
    "autocast",
    "barrier",
    "dist_info",
    "distributed",
    "lr_factor",
    "progress_bar",
    "progress_enabled",
    "resolve_device",
    "seeded",
    "threads",
]


def dist_info() -> tuple[int, int]:
    """``(rank, world_size)`` from the ``torchrun`` environment (``(0, 1)`` outside it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return rank, world


@contextlib.contextmanager
def distributed(device: torch.device) -> Iterator[tuple[int, int]]:
    """Yield ``(rank, world)``; joins (and afterwards leaves) a process group when ``WORLD_SIZE`` > 1."""
    rank, world = dist_info()
    created = False
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
            created = True
        rank, world = dist.get_rank(), dist.get_world_size()
    try:
        yield rank, world
    finally:
        if created:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()


def barrier(world: int) -> None:
    """Wait for every rank (no-op for one process)."""
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """torch CPU threads = ``n`` inside the block (``None``: leave as is); restored afterwards."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """``torch.manual_seed(seed)`` inside :func:`torch.random.fork_rng` (the caller's RNG is restored)."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def lr_factor(step: int, total: int, warmup_frac: float) -> float:
    """Learning-rate multiplier at optimizer ``step`` of ``total``: linear warm-up, then cosine to 0."""
    warm = round(warmup_frac * total)
    if warm > 0 and step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def progress_enabled(setting: str, rank: int) -> bool:
    """Whether to draw a progress bar: ``true``/``false``, or ``auto`` (stderr is a terminal); rank 0 only."""
    s = str(setting).lower()
    if rank != 0 or s == "false":
        return False
    return s == "true" or sys.stderr.isatty()


def progress_bar(show: bool, total: int, desc: str):
    """A tqdm bar over ``total`` steps, or ``None`` when ``show`` is false."""
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)
