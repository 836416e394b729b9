"""Seed ensembles: K models trained by :func:`~cloudphys.training.loop.fit` with seeds ``seed, seed+1, ...``.

This layer sits above ``fit`` (it calls ``fit`` once per member; ``fit`` never imports it).
:func:`train` is what ``cloudphys train`` runs: ``fit`` for one model, :func:`fit_ensemble` for
``train.ensemble`` > 1. An ensemble run directory holds ``ensemble.json`` and one ordinary run
directory per member (``member-0/``, ...; each with its own checkpoints, metrics and ``--resume``);
:func:`cloudphys.load_model` loads it as one model (:mod:`cloudphys.inference.ensemble`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import Config, load_config
from ..errors import CheckpointError, ConfigError, WorkerError
from ..modeling.core import predict_encoded
from ..modeling.encoding import encode, load_split
from ..modeling.ensemble import ensemble_model
from ..modeling.model import ScopePhysicsModel
from . import checkpoint as ckpt
from . import runtime
from .loop import FitResult, fit
from .losses import effective_weights, loss_value
from .resume import check_resume_config, prepare_run_dir
from .transfer import member_source

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginRegistry

__all__ = ["fit_ensemble", "train"]


def _member_names(config: Config) -> tuple[list[str], list[int]]:
    tc = config.train
    return [f"member-{i}" for i in range(tc.ensemble)], [int(tc.seed) + i for i in range(tc.ensemble)]


def _completed(out: Path, names: list[str], seeds: list[int]) -> list[str]:
    """Members of the ensemble run in ``out`` already trained (its manifest must match the config)."""
    manifest = ckpt.read_manifest(out)
    if manifest["members"] != names or list(manifest["seeds"]) != seeds:
        raise CheckpointError(
            f"{out / ckpt.ENSEMBLE_FILE} lists members {manifest['members']} with seeds {manifest['seeds']}, "
            f"but the config asks for {names} with seeds {seeds}"
        )
    return [m for m in names if m in manifest["complete"]]


def _finished_member(mdir: Path, registry: PluginRegistry) -> FitResult:
    """The result of a member trained before (``resume``), from its files."""
    state, _ = ckpt.load_training_state(mdir / "last")
    model = ScopePhysicsModel.from_pretrained(mdir, registry=registry)
    return FitResult(model=model, out_dir=mdir, best_epoch=int(state["best_epoch"]),
                     best_val_loss=float(state["best_val_loss"]), epochs_run=int(state["epoch"]),
                     history=ckpt.read_metrics(mdir))


def _ensemble_val_loss(model: ScopePhysicsModel, val_ex: Any, config: Config, device: Any) -> float | None:
    """The ensemble's own validation loss (the members' averaged latents through the head)."""
    if val_ex is None or not len(val_ex):
        return None
    tc = config.train
    observables = [o for o in model.head.selected if o in val_ex.targets]
    val = encode(val_ex, model, observables)
    model.to(device)
    vpred, _ = predict_encoded(model, val, batch_size=tc.eval_batch_size, device=device, precision=tc.precision,
                               observables=observables)
    # the members' target statistics (same training split)
    return loss_value(vpred, val, model.meta["target_stats"], tc.loss, effective_weights(model.head, tc.loss_weights))


def _member_config(config: Config, i: int, seed: int, registry: PluginRegistry) -> Config:
    member = config.to_dict()
    member["train"].update(seed=seed, ensemble=1, parallel_members=1)
    if config.train.init_from is not None:  # member k starts from member k of an ensemble source
        member["train"]["init_from"] = str(member_source(config.train.init_from, i))
    return load_config(member, registry=registry)


def _fit_members(config: Config, out: Path | None, names: list[str], seeds: list[int], complete: list[str],
                 data: Mapping[str, Any], *, resume: bool, rank0: bool, accept_config_changes: bool,
                 registry: PluginRegistry,
                 tokenizer: Any, callbacks: Sequence[Callable[[dict[str, Any]], None]]) -> list[FitResult]:
    """Train (or, when resuming, take) each member in turn; the manifest records each one finished."""
    if config.train.parallel_members > 1 and len(names) - len(complete) > 1:
        return _fit_members_parallel(config, out, names, seeds, complete, data, resume=resume,
                                     accept_config_changes=accept_config_changes, registry=registry,
                                     tokenizer=tokenizer, callbacks=callbacks)
    results = []
    for i, (name, seed) in enumerate(zip(names, seeds)):
        mdir = out / name if out is not None else None
        if mdir is not None and name in complete:
            results.append(_finished_member(mdir, registry))
            continue
        member_cfg = _member_config(config, i, seed, registry)
        again = resume and mdir is not None and (mdir / "last").exists()
        member_callbacks = [lambda row, _cb=cb, _i=i: _cb({**row, "member": _i}) for cb in callbacks]
        results.append(fit(member_cfg, mdir, resume=again, overwrite=not again,
                           accept_config_changes=accept_config_changes, registry=registry,
                           tokenizer=tokenizer, examples=data, callbacks=member_callbacks))
        complete.append(name)
        if out is not None and rank0:
            ckpt.write_manifest(out, names, seeds, complete)
    return results


def _die_with_parent(parent: int) -> None:
    """Initializer of the member workers: the worker ends when process ``parent`` does.

    A worker outliving a killed ``cloudphys train`` would go on writing its member directory
    outside the run lock (which died with the parent). On Linux the kernel sends SIGKILL at the
    parent's death (``prctl(PR_SET_PDEATHSIG)``); everywhere a daemon thread checks every 0.5 s that
    the parent is still the parent (a dead parent's children are re-parented) and exits otherwise.
    """
    import os
    import signal
    import sys
    import threading
    import time

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):  # no libc prctl: the watchdog below still runs
            pass
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(70)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(70)

    threading.Thread(target=watch, name="cloudphys-parent-watchdog", daemon=True).start()


def _lock_pid(mdir: Path) -> int | None:
    """The pid recorded in a run directory's lock file (who trained it last), or ``None``."""
    try:
        return int((mdir / ckpt.LOCK_FILE).read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _dead_worker_error(out: Path, todo: Sequence[tuple[int, str, int]], complete: Sequence[str],
                       procs: Mapping[int, Any]) -> WorkerError:
    """The :class:`WorkerError` naming the member(s) whose worker died (from the pids in their locks)."""
    import signal

    for proc in procs.values():
        proc.join(timeout=5)
    dead = {pid: proc.exitcode for pid, proc in procs.items() if proc.exitcode not in (None, 0)}
    # the pool ends the other workers with SIGTERM once one died: name the one(s) that died first
    first = {pid: code for pid, code in dead.items() if code != -int(signal.SIGTERM)}
    dead = first or dead
    named = []
    for _, name, seed in todo:
        pid = _lock_pid(out / name) if name not in complete else None
        if pid in dead:
            code = dead[pid]
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
            named.append(f"member {name} (seed {seed}; worker pid {pid}, {how})")
    what = ", ".join(named) if named else "a member worker (" + ", ".join(
        f"pid {pid}: exit {code}" for pid, code in dead.items()) + ")"
    return WorkerError(f"ensemble training in {out}: the worker process of {what} died before finishing; the other "
                       "members were stopped, the finished ones are kept, and `cloudphys train CONFIG --out RUN "
                       "--resume` continues from the last checkpoints")


def _member_process(member: dict[str, Any], mdir: str, again: bool, accept: bool, tokenizer: Any,
                    data: Mapping[str, Any]) -> str:
    """One member in a worker process of :func:`_fit_members_parallel` (the installed plugins)."""
    fit(load_config(member), Path(mdir), resume=again, overwrite=not again, accept_config_changes=accept,
        tokenizer=tokenizer, examples=data)
    return mdir


def _fit_members_parallel(config: Config, out: Path | None, names: list[str], seeds: list[int], complete: list[str],
                          data: Mapping[str, Any], *, resume: bool, accept_config_changes: bool,
                          registry: PluginRegistry,
                          tokenizer: Any, callbacks: Sequence[Callable[[dict[str, Any]], None]]) -> list[FitResult]:
    """``train.parallel_members`` worker processes (spawned; each runs :func:`fit` for one member into
    its directory, seeded as in the sequential loop, so the members are the same). The manifest
    records each member as it finishes; ``callbacks`` get a finished member's rows then. A member
    that fails stops the others and is raised, naming it; the finished ones stay for ``--resume``."""
    import multiprocessing
    import os
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    tc = config.train
    if out is None:
        raise ConfigError(f"train.parallel_members={tc.parallel_members} needs a run directory (the workers "
                          "write the members there); give one or set train.parallel_members=1")
    if runtime.dist_info()[1] > 1:
        raise ConfigError(f"train.parallel_members={tc.parallel_members} cannot run under torchrun (one process "
                          "group trains the members one after the other); set train.parallel_members=1")
    todo = [(i, name, seed) for i, (name, seed) in enumerate(zip(names, seeds)) if name not in complete]
    workers = min(tc.parallel_members, len(todo))
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools or locks
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_die_with_parent,
                               initargs=(os.getpid(),))
    try:
        futures = {}
        for i, name, seed in todo:
            member = _member_config(config, i, seed, registry).to_dict()
            again = resume and (out / name / "last").exists()
            futures[pool.submit(_member_process, member, str(out / name), again, accept_config_changes,
                                tokenizer, dict(data))] = (i, name)
        workers_at_start = dict(getattr(pool, "_processes", None) or {})  # pid -> process, before any dies
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for fut in sorted(done, key=lambda f: futures[f][0]):
                i, name = futures[fut]
                exc = fut.exception()
                if isinstance(exc, BrokenProcessPool):  # a worker was killed: name its member, no traceback
                    procs = {**workers_at_start, **dict(getattr(pool, "_processes", None) or {})}
                    raise _dead_worker_error(out, todo, complete, procs) from exc
                if exc is not None:
                    if hasattr(exc, "add_note"):  # Python >= 3.11
                        exc.add_note(f"in ensemble member {name} (seed {seeds[i]}), trained in a worker process; "
                                     "the finished members are kept and --resume trains the rest")
                    raise exc
                complete.append(name)
                ckpt.write_manifest(out, names, seeds, [n for n in names if n in complete])
                for cb in callbacks:
                    for row in ckpt.read_metrics(out / name):
                        cb({**row, "member": i})
    except BaseException:
        # stop the other members now (their last epoch checkpoints stay for --resume) instead of
        # waiting for them; the executor has no public way to end running workers
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            proc.terminate()
        raise
    pool.shutdown(wait=True)
    return [_finished_member(out / name, registry) for name in names]


def fit_ensemble(
    config: Config,
    out: Path | None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    accept_config_changes: bool = False,
    registry: PluginRegistry | None = None,
    tokenizer: Any = None,
    examples: Mapping[str, Any] | None = None,
    callbacks: Sequence[Callable[[dict[str, Any]], None]] = (),
) -> FitResult:
    """Train ``config.train.ensemble`` members one after the other (each by :func:`fit`).

    Member ``k`` is the config with ``train.seed = seed + k``; its run directory is
    ``out/member-k``. ``ensemble.json`` records which members are complete, so ``resume`` skips
    those, resumes the interrupted one from its last checkpoint and trains the rest. The data are
    loaded once. Returns a :class:`FitResult` whose model averages the members' latents; its
    ``best_val_loss`` is the ensemble's validation loss, ``members`` the members' results.
    """
    names, seeds = _member_names(config)
    rank0 = runtime.dist_info()[0] == 0
    lock = ckpt.run_lock(out) if out is not None and rank0 else contextlib.nullcontext()
    with lock:
        complete: list[str] = []
        if out is not None:
            prepare_run_dir(out, ensemble=True, resume=resume, overwrite=overwrite, rank0=rank0)
            if resume:
                complete = _completed(out, names, seeds)
                check_resume_config(out, config, accept=accept_config_changes, registry=registry)
        elif resume:
            raise CheckpointError("resume needs a run directory")
        data = dict(examples) if examples is not None else {
            s: load_split(config, s, registry) for s in ("train", "val")
        }
        device = runtime.resolve_device(config.train.device)
        if out is not None and rank0:
            config.dump(out / "config.yaml")
            ckpt.write_manifest(out, names, seeds, complete)
        with runtime.distributed(device):  # one process group for all members (under torchrun)
            results = _fit_members(config, out, names, seeds, complete, data, resume=resume, rank0=rank0,
                                   accept_config_changes=accept_config_changes, registry=registry,
                                   tokenizer=tokenizer, callbacks=callbacks)

    model = ensemble_model([r.model for r in results], names, seeds).eval()
    val_loss = _ensemble_val_loss(model, data.get("val"), config, device)
    if val_loss is None:
        val_loss = float(np.mean([r.best_val_loss for r in results]))
    history = [{**row, "member": i} for i, r in enumerate(results) for row in r.history]
    return FitResult(model=model, out_dir=out, best_epoch=max(r.best_epoch for r in results), best_val_loss=val_loss,
                     epochs_run=max(r.epochs_run for r in results), history=history, members=results)


def train(
    config: Config | Mapping[str, Any] | str | Path,
    out_dir: str | Path | None = None,
    *,
    overrides: Iterable[str] = (),
    registry: PluginRegistry | None = None,
    **kwargs: Any,
) -> FitResult:
    """Train what ``config`` asks for: one model (:func:`fit`) or an ensemble (:func:`fit_ensemble`).

    Keyword arguments are those of :func:`fit` (``resume``, ``overwrite``, ``accept_config_changes``,
    ``tokenizer``, ``examples``, ``callbacks``).
    """
    if registry is None:
        from ..plugins import get_registry

        registry = get_registry()
    if not isinstance(config, Config):
        config = load_config(config, overrides=overrides, registry=registry)
    out = Path(out_dir) if out_dir is not None else None
    if config.train.ensemble > 1:
        return fit_ensemble(config, out, registry=registry, **kwargs)
    return fit(config, out, registry=registry, **kwargs)
