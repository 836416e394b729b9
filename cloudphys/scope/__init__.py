"""SCOPE: crystal structures ↔ symmetry strings ``symmetry tokens | Wyckoff sites | composition``.

::

    from cloudphys import scope
    rec = scope.from_structure("NaCl.cif")           # ScopeRecord(225, (4a, 4b), Na 1/2, Cl 1/2)
    rec.render()                                      # '-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5' (canonical)
    rec.render("cloud", generator_table="generator.json")
    # '1 6 a O D D a D O D b O O O c O O O d O O O e O O O 0 | 4a 4b | Na 0.5 Cl 0.5'
    scope.parse(cloud_string) == rec.rounded()        # either dialect, no table needed
    rec.canonical()                                   # one record per crystal (docs/scope.md)
    scope.to_dialect(cloud_string, "default")         # CLOUD data without CLOUD's table

See ``docs/scope.md`` for the grammar of both dialects. Importing this package does not import
pymatgen (only reading files and the reference converter do).
"""

from __future__ import annotations

from ..errors import ScopeError, ScopeParseError, StructureError
from .batch import ConversionResult, convert_many, write_results
from .dialects import canonical_text, dialect_of, parse, parse_cached, to_dialect
from .generators import (
    DIALECTS,
    GENERATOR_TABLE_ENV,
    GeneratorTable,
    load_generator_table,
    symmetry_tokens,
)
from .record import ScopeRecord, WyckoffSite
from .structure import analyze, from_structure, primitive_atoms, read_structure

__all__ = [
    "DIALECTS",
    "GENERATOR_TABLE_ENV",
    "ConversionResult",
    "GeneratorTable",
    "ScopeError",
    "ScopeParseError",
    "ScopeRecord",
    "StructureError",
    "WyckoffSite",
    "analyze",
    "canonical_text",
    "convert_many",
    "dialect_of",
    "from_structure",
    "load_generator_table",
    "parse",
    "parse_cached",
    "primitive_atoms",
    "read_structure",
    "symmetry_tokens",
    "to_dialect",
    "write_results",
]
