"""``python -m cloudphys.config``: print the bounds table of docs/config.md."""

from __future__ import annotations

from .table import bounds_markdown

print(bounds_markdown())
