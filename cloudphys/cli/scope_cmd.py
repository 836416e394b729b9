"""``cloudphys scope``: convert structures (files, folders, JSON lines, CSVs of CIFs) to SCOPE strings."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .checks import check_output_path


def run(args: argparse.Namespace) -> int:
    import os

    # spglib's C code prints its internal retries ("... failed.") to stderr; quiet unless asked for.
    os.environ.setdefault("SPGLIB_WARNING", "OFF")
    from ..inputs import convert_inputs, limits_from_options
    from ..scope import DIALECTS
    from ..scope.batch import write_results

    check_output_path(args.output, what="-o/--output", overwrite=True, inputs=args.inputs)
    from ..outputs import check_outputs

    check_outputs({"-o/--output": args.output}, inputs=args.inputs)
    if args.dialect not in DIALECTS:  # pragma: no cover - argparse checks choices
        raise SystemExit(f"unknown dialect {args.dialect}")
    limits = limits_from_options(args)
    results = convert_inputs(
        args.inputs,
        dialect=args.dialect,
        generator_table=args.generator_table,
        limits=limits,
        symprec=args.symprec,
        angle_tolerance=args.angle_tolerance,
        workers=args.workers,
        progress=not args.no_progress,
        allow_disordered=args.allow_disordered,
    )
    write_results(results, args.output, spreadsheet_safe=not args.no_spreadsheet_safe)
    failed = sum(1 for r in results if r.error is not None)
    where = f" to {args.output}" if args.output else ""
    print(f"{len(results)} structures, {len(results) - failed} converted, {failed} failed{where}", file=sys.stderr)
    return 1 if failed and args.strict else 0


def add_commands(subparsers: Any) -> None:
    """Add this module's core commands to ``subparsers`` (an argparse sub-parsers object)."""
    from ..inputs.limits import add_limit_options  # torch-, numpy- and spglib-free

    p = subparsers.add_parser(
        "scope",
        help="convert crystal structures to SCOPE strings",
        description=(
            "Convert structure files (CIF, POSCAR/CONTCAR, pymatgen JSON, ASE extxyz/traj/JSON; one row per "
            "CIF block or frame), folders of them, JSON lines with 'id' and a pymatgen 'structure' dict (e.g. "
            "phonondb's materials.jsonl.gz) or CSVs with a cif/poscar/structure/scope column to SCOPE strings. "
            "Writes one row per input, in input order, with columns id, scope, error."
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="structure file, folder, *.jsonl[.gz] or *.csv[.gz]")
    p.add_argument("--dialect", choices=("default", "cloud"), default="default",
                   help="default: Hall-symbol tokens (self-contained); cloud: CLOUD's generator strings")
    p.add_argument("--generator-table", metavar="PATH", default=None,
                   help="CLOUD's data/generator.json (needed for --dialect cloud; "
                        "default $CLOUDPHYS_GENERATOR_TABLE)")
    p.add_argument("--symprec", type=float, default=0.01, help="spglib distance tolerance in Å (default 0.01)")
    p.add_argument("--angle-tolerance", type=float, default=5.0, help="spglib angle tolerance in degrees (default 5)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("-o", "--output", metavar="OUT", default=None,
                   help="OUT.csv or OUT.jsonl (default: CSV on stdout)")
    p.add_argument("--allow-disordered", action="store_true",
                   help="convert partial-occupancy structures as CLOUD's converter does instead of failing them")
    add_limit_options(p)
    p.add_argument("--no-spreadsheet-safe", action="store_true",
                   help="CSV text cells as they are (default: a cell starting with = + - @ tab or CR, e.g. a "
                        "Hall symbol '-F 4 2 3', gets a leading ' so spreadsheets do not run it as a formula; "
                        "cloudphys reads such cells back as the string)")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any input failed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
