"""Loading an MLM-pretrained BERT trunk (what ``cloudphys pretrain`` writes) into an encoder.

``cloudphys pretrain --out DIR`` writes a run directory whose ``DIR/model/`` holds the pretrained
``BertForMaskedLM`` (``config.json`` + ``model.safetensors``) and its tokenizer; cloudphys 0.1 wrote
those files into ``DIR`` itself. :func:`load_pretrained_bert` takes either layout, refuses pickles,
a foreign vocabulary and weights that do not cover the architecture.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import CheckpointError

__all__ = [
    "PICKLE_SUFFIXES",
    "load_masked_lm",
    "load_pretrained_bert",
    "pretrained_dir",
    "quiet_transformers",
    "refuse_pickles",
]

#: Suffixes of pickle-based files (torch.save, joblib, pickle): never loaded, a directory holding one is refused.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")


def refuse_pickles(path: str | Path) -> None:
    """Raise :class:`CheckpointError` if directory ``path`` holds a pickle-based file.

    cloudphys writes only safetensors and JSON; a pickle in a checkpoint was put there by someone
    else, and unpickling runs arbitrary code, so the whole directory is refused.
    """
    path = Path(path)
    if not path.is_dir():
        return
    found = sorted(p.name for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if found:
        raise CheckpointError(
            f"{path} contains pickle-based file(s) {', '.join(found)}; cloudphys never unpickles (unpickling can "
            "run arbitrary code) and refuses the directory -- weights must be safetensors"
        )


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars (shard writing/loading) inside the block, then restore."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def pretrained_dir(path: str | Path) -> Path:
    """The directory holding the pretrained weights: ``path/model`` (a pretrain run) or ``path`` (0.1 layout)."""
    path = Path(path)
    for cand in (path / "model", path):
        if (cand / "config.json").is_file():
            return cand
    raise CheckpointError(f"no pretrained encoder in {path} (config.json missing there and in {path / 'model'})")


def load_pretrained_bert(path: str | Path, vocab: Mapping[str, int]) -> Any:
    """The ``BertModel`` trunk of a directory written by ``cloudphys pretrain`` (vocabulary checked)."""
    from transformers import PreTrainedTokenizerFast

    path = pretrained_dir(path)
    refuse_pickles(path)
    with quiet_transformers():
        tok = PreTrainedTokenizerFast.from_pretrained(str(path))
    if dict(tok.get_vocab()) != dict(vocab):
        raise CheckpointError(f"pretrained encoder {path} was trained with a different vocabulary than this tokenizer")
    model = load_masked_lm(path, what="pretrained encoder", remedy="refusing to fill the gaps with untrained weights")
    return model.bert


def load_masked_lm(path: Path, *, what: str, remedy: str) -> Any:
    """The ``BertForMaskedLM`` saved in ``path`` (safetensors only), every tensor accounted for.

    Missing, unexpected or mis-shaped tensors are a :class:`CheckpointError` naming them (``what``
    says what the directory is, ``remedy`` what to do), never freshly initialised weights.
    """
    from transformers import BertForMaskedLM

    try:
        with quiet_transformers():
            model, info = BertForMaskedLM.from_pretrained(str(path), use_safetensors=True, local_files_only=True,
                                                          output_loading_info=True, ignore_mismatched_sizes=True)
    except Exception as exc:
        raise CheckpointError(f"cannot load the {what} from {path}: {type(exc).__name__}: {exc}") from exc
    bad = {k: sorted(str(x if not isinstance(x, tuple) else x[0]) for x in info.get(k, []))
           for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    bad = {k: v for k, v in bad.items() if v}
    if bad:
        listing = "; ".join(f"{k.replace('_keys', '')}: {', '.join(v[:8])}" + (f" ... ({len(v)})" if len(v) > 8 else "")
                            for k, v in bad.items())
        raise CheckpointError(f"{what} {path / 'model.safetensors'} does not fit its config ({listing}); {remedy}")
    return model
