"""Closed-vocabulary tokenizer for SCOPE strings of both dialects.

The vocabulary is built from the grammar (:func:`cloudphys.scope.vocabulary.token_groups`), not from data, so no
valid SCOPE string ever maps to ``[UNK]``. In this order (ids are stable):

1. special tokens ``[PAD] [UNK] [CLS] [SEP] [MASK]`` (ids 0-4) and the section separator ``|``;
2. cloud-dialect symmetry tokens: digits ``0``-``9``, rotation codes ``a``-``n``, translation codes
   ``O A B C D E F G X Y Z``;
3. default-dialect symmetry tokens: every part of the 230 default Hall symbols, sorted;
4. Wyckoff labels ``<multiplicity><letter>``: every multiplicity a site can have in any of the 230
   groups (ascending) × the letters ``a``-``z``, ``A``;
5. element symbols by atomic number, then ``X`` (pymatgen's dummy species);
6. composition amounts ``0.0``, ``0.01``, ..., ``1.0``.

A token that belongs to two groups (the element ``O`` and the translation code ``O``) keeps its first id.

Strings are split on whitespace (and on ``|`` glued to a neighbour) and wrapped as ``[CLS] … [SEP]``.

Never truncate: the tokenizer has no truncation set, and a model must check lengths before training
or predicting::

    tok = build_tokenizer(model_max_length=256)
    check_length(tok, texts, ids=names)          # raises SequenceTooLongError naming the item
    enc = tok(texts)                             # no padding; pad per batch (tok.pad_token_id)

``tok.save_pretrained(path)`` / ``PreTrainedTokenizerFast.from_pretrained(path)`` round-trip it.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

from .errors import ScopeError

__all__ = [
    "SPECIAL_TOKENS",
    "SequenceTooLongError",
    "build_tokenizer",
    "build_vocabulary",
    "check_length",
]

#: Special tokens, in id order.
SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
SEPARATOR = "|"


class SequenceTooLongError(ScopeError):
    """A SCOPE string has more tokens than the model accepts (strings are never truncated)."""


def build_vocabulary() -> list[str]:
    """The vocabulary in id order (deterministic; see the module docstring)."""
    from .scope.vocabulary import token_groups

    groups: list[Sequence[str]] = [SPECIAL_TOKENS, (SEPARATOR,), *token_groups()]
    vocab: list[str] = []
    seen: set[str] = set()
    for group in groups:
        for tok in group:
            if tok not in seen:
                seen.add(tok)
                vocab.append(tok)
    return vocab


def build_tokenizer(model_max_length: int = 256) -> Any:
    """A ``transformers.PreTrainedTokenizerFast`` over the closed SCOPE vocabulary.

    :param model_max_length: the most tokens (``[CLS]`` and ``[SEP]`` included) a model accepts;
        enforce it with :func:`check_length` (nothing is truncated).
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if not isinstance(model_max_length, int) or model_max_length < 3:
        raise ScopeError(f"model_max_length must be an integer >= 3, got {model_max_length!r}")
    vocab = build_vocabulary()
    ids = {tok: i for i, tok in enumerate(vocab)}
    core = Tokenizer(models.WordLevel(vocab=ids, unk_token="[UNK]"))
    # whitespace, and "|" even when glued to a neighbour ("3|4a"), as cloudphys.scope.parse reads it
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split("|", behavior="isolated")]
    )
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        model_max_length=model_max_length,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        padding_side="right",
        truncation_side="right",
    )


def check_length(
    tokenizer: Any,
    texts: Sequence[str],
    *,
    ids: Sequence[Any] | None = None,
    max_length: int | None = None,
    on_error: str = "raise",
) -> list[int]:
    """Token counts (``[CLS]``/``[SEP]`` included) of ``texts``; fail loudly if any is too long.

    :param max_length: the limit; default ``tokenizer.model_max_length``.
    :param ids: names of the items, used in the message (default ``#index``).
    :param on_error: ``"raise"`` (:class:`SequenceTooLongError`) or ``"warn"`` (a ``UserWarning``
        listing the items).
    :returns: one count per text.
    """
    if on_error not in ("raise", "warn"):
        raise ScopeError(f"on_error must be 'raise' or 'warn', got {on_error!r}")
    limit = int(max_length if max_length is not None else tokenizer.model_max_length)
    texts = list(texts)
    if not texts:
        return []
    enc = tokenizer(texts, add_special_tokens=True, truncation=False, padding=False)["input_ids"]
    counts = [len(row) for row in enc]
    over = [k for k, n in enumerate(counts) if n > limit]
    if over:
        names = [str(ids[k]) if ids is not None else f"#{k}" for k in over]
        shown = ", ".join(f"{name} ({counts[k]} tokens)" for name, k in zip(names[:5], over[:5]))
        more = f" and {len(over) - 5} more" if len(over) > 5 else ""
        msg = (f"{len(over)} SCOPE string(s) exceed the model's maximum length of {limit} tokens: "
               f"{shown}{more}; strings are never truncated -- raise model_max_length")
        if on_error == "raise":
            raise SequenceTooLongError(msg)
        warnings.warn(msg, UserWarning, stacklevel=2)
    return counts
