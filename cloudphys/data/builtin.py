"""Built-in data sets, registered through the ``register_datasets`` hook like any plugin's.

Cheap to import: the loaders read their files only when called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..hookspecs import hookimpl


@hookimpl
def register_datasets(register: Callable[[Any], None]) -> None:
    from .cloud import cloud_specs
    from .csvdata import corpus_spec, csv_spec
    from .phonondb import phonondb_spec, thermo_jsonl_spec

    for spec in cloud_specs():
        register(spec)
    register(phonondb_spec())
    register(thermo_jsonl_spec())
    register(csv_spec())
    register(corpus_spec())
