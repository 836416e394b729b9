"""``scope-bert``: a transformers ``BertModel`` over SCOPE tokens with a latent layer on [CLS].

:class:`ScopeBertConfig` / :class:`ScopeBertEncoder` are Hugging Face ``PretrainedConfig`` /
``PreTrainedModel`` subclasses registered with ``AutoConfig`` / ``AutoModel`` (model type
``scope-bert``), so an encoder directory loads with ``AutoModel.from_pretrained(path)``. The config
stores the head's latent declarations; the latent layer maps the [CLS] state (plus optional
composition features, see :mod:`cloudphys.encoders.descriptors`) into them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from transformers import (
    AutoConfig,
    AutoModel,
    BertConfig,
    BertModel,
    PretrainedConfig,
    PreTrainedModel,
)

from ..bounds import Bound
from ..physics.contract import LatentSpec
from .base import Encoder
from .descriptors import (
    FEATURE_LAYOUT,
    LEGACY_FEATURE_LAYOUT,
    composition_features,
    element_vector,
    n_composition_features,
)
from .geometry import geometry_layout
from .latent import LatentLayer

__all__ = ["ScopeBertConfig", "ScopeBertEncoder", "bert_config", "build_scope_bert"]


class ScopeBertConfig(PretrainedConfig):
    """Configuration of :class:`ScopeBertEncoder` (BERT sizes + latent declarations).

    :param latents: list of ``LatentSpec.as_dict()`` the latent layer produces.
    :param composition_features: add composition descriptors to the latent layer's input.
    :param latent_mlp: hidden width of the latent layer's MLP (0: linear).
    :param features_in_mlp: the latent MLP reads the composition features too (see
        :class:`~cloudphys.encoders.latent.LatentLayer`).
    :param pooling: ``"cls"`` (the [CLS] state) or ``"mean"`` (mean over non-padding tokens).
    :param feature_layout: layout of the composition features (see
        :mod:`cloudphys.encoders.descriptors`); a saved config without it is layout 1 (legacy).
    :param geometric_features: the latent layer also reads the geometric features of the structure
        (:mod:`cloudphys.scope.geometry`, after the composition features): ``True``/``1`` the
        nine cell features (layout 1), ``2`` those plus the bond and site features (layout 2), ``3``
        those plus the spring-network features (layout 3);
        stored as the layout number; a saved config without it reads none (``False``).
    """

    model_type = "scope-bert"

    def __init__(
        self,
        vocab_size: int = 128,
        hidden_size: int = 256,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        intermediate_size: int | None = None,
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        max_position_embeddings: int = 256,
        pad_token_id: int = 0,
        latents: Sequence[Mapping[str, Any]] | None = None,
        composition_features: bool = False,
        latent_mlp: int = 0,
        pooling: str = "cls",
        feature_layout: int | None = None,
        features_in_mlp: bool = False,
        geometric_features: bool | int = False,
        **kwargs: Any,
    ) -> None:
        self.vocab_size = int(vocab_size)
        self.hidden_size = int(hidden_size)
        self.num_hidden_layers = int(num_hidden_layers)
        self.num_attention_heads = int(num_attention_heads)
        self.intermediate_size = int(intermediate_size or 4 * self.hidden_size)
        self.hidden_dropout_prob = float(hidden_dropout_prob)
        self.attention_probs_dropout_prob = float(attention_probs_dropout_prob)
        self.max_position_embeddings = int(max_position_embeddings)
        self.latents = [dict(d) if not isinstance(d, LatentSpec) else d.as_dict() for d in (latents or [])]
        self.composition_features = bool(composition_features)
        self.latent_mlp = int(latent_mlp)
        self.features_in_mlp = bool(features_in_mlp)
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.pooling = pooling
        self.feature_layout = int(feature_layout) if feature_layout is not None else LEGACY_FEATURE_LAYOUT
        self.geometric_features = geometry_layout(geometric_features)
        super().__init__(pad_token_id=pad_token_id, **kwargs)


def bert_config(cfg: ScopeBertConfig) -> BertConfig:
    """The ``BertConfig`` (SDPA attention) of the BERT trunk of ``cfg``."""
    return BertConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        intermediate_size=cfg.intermediate_size,
        hidden_dropout_prob=cfg.hidden_dropout_prob,
        attention_probs_dropout_prob=cfg.attention_probs_dropout_prob,
        max_position_embeddings=cfg.max_position_embeddings,
        pad_token_id=cfg.pad_token_id,
        type_vocab_size=1,
        attn_implementation="sdpa",
    )


class ScopeBertEncoder(PreTrainedModel, Encoder):
    """SCOPE token ids → ``{latent name: tensor [B, *shape]}``."""

    config_class = ScopeBertConfig
    base_model_prefix = "scope_bert"
    _supports_sdpa = True

    def __init__(self, config: ScopeBertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(bert_config(config), add_pooling_layer=False)
        self.latent_layer = LatentLayer(
            config.hidden_size,
            config.latents,
            n_features=n_latent_features(config),
            mlp_size=config.latent_mlp,
            dropout=config.hidden_dropout_prob,
            features_in_mlp=config.features_in_mlp,
        )
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, LatentLayer):
            module.reset_parameters()
            return
        if any(module is m for m in self.latent_layer.modules()):
            return  # owned by the latent layer
        self.bert._init_weights(module)

    # -- inputs that are not tokens -----------------------------------------------------
    def featurize(
        self, scope: Sequence[str], n_atoms: Sequence[float] | np.ndarray, geometry: np.ndarray | None = None
    ) -> np.ndarray | None:
        """Per-sample features the latent layer expects (``None`` if it expects none):
        ``[composition features, geometric features]``, each part where the config asks for it.

        :param geometry: ``[N, N_GEOMETRIC_FEATURES]`` (or ``[N, k]``, the layout's own k) standardised
            geometric features (:func:`cloudphys.scope.geometry.geometric_features`), required (finite) when
            ``config.geometric_features``; ignored otherwise.
        """
        parts = []
        if self.config.composition_features:
            parts.append(np.asarray(composition_features(scope, n_atoms, layout=self.config.feature_layout)))
        layout = geometry_layout(getattr(self.config, "geometric_features", False))
        if layout:
            from .geometry import N_GEOMETRIC_FEATURES, n_geometric_features

            g = None if geometry is None else np.asarray(geometry, dtype=np.float64)
            k = n_geometric_features(layout)
            ok = g is not None and g.ndim == 2 and g.shape[0] == len(scope) and g.shape[1] in (k, N_GEOMETRIC_FEATURES)
            if ok:
                g = g[:, :k]  # a full geometry row carries every layout's features; this one reads the first k
            if not ok or not np.isfinite(g).all():
                got = "none" if g is None else ("non-finite rows" if ok else f"shape {g.shape}")
                raise ValueError(f"this encoder reads geometric features (encoder.geometric_features: layout "
                                 f"{layout}): featurize needs a finite [{len(scope)}, {k}] (or "
                                 f"[{len(scope)}, {N_GEOMETRIC_FEATURES}]) geometry array, got {got}")
            parts.append(g)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else np.hstack(parts)

    def init_element_embeddings(self, vocab: Mapping[str, int], std: float | None = None) -> int:
        """Initialise element-token embeddings from physical descriptors (see :func:`init_element_embeddings`)."""
        std = float(std if std is not None else self.bert.config.initializer_range)
        return init_element_embeddings(self.bert.embeddings.word_embeddings.weight, vocab, std)

    # -- forward ----------------------------------------------------------------------------
    #: when :meth:`forward` runs the BERT trunk through the lean forward of
    #: :mod:`cloudphys.encoders.fast_bert` (same parameters, same dropout masks, results equal to
    #: float rounding) instead of the transformers module: ``"train"`` (default: in training mode),
    #: ``"always"`` (also in eval mode), ``"never"``. Either way only where it applies (see
    #: :meth:`use_fast_forward`). An instance attribute, not part of the saved config.
    fast_forward: str = "train"

    def use_fast_forward(self, input_ids: Tensor) -> bool:
        """Whether :meth:`forward` takes the lean forward for ``input_ids`` now: :attr:`fast_forward`
        allows it in the current mode, the trunk is a BERT it implements (:func:`fast_bert.unsupported`),
        the tensors are float32/float64 on the CPU (on CUDA the HF forward's dropout masks come
        from kernels the lean forward does not reproduce) and no autocast is active."""
        mode = self.fast_forward
        if mode not in ("train", "always", "never"):
            raise ValueError(f"fast_forward must be 'train', 'always' or 'never', got {mode!r}")
        if mode == "never" or (mode == "train" and not self.training):
            return False
        from .fast_bert import autocast_enabled, unsupported

        if input_ids.device.type != "cpu" or autocast_enabled("cpu"):
            return False
        if self.bert.embeddings.word_embeddings.weight.dtype not in (torch.float32, torch.float64):
            return False
        return unsupported(self.bert) is None

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        features: Tensor | None = None,
    ) -> dict[str, Tensor]:
        mean = self.config.pooling == "mean" and attention_mask is not None
        if self.use_fast_forward(input_ids):
            from . import fast_bert

            if not mean:  # [CLS] pooling: the last layer for the [CLS] rows only
                return self.latent_layer(fast_bert.bert_cls_state(self.bert, input_ids, attention_mask), features)
            hidden = fast_bert.bert_hidden_states(self.bert, input_ids, attention_mask)
        else:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if mean:
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
        else:
            pooled = hidden[:, 0]
        return self.latent_layer(pooled, features)


def n_latent_features(config: ScopeBertConfig) -> int:
    """How many features the latent layer of ``config`` reads beside the encoder state."""
    n = n_composition_features(config.feature_layout) if config.composition_features else 0
    from .geometry import n_geometric_features

    return n + n_geometric_features(geometry_layout(getattr(config, "geometric_features", False)))


@torch.no_grad()
def init_element_embeddings(weight: Tensor, vocab: Mapping[str, int], std: float = 0.02) -> int:
    """Set the rows of element tokens of an embedding matrix from physical descriptors.

    Each element token's row becomes a fixed random projection (seed 0) of its standardised
    descriptors (:mod:`cloudphys.encoders.descriptors`) scaled to ``std``, so chemically similar
    elements start close together. Returns the number of rows set.
    """
    probe = element_vector("H")
    assert probe is not None
    gen = torch.Generator().manual_seed(0)
    proj = torch.randn(len(probe), weight.shape[1], generator=gen, dtype=torch.float64) / np.sqrt(len(probe))
    count = 0
    for token, idx in vocab.items():
        vec = element_vector(token)
        if vec is None or idx >= weight.shape[0]:
            continue
        weight[idx] = (torch.from_numpy(vec) @ proj * std).to(weight.dtype)
        count += 1
    return count


AutoConfig.register("scope-bert", ScopeBertConfig, exist_ok=True)
AutoModel.register(ScopeBertConfig, ScopeBertEncoder, exist_ok=True)


def build_scope_bert(
    *,
    latents: Sequence[LatentSpec],
    tokenizer: Any,
    hidden_size: Annotated[int, Bound(ge=1, le=16384)] = 256,
    num_layers: Annotated[int, Bound(ge=1, le=256)] = 4,
    num_heads: Annotated[int, Bound(ge=1, le=1024, divides="hidden_size")] = 4,
    intermediate_size: Annotated[int, Bound(ge=1, le=262144)] | None = None,
    dropout: Annotated[float, Bound(ge=0, lt=1)] = 0.1,
    max_length: Annotated[int, Bound(ge=3, le=8192, remedy="SCOPE strings are a few hundred tokens at most")] = 256,
    composition_features: bool = False,
    element_init: bool = False,
    latent_mlp: Annotated[int, Bound(ge=0, le=65536, remedy="0 gives a linear latent layer")] = 0,
    pooling: Literal["cls", "mean"] = "cls",
    pretrained: str | None = None,
    features_in_mlp: bool = False,
    feature_layout: Literal[2, 3, 4] = FEATURE_LAYOUT,
    geometric_features: bool | Literal[1, 2, 3] = False,
) -> ScopeBertEncoder:
    """Factory of the ``scope-bert`` encoder (the config's ``encoder:`` section).

    :param latents: the head's latent declarations (filled in by :func:`cloudphys.build_model`).
    :param tokenizer: the SCOPE tokenizer (vocabulary size, pad id, element tokens).
    :param hidden_size, num_layers, num_heads, intermediate_size, dropout: BERT sizes.
    :param max_length: longest token sequence, [CLS] and [SEP] included.
    :param composition_features: feed composition descriptors to the latent layer.
    :param element_init: initialise element-token embeddings from physical descriptors.
    :param latent_mlp: hidden width of the latent layer (0: linear).
    :param features_in_mlp: the latent MLP (``latent_mlp`` > 0) also reads the composition features
        (``composition_features``), so they act nonlinearly with the encoder state.
    :param feature_layout: composition features: 2 (the default set), 3 (plus the elemental
        lattice-dynamics descriptors) or 4 (3 plus the record's symmetry descriptors); see
        :mod:`cloudphys.encoders.descriptors`.
    :param geometric_features: the latent layer also reads the geometric features of each
        material's structure (volume per atom, density, nearest-neighbour distances, ...:
        :mod:`cloudphys.scope.geometry`; issue 20 §3): ``true`` (layout 1, nine cell features)
        or ``2`` (layout 2: plus 26 features of the bonds and sites). Such a model needs structures,
        in training (the data set computes them) and in prediction (a bare SCOPE string is refused).
    :param pooling: ``cls`` or ``mean``.
    :param pretrained: directory of an MLM-pretrained encoder (``cloudphys pretrain``) whose BERT
        weights (and sizes) are loaded.
    """
    vocab = tokenizer.get_vocab()
    sizes: dict[str, Any] = dict(
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        max_position_embeddings=max_length,
    )
    pre = None
    if pretrained is not None:
        from .pretrained import load_pretrained_bert

        pre = load_pretrained_bert(pretrained, vocab)
        bc = pre.config
        sizes = dict(
            hidden_size=bc.hidden_size,
            num_hidden_layers=bc.num_hidden_layers,
            num_attention_heads=bc.num_attention_heads,
            intermediate_size=bc.intermediate_size,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            max_position_embeddings=bc.max_position_embeddings,
        )
    if sizes["hidden_size"] % sizes["num_attention_heads"]:
        raise ValueError(
            f"hidden_size {sizes['hidden_size']} is not a multiple of num_heads {sizes['num_attention_heads']}"
        )
    cfg = ScopeBertConfig(
        vocab_size=len(vocab),
        pad_token_id=int(tokenizer.pad_token_id),
        latents=[s.as_dict() for s in latents],
        composition_features=composition_features,
        latent_mlp=latent_mlp,
        pooling=pooling,
        feature_layout=int(feature_layout),
        features_in_mlp=features_in_mlp,
        geometric_features=geometric_features,
        **sizes,
    )
    model = ScopeBertEncoder(cfg)
    if pre is not None:
        missing, unexpected = model.bert.load_state_dict(pre.state_dict(), strict=False)
        if unexpected or [m for m in missing if "pooler" not in m]:
            raise ValueError(
                f"pretrained encoder {pretrained!r} does not match: missing {missing}, unexpected {unexpected}"
            )
    elif element_init:
        model.init_element_embeddings(vocab)
    return model
