"""``cloudphys models``: list the pretrained models, print a model card, package a run as a model."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .checks import check_output_path, dumps_json


def _list(args: argparse.Namespace) -> int:
    from ..models import available, list_models, model_spec

    names = list_models(include_unavailable=True)
    specs = [model_spec(n) for n in names]
    if args.json:
        print(dumps_json([{**s.as_dict(), "available": available(s)} for s in specs], indent=2))
        return 0
    if not specs:
        print("no pretrained models registered", file=sys.stderr)
        return 0
    width = max(len(s.name) for s in specs)
    for s in specs:
        kind = f"{s.members}-member ensemble" if s.members > 1 else "single model"
        missing = "" if available(s) else f"  [needs head {s.head!r}: {s.extra.get('requires', 'install its plugin')}]"
        print(f"{s.name.ljust(width)}  head {s.head or '?'}, {kind}: {s.summary}{missing}")
    print("\n`cloudphys models info NAME` prints a model's card; `cloudphys predict --model NAME ...` uses it.",
          file=sys.stderr)
    return 0


def _info(args: argparse.Namespace) -> int:
    from ..models import model_spec, verify_checksums

    spec = model_spec(args.name)
    if args.verify:
        verify_checksums(spec.path, spec.name)
        print(f"{spec.name}: every file matches SHA256SUMS", file=sys.stderr)
    print(spec.card)
    return 0


def _package(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import DataError
    from ..inference.uncertainty import read_calibration
    from ..models.package import package_model

    check_output_path(args.out, what="--out", folder=True, overwrite=True)  # an existing model: see package_model
    card = Path(args.card).read_text(encoding="utf-8") if args.card else f"# {args.name}\n"
    meta: dict[str, Any] = {}
    if args.meta:
        from ..inputs.textio import loads_json
        from ..models.registry import check_model_meta

        try:
            raw = loads_json(Path(args.meta).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:  # not UTF-8, not JSON, nested too deep
            raise DataError(f"--meta {args.meta}: {exc}") from exc
        meta = check_model_meta(raw, f"--meta {args.meta}")
    cal = read_calibration(args.calibration) if args.calibration else read_calibration(args.run)
    out = package_model(args.run, args.out, name=args.name, card=card, meta=meta, calibration=cal, dtype=args.dtype,
                        overwrite=args.overwrite)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from ..inference.uncertainty import calibrate_run

    cal = calibrate_run(args.run, split=args.split, level=args.level, overrides=args.set, write=not args.dry_run)
    print(dumps_json(cal, indent=2))
    if not args.dry_run:
        print(f"wrote {args.run}/uncertainty.json", file=sys.stderr)
    return 0


def add_commands(subparsers: Any) -> None:
    """Add ``cloudphys models`` (list, info, package) to ``subparsers``."""
    p = subparsers.add_parser("models", help="pretrained models: list them, print a model card, package a run")
    p.add_argument("--json", action="store_true", help="list as JSON")
    p.set_defaults(func=_list)
    sub = p.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    q = sub.add_parser("list", help="list the registered models (the default)")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=_list)
    q = sub.add_parser("info", help="print a model's card (data, licence, metrics, units, limits)")
    q.add_argument("name", help="a name from `cloudphys models`")
    q.add_argument("--verify", action="store_true", help="also check every file against SHA256SUMS")
    q.set_defaults(func=_info)
    q = sub.add_parser("package", help="write a trained run as a shippable model folder (float16 weights, checksums)")
    q.add_argument("run", help="run, model or ensemble directory")
    q.add_argument("--out", required=True, help="the model folder to write")
    q.add_argument("--name", required=True, help="the name it registers under")
    q.add_argument("--card", help="model card (Markdown file)")
    q.add_argument("--meta", help="JSON file of extra model.json fields (summary, head, licence, requires ...)")
    q.add_argument("--calibration", help="directory holding the uncertainty.json to ship (default: the run's)")
    q.add_argument("--dtype", default="float16", choices=["float32", "float16", "bfloat16"],
                   help="storage dtype of the encoder weights (default float16; loaded as float32)")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=_package)
    q = sub.add_parser("calibrate", help="fit an ensemble's spread scale on its validation split (uncertainty.json)")
    q.add_argument("run", help="ensemble run directory")
    q.add_argument("--split", default="val", help="split of the run's data set to fit on (default: val)")
    q.add_argument("--level", type=float, default=0.9, help="nominal coverage of the central interval (default 0.9)")
    q.add_argument("--dry-run", action="store_true", help="print the calibration, write nothing")
    q.add_argument("-s", "--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="data overrides, e.g. data.temperature_range=[20,1000]")
    q.set_defaults(func=_calibrate)
