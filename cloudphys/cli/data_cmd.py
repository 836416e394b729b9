"""``cloudphys data``: list and describe data sets, fetch and verify files, build data.

Sub-commands:

* ``list`` -- registered data sets and whether their files are present locally;
* ``info NAME`` -- size, columns and units, licence, source, files (URL, SHA-256, local presence);
* ``fetch NAME...`` / ``verify NAME...`` -- download missing files / check SHA-256 of present ones;
* ``build-phonondb ARCHIVE_OR_DIR... -o materials.jsonl.gz [--workers N]`` -- phonopy on phonondb
  archives (needs the ``phonopy`` extra);
* ``from-phonopy thermal_properties.yaml --structure FILE -o rows.jsonl`` -- your own phonopy
  result as a training row (kJ/mol → J/mol; see docs/data.md);
* ``from-phonon-dos dos.json --structure FILE -o rows.jsonl`` -- a pymatgen PhononDos;
* ``build-corpus SOURCE... -o corpus.csv [--holdout 0.05] [--seed 0] [--exclude SOURCE]`` --
  de-duplicated unlabelled SCOPE strings for pretraining;
  ``build-corpus SOURCE... --out DIR [--workers N] [--exclude SOURCE] [--exclude-ids FILE]`` -- the
  same as a sharded, tokenized, resumable corpus on disk (:mod:`cloudphys.data.shards`) for
  ``pretrain.corpus``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..config.temperatures import parse_temperatures
from ..errors import DataError
from .checks import check_output_path, dumps_json


def _status(spec: Any) -> tuple[str, list[dict[str, Any]]]:
    from ..data.download import local_path

    files = []
    for f in getattr(spec, "files", ()) or ():
        p = local_path(f)
        files.append({
            "path": f.path,
            "local": str(p),
            "present": p.is_file(),
            "size": p.stat().st_size if p.is_file() else f.size,
            "url": f.url,
            "sha256": f.sha256,
        })
    if not files:
        return "n/a (path= parameter)", files
    n = sum(x["present"] for x in files)
    if n == len(files):
        return "yes", files
    if all(x["url"] for x in files if not x["present"]):
        return ("no (downloads on first use)" if n == 0 else "partly (rest downloads on first use)"), files
    return ("no" if n == 0 else "partly"), files


def _human(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def run_list(args: argparse.Namespace) -> int:
    from ..data import data_dir
    from ..plugins import get_registry

    reg = get_registry()
    out = []
    for name in sorted(reg.datasets):
        spec = reg.datasets[name]
        present, files = _status(spec)
        out.append({
            "name": name,
            "plugin": reg.owner("datasets", name),
            "labelled": bool(getattr(spec, "labelled", True)),
            "splits": list(getattr(spec, "splits", ())),
            "present": present,
            "description": getattr(spec, "description", ""),
        })
    if args.json:
        print(dumps_json({"data_dir": str(data_dir()), "datasets": out}, indent=2))
        return 0
    print(f"data directory: {data_dir()}  (CLOUDPHYS_DATA)")
    width = max((len(d["name"]) for d in out), default=4)
    for d in out:
        kind = "labelled" if d["labelled"] else "unlabelled"
        print(f"{d['name']:<{width}}  present: {d['present']:<30} {kind:<10}  {d['description']}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from ..plugins import get_registry

    spec = get_registry().dataset(args.name)
    present, files = _status(spec)
    info = {
        "name": spec.name,
        "description": spec.description,
        "labelled": bool(spec.labelled),
        "splits": list(spec.splits),
        "params": dict(spec.params),
        "columns": dict(spec.columns),
        "licence": spec.licence,
        "source": spec.source,
        "present": present,
        "size": sum(f["size"] or 0 for f in files) if files else None,
        "files": files,
    }
    if args.json:
        print(dumps_json(info, indent=2))
        return 0
    print(f"{spec.name}: {spec.description}")
    print(f"  licence: {spec.licence}")
    print(f"  source:  {spec.source}")
    print(f"  splits:  {', '.join(spec.splits)}    labelled: {'yes' if spec.labelled else 'no'}")
    if files:
        print(f"  size:    {_human(info['size'])} in {len(files)} file(s); present locally: {present}")
    else:
        print(f"  files:   none registered ({present})")
    print("  columns:")
    for col, what in spec.columns.items():
        print(f"    {col}: {what}")
    if spec.params:
        print("  parameters (load(split=..., **params), defaults):")
        for key, value in spec.params.items():
            print(f"    {key} = {value!r}")
    if files:
        print("  files:")
        for f in files:
            mark = "present" if f["present"] else "MISSING"
            print(f"    {f['path']}  [{mark}] {_human(f['size'])}  -> {f['local']}")
            if f["url"]:
                print(f"      url: {f['url']}")
            if f["sha256"]:
                print(f"      sha256: {f['sha256']}")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from ..data.download import fetch, verify
    from ..plugins import get_registry

    reg = get_registry()
    status = 0
    for name in args.names:
        spec = reg.dataset(name)
        for f in spec.files:
            try:
                p = fetch(f, dataset=name, progress=not args.quiet)
                if args.verify:
                    verify(f, p)
                print(f"{name}: {f.path} ok ({p})")
            except DataError as exc:
                print(f"{name}: {exc}", file=sys.stderr)
                status = 1
    return status


def run_verify(args: argparse.Namespace) -> int:
    from ..data.download import local_path, verify
    from ..plugins import get_registry

    reg = get_registry()
    status = 0
    for name in args.names:
        for f in reg.dataset(name).files:
            p = local_path(f)
            if not p.is_file():
                print(f"{name}: {f.path} MISSING ({p})")
                status = 1
                continue
            if not f.sha256:
                print(f"{name}: {f.path} present, no checksum registered")
                continue
            try:
                verify(f, p)
                print(f"{name}: {f.path} ok")
            except DataError as exc:
                print(f"{name}: {exc}")
                status = 1
    return status


def run_build_phonondb(args: argparse.Namespace) -> int:
    from ..data.phonondb_build import (
        PHONONDB_GRID,
        build_rows,
        expand_inputs,
        write_jsonl,
    )

    check_output_path(args.output, what="-o/--output", overwrite=True, inputs=args.inputs)
    try:
        import phonopy  # noqa: F401
    except ImportError:
        raise DataError("build-phonondb needs phonopy: pip install 'cloudphys[phonopy]'") from None
    grid = PHONONDB_GRID
    if args.meta:
        grid = tuple(json.loads(Path(args.meta).read_text())["temperatures_K"])
    n_inputs = len(expand_inputs(args.inputs))
    n, errors = write_jsonl(
        build_rows(args.inputs, temperatures=grid, mesh=args.mesh, workers=args.workers, progress=not args.quiet),
        args.output,
    )
    print(f"wrote {n} rows ({n - len(errors)} built, {len(errors)} failed) for {n_inputs} inputs to {args.output}")
    for row in errors:
        print(f"FAILED {row['source']} ({row['id']}): {row['error']}", file=sys.stderr)
    return 1 if errors else 0


def _append_rows(rows: list[dict[str, Any]], output: str, append: bool) -> None:
    import gzip

    from ..outputs import atomic_path

    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    opener: Any = gzip.open if out.name.endswith(".gz") else open
    if append:  # adding lines to the user's file: in place, by design
        with opener(out, "at", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, separators=(",", ":")) + "\n")
        return
    with atomic_path(out) as tmp, opener(tmp, "wt", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, separators=(",", ":")) + "\n")


def run_from_phonopy(args: argparse.Namespace) -> int:
    from ..data.labels import row_from_thermal_properties_yaml

    check_output_path(args.output, what="-o/--output", overwrite=True, create_parents=True)
    row = row_from_thermal_properties_yaml(args.yaml, args.structure, id=args.id)
    _append_rows([row], args.output, args.append)
    print(f"{row['id']}: {len(row['temperatures_K'])} temperatures, n_atoms={row['n_atoms']} -> {args.output}")
    return 0


def run_from_phonon_dos(args: argparse.Namespace) -> int:
    from ..data.labels import row_from_phonon_dos
    from ..data.phonondb_build import PHONONDB_GRID

    check_output_path(args.output, what="-o/--output", overwrite=True, create_parents=True)
    temps = parse_temperatures(args.temperatures).tolist() if args.temperatures else PHONONDB_GRID
    row = row_from_phonon_dos(args.dos, args.structure, id=args.id or Path(args.dos).stem, temperatures=temps,
                              n_atoms=args.n_atoms)
    _append_rows([row], args.output, args.append)
    print(f"{row['id']}: {len(row['temperatures_K'])} temperatures, n_atoms={row['n_atoms']} -> {args.output}")
    return 0


def _exclude_ids(files: list[str] | None) -> list[str]:
    out: list[str] = []
    for f in files or ():
        p = Path(f).expanduser()
        if not p.is_file():
            raise DataError(f"--exclude-ids: file {p} not found")
        out.extend(line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip())
    return out


def run_build_corpus(args: argparse.Namespace) -> int:
    from ..data.corpus import build_corpus

    if (args.output is None) == (args.out is None):
        raise DataError("build-corpus: give either -o corpus.csv (a CSV of strings) or --out DIR (a sharded, "
                        "tokenized corpus for pretraining at scale)")
    if args.out is not None:
        from ..data.shards import build_token_corpus

        if Path(args.out).exists() and not Path(args.out).is_dir():
            raise DataError(f"--out {args.out} exists and is not a folder")
        rep = build_token_corpus(
            args.sources, args.out, exclude=args.exclude or (), exclude_ids=_exclude_ids(args.exclude_ids),
            dialect=args.dialect, workers=args.workers, shard_size=args.shard_size, max_length=args.max_length,
            overwrite=args.overwrite, progress=not args.quiet,
        )
        print(rep.summary())
        return 0
    if args.exclude_ids:
        raise DataError("--exclude-ids works with --out DIR only")
    check_output_path(args.output, what="-o/--output", overwrite=True, inputs=[*args.sources, *(args.exclude or ())])
    report = build_corpus(
        args.sources, args.output, holdout=args.holdout, seed=args.seed, exclude=args.exclude or (),
        dialect=args.dialect, workers=args.workers, progress=not args.quiet,
    )
    print(report.summary())
    return 0


def add_commands(subparsers: Any) -> None:
    """Add this module's core commands to ``subparsers`` (an argparse sub-parsers object)."""
    p = subparsers.add_parser("data", help="data sets: list, info, fetch, verify, build")
    sub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    q = sub.add_parser("list", help="registered data sets and their local presence")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=run_list)

    q = sub.add_parser("info", help="size, columns, units, licence, source, files of one data set")
    q.add_argument("name")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=run_info)

    q = sub.add_parser("fetch", help="download the missing files of data sets (SHA-256 verified)")
    q.add_argument("names", nargs="+", metavar="NAME")
    q.add_argument("--verify", action="store_true", help="also verify files that were already present")
    q.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=run_fetch)

    q = sub.add_parser("verify", help="check the SHA-256 of the local files of data sets")
    q.add_argument("names", nargs="+", metavar="NAME")
    q.set_defaults(func=run_verify)

    q = sub.add_parser("build-phonondb", help="phonondb archives -> phonondb-thermo rows (needs phonopy)")
    q.add_argument("inputs", nargs="+", metavar="ARCHIVE_OR_DIR")
    q.add_argument("-o", "--output", required=True, help="output .jsonl or .jsonl.gz")
    q.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    q.add_argument("--mesh", type=float, default=40.0, help="mesh length in Å (default 40, Γ-centred)")
    q.add_argument("--meta", help="meta.json whose temperatures_K grid to use (default: the 28-point grid)")
    q.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=run_build_phonondb)

    q = sub.add_parser("from-phonopy", help="phonopy thermal_properties.yaml + structure -> a training row")
    q.add_argument("yaml", help="thermal_properties.yaml")
    q.add_argument("--structure", required=True,
                   help="the crystal: POSCAR, CIF, phonopy.yaml or pymatgen JSON (curves are per the yaml's natom)")
    q.add_argument("--id", help="row id (default: the yaml's folder name)")
    q.add_argument("-o", "--output", required=True, help="rows file (.jsonl or .jsonl.gz)")
    q.add_argument("--append", action="store_true", help="append to the rows file")
    q.set_defaults(func=run_from_phonopy)

    q = sub.add_parser("from-phonon-dos", help="pymatgen PhononDos JSON + structure -> a training row")
    q.add_argument("dos", help="PhononDos.as_dict() JSON (frequencies in THz)")
    q.add_argument("--structure", required=True, help="the cell the DOS belongs to")
    q.add_argument("--n-atoms", type=int, help="atoms of the DOS's cell (default: the structure's)")
    q.add_argument("--temperatures", help="comma-separated K (default: the 28-point phonondb grid)")
    q.add_argument("--id", help="row id (default: the file stem)")
    q.add_argument("-o", "--output", required=True, help="rows file (.jsonl or .jsonl.gz)")
    q.add_argument("--append", action="store_true", help="append to the rows file")
    q.set_defaults(func=run_from_phonon_dos)

    q = sub.add_parser("build-corpus", help="de-duplicated unlabelled SCOPE strings for pretraining")
    q.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="data set NAME[:SPLIT], CSV (scope/cloud or cif/structure column), JSONL(.gz) of "
                        "structures, a structure file, or a folder of structure files")
    q.add_argument("-o", "--output", help="output CSV (columns scope, split)")
    q.add_argument("--out", metavar="DIR",
                   help="instead: a sharded, tokenized corpus (numpy memory maps) for pretrain.corpus; "
                        "resumable: rerun the same command after a kill")
    q.add_argument("--shard-size", type=int, default=100_000, help="input items per shard (--out; default 100000)")
    q.add_argument("--max-length", type=int, default=256,
                   help="most tokens a string may have (--out; longer ones are listed as failures; default 256)")
    q.add_argument("--exclude-ids", action="append", metavar="FILE",
                   help="text file of item ids to leave out, one a line (--out); repeatable")
    q.add_argument("--overwrite", action="store_true", help="rebuild an --out DIR built from other inputs")
    q.add_argument("--holdout", type=float, default=0.05, help="held-out fraction (split 'val'; default 0.05)")
    q.add_argument("--seed", type=int, default=0, help="seed of the held-out draw (default 0)")
    q.add_argument("--exclude", action="append", metavar="SOURCE",
                   help="strings to leave out (same forms as SOURCE, e.g. cloud-cv:test); repeatable")
    q.add_argument("--dialect", default="default", choices=("default", "cloud"),
                   help="dialect for converted structures (default: default)")
    q.add_argument("--workers", type=int, default=1, help="processes for structure conversion")
    q.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=run_build_corpus)
