"""The geometric inputs of an encoder (issue 20 §3): computed from a structure by
:mod:`cloudphys.scope.geometry` (their home, below the encoders so that conversion and the SCOPE
cache can compute them), re-exported here where the encoders read them."""

from __future__ import annotations

from ..scope import geometry as _home
from ..scope.geometry import *  # noqa: F403  (the public names of the home module)

__all__ = list(_home.__all__)
