"""Helpers shared by the training tests: small real data and the SCOPE tokenizer."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from cloudphys.data import Examples


def tokenizer(max_length: int = 256):
    """The project's SCOPE tokenizer (cloudphys.tokenizer).

    TEMPORARY: until ``cloudphys.tokenizer`` lands, a throwaway whitespace tokenizer over the
    CLOUD strings stands in (tests only; never used by the package).
    """
    try:
        from cloudphys.tokenizer import build_tokenizer
    except ImportError:
        return _throwaway(max_length)
    return build_tokenizer(model_max_length=max_length)


def _throwaway(max_length: int):
    import os

    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    root = Path(os.environ["CLOUDPHYS_DATA"]) / "cloud"
    words: set[str] = set()
    for f in ("cloud_cv_train_and_val.csv", "cloud_cv_test.csv", "pretrain_cloud_10k.csv"):
        with open(root / f, newline="") as fh:
            for row in csv.DictReader(fh):
                words.update(row["cloud"].split())
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(specials + sorted(words))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=max_length)


def cloud_examples(root: Path, n: int, offset: int = 0, file: str = "cloud_cv_train_and_val.csv") -> Examples:
    """``n`` rows of CLOUD's Cv data as in-memory :class:`Examples` (Cv at 300 K)."""
    with open(root / "cloud" / file, newline="") as fh:
        rows = list(csv.DictReader(fh))[offset : offset + n]
    return Examples(
        ids=[f"row{offset + i}" for i in range(len(rows))],
        scope=[r["cloud"] for r in rows],
        n_atoms=np.array([float(r["n_atoms"]) for r in rows]),
        temperatures=np.array([300.0]),
        targets={"cv": np.array([[float(r["cv"])] for r in rows])},
        units={"cv": "J/(K*mol)"},
    )


TINY = {
    "encoder": {"name": "scope-bert", "hidden_size": 16, "num_layers": 1, "num_heads": 2, "dropout": 0.1,
                "composition_features": True},
    "head": {"name": "debye", "observables": ["cv"]},
    "train": {"epochs": 3, "batch_size": 16, "lr": 1.0e-3, "progress": "false", "patience": 0},
}
