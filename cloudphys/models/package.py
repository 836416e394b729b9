"""Turn a trained run into a shippable model folder (what ``cloudphys models package`` does).

The folder holds only what prediction needs: each member's model directory (``config.json``,
``model.safetensors``, tokenizer files, ``head.json``, ``cloudphys.json``; no optimizer state, no
metrics), ``ensemble.json`` for an ensemble, the calibration (``uncertainty.json``) if given,
CLOUD's generator table for a cloud-dialect model (``generator.json``, so structures convert offline),
``model.json``, ``model_card.md`` and ``SHA256SUMS``. Encoder weights may be stored in float16 to
halve the size; :func:`cloudphys.models.load_model` loads them as float32.

The folder is built beside ``out`` and swapped in at the end (:func:`cloudphys.outputs.replace_folder`):
a failed build leaves an existing package intact. Nothing that cloudphys did not create is ever
deleted: ``out`` may not be the run, hold it or lie inside it, and ``overwrite`` replaces only an
empty folder or a package that holds nothing but what ``SHA256SUMS`` lists.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

from ..errors import CheckpointError
from .registry import CARD_FILE, CHECKSUM_FILE, MODEL_JSON, write_checksums

__all__ = ["package_model", "WEIGHT_DTYPES", "GENERATOR_FILE"]

WEIGHT_DTYPES = ("float32", "float16", "bfloat16")


def _cast_safetensors(src: Path, dst: Path, dtype: str) -> None:
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    target = getattr(torch, dtype)
    tensors, meta = {}, None
    with safe_open(str(src), framework="pt") as fh:
        meta = fh.metadata()
        for k in fh.keys():
            t = fh.get_tensor(k)
            tensors[k] = t.to(target).contiguous() if t.is_floating_point() else t.contiguous()
    save_file(tensors, str(dst), metadata=meta or {"format": "pt"})


def _save_member(model: Any, dst: Path, dtype: str) -> None:
    """Save one model directory in the current format (``save_pretrained``), weights cast to ``dtype``."""
    model.save_pretrained(dst)
    for junk in ("training_args.bin", "generation_config.json"):
        (dst / junk).unlink(missing_ok=True)
    if dtype != "float32":
        f = dst / "model.safetensors"
        _cast_safetensors(f, f.with_suffix(".tmp"), dtype)
        f.with_suffix(".tmp").replace(f)


#: CLOUD's generator table, shipped with every cloud-dialect model so that structures convert offline.
GENERATOR_FILE = "generator.json"
GENERATOR_LICENCE = "generator.LICENSE"


def _include_generator_table(out: Path) -> None:
    """Copy CLOUD's generator table (MIT, with its licence) into a cloud-dialect model's folder."""
    from ..data.cloud import CLOUD_FILES
    from ..data.download import fetch

    src = Path(fetch(CLOUD_FILES["cloud/generator.json"], dataset="cloud"))
    shutil.copy2(src, out / GENERATOR_FILE)
    licence = src.parent / "LICENSE"
    text = licence.read_text(encoding="utf-8") if licence.is_file() else "MIT License, Copyright (c) 2025 Changwen Xu\n"
    (out / GENERATOR_LICENCE).write_text(
        "generator.json is CLOUD's space-group generator table (github.com/ChangwenXu98/CLOUD, data/generator.json),\n"
        "shipped so that structures convert to the cloud SCOPE dialect offline. Its licence:\n\n" + text,
        encoding="utf-8")


def _check_target(run: Path, out: Path, overwrite: bool) -> None:
    """Refuse, before anything is loaded or written, an ``out`` that would destroy something."""
    from ..outputs import model_folder_of, same_path

    r, o = Path(os.path.realpath(run)), Path(os.path.realpath(out))
    if same_path(r, o) or r in o.parents or o in r.parents:
        rel = "is the run" if same_path(r, o) else "lies inside the run" if r in o.parents else "holds the run"
        raise CheckpointError(f"--out {out}: {rel} {run}; packaging writes a new folder and would destroy it; "
                              "choose a folder outside the run")
    holder = model_folder_of(o.parent)
    if holder is not None:
        raise CheckpointError(f"--out {out}: lies inside the model or run folder {holder}; choose a folder outside it")
    if not (o.exists() or o.is_symlink()):
        return
    if not o.is_dir():
        raise CheckpointError(f"--out {out}: is a file, not a folder; choose another name")
    if not overwrite:
        raise CheckpointError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    present = sorted(p.relative_to(o).as_posix() for p in o.rglob("*") if not p.is_dir())
    if not present:
        return
    sums = o / CHECKSUM_FILE
    if not ((o / MODEL_JSON).is_file() and sums.is_file()):
        raise CheckpointError(f"--out {out}: is not a cloudphys model package (no {MODEL_JSON} and {CHECKSUM_FILE}); "
                              "--overwrite only replaces a package it made; choose another folder or empty it yourself")
    listed = {line.split("  ", 1)[1].strip() for line in sums.read_text(encoding="utf-8", errors="replace").splitlines()
              if "  " in line}
    foreign = [p for p in present if p not in listed and p != CHECKSUM_FILE
               and not any(part.startswith(".") or part == "__pycache__" for part in p.split("/"))]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise CheckpointError(f"--out {out}: holds files that are not part of the package ({shown}); cloudphys never "
                              "deletes what it did not create; move them or choose another folder")


def package_model(
    run: str | Path,
    out: str | Path,
    *,
    name: str,
    card: str,
    meta: Mapping[str, Any] | None = None,
    calibration: Mapping[str, Any] | None = None,
    dtype: str = "float16",
    overwrite: bool = False,
) -> Path:
    """Write the shippable folder ``out`` for the trained ``run`` (a run, model or ensemble directory).

    :param name: the name it registers under.
    :param card: the model card (Markdown).
    :param meta: extra fields of ``model.json`` (summary, head, licence, data, requires ...).
    :param calibration: the ensemble's calibration (see :func:`cloudphys.inference.uncertainty.calibrate`).
    :param dtype: storage dtype of the encoder weights (``float16`` halves the size).
    """
    from ..inference.uncertainty import member_models, write_calibration
    from ..modeling.core import load_core
    from ..modeling.format import write_manifest
    from ..modeling.model import model_dialect
    from ..outputs import replace_folder, write_text

    if dtype not in WEIGHT_DTYPES:
        raise CheckpointError(f"dtype must be one of {WEIGHT_DTYPES}, got {dtype!r}")
    run, target = Path(run), Path(out)
    _check_target(run, target, overwrite)
    core = load_core(run).float()  # refuses corrupt or foreign runs before anything is written
    with replace_folder(target) as out:  # built beside, swapped in at the end; removed on failure
        members = member_models(core)
        if members:
            names = [f"member-{k}" for k in range(len(members))]
            seeds = list((core.meta.get("ensemble") or {}).get("seeds", range(len(members))))
            core_meta = {k: v for k, v in core.meta.items() if k != "ensemble"}
            for name_k, m in zip(names, members):
                m.meta = dict(core_meta)
                _save_member(m, out / name_k, dtype)
            write_manifest(out, names, seeds, names)
        else:
            names = ["."]
            _save_member(core, out, dtype)
        if model_dialect(core) == "cloud":
            _include_generator_table(out)
        if calibration is not None:
            write_calibration(out, calibration)
        info = {"name": name, "members": len(names), "head": core.head.name, "weights_dtype": dtype, **dict(meta or {})}
        write_text(out / MODEL_JSON, json.dumps(info, indent=2) + "\n")
        write_text(out / CARD_FILE, card)
        write_checksums(out)
    return target
