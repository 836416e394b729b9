"""``cloudphys predict``: curves of every head observable (units, per cell and per atom, spreads) for inputs.

Exit status: 0 when every input was predicted; 1 when any failed (their error rows are still
written) -- with ``--keep-going``, 0 as long as at least one input was predicted.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .checks import check_device, check_output_path


def _check_output(path: str | None, what: str, inputs: Any = ()) -> None:
    check_output_path(path, what=what, overwrite=True, inputs=inputs)


def _run(args: argparse.Namespace) -> int:
    from ..inference.predict import parse_temperatures

    source = args.model or args.run_dir
    if source is None:
        raise ConfigError("give the model: --model NAME (see `cloudphys models`) or a run directory")
    if args.model and args.run_dir and args.model != args.run_dir:
        raise ConfigError(f"two models given: {args.run_dir!r} and --model {args.model!r}")
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        raise ConfigError("--plot needs matplotlib, which is not installed: pip install 'cloudphys[plot]'")
    _check_output(args.output, "-o/--output", args.input)
    _check_output(args.plot, "--plot", args.input)
    if args.dos not in (None, "auto"):
        _check_output(args.dos, "--dos", args.input)
    check_output_path(args.phonopy_yaml, what="--phonopy-yaml", folder=True, overwrite=True)
    if args.plot_max < 1:
        raise ConfigError(f"--plot-max must be at least 1, got {args.plot_max}")
    T = parse_temperatures(args.temperatures)
    check_device(args.device)
    from ..scope.symmetry import check_tolerances

    symprec, angle_tolerance = check_tolerances(args.symprec, args.angle_tolerance, prefix="--")

    from ..models import load_model

    model = load_model(source, device="cpu")
    if args.observables:
        unknown = [o for o in args.observables if o not in model.observables]
        if unknown:
            raise ConfigError(f"--observables {unknown}: head {model.head.name!r} gives {model.observables}")
    if args.dos is not None and not model.head.has_density_of_states:
        raise ConfigError(f"--dos: head {model.head.name!r} has no density of states "
                          "(a DOS head such as phonon-dos has)")
    if args.phonopy_yaml and args.observables and not {"u", "cv", "s", "f"} <= set(args.observables):
        raise ConfigError("--phonopy-yaml needs u, cv, s and f; drop --observables or include all four")

    pred = model.predict(args.input, T, device=args.device, workers=args.workers, dialect=args.dialect,
                         symprec=symprec, angle_tolerance=angle_tolerance)
    obs = args.observables or None
    written = []
    if args.output:
        pred.to_csv(args.output, observables=obs)
        written.append(args.output)
    else:
        pred.write_csv(sys.stdout, observables=obs)
    if args.dos is not None:
        dos_path = args.dos if args.dos != "auto" else (
            str(Path(args.output).with_suffix("")) + ".dos.csv" if args.output else "dos.csv")
        pred.dos_to_csv(dos_path)
        written.append(dos_path)
    if args.phonopy_yaml:
        from ..inference.export import export_phonopy

        done = export_phonopy(pred, args.phonopy_yaml)
        n_ok = sum(1 for v in done.values() if not isinstance(v, str))
        written.append(f"{args.phonopy_yaml}/ ({n_ok} thermal_properties.yaml)")
        for name, v in done.items():
            if isinstance(v, str) and name not in pred.errors:
                print(f"  phonopy export skipped {name}: {v}", file=sys.stderr)
    if args.plot:
        info = pred.plot(args.plot, observables=obs, max_items=args.plot_max)
        written.append(args.plot)
        if info.note:
            print(f"note: the plot {info.note}", file=sys.stderr)

    failed = pred.errors
    done_n = len(pred) - len(failed)
    print(f"predicted {done_n} of {len(pred)} input(s), {len(failed)} failed"
          + (f"; wrote {', '.join(written)}" if written else ""), file=sys.stderr)
    warned = [it for it in pred.items if it.error is None and it.symmetry_warning]
    if warned:
        print(f"{len(warned)} input(s) have a symmetry warning (see the symmetry_warning column), e.g. "
              f"{warned[0].name}: {warned[0].symmetry_warning}", file=sys.stderr)
    for k, (name, err) in enumerate(failed.items()):
        if k == 20:
            print(f"  ... and {len(failed) - 20} more (see the error column)", file=sys.stderr)
            break
        print(f"  {name}: {err}", file=sys.stderr)
    if not failed:
        return 0
    if args.keep_going and done_n > 0:
        return 0
    if not args.keep_going:
        print("exit status 1: some inputs failed (--keep-going: exit 0 when at least one was predicted)",
              file=sys.stderr)
    return 1


def add_commands(subparsers: Any) -> None:
    """Add ``cloudphys predict`` to ``subparsers``."""
    p = subparsers.add_parser(
        "predict", help="predict every observable (units, per cell and per atom, ensemble spreads) for structures")
    p.add_argument("run_dir", nargs="?", help="run or model directory (or use --model)")
    p.add_argument("--model", "-m", help="a pretrained model name (`cloudphys models`) or a run/model directory")
    p.add_argument("--input", "-i", nargs="+", required=True,
                   help="structure files (CIF, POSCAR, extxyz, traj, ASE JSON ...), folders, CSV/JSON-lines, "
                        "or SCOPE strings")
    p.add_argument("--temperatures", "-T", default="300", help="K: start:stop:step (stop included), a,b,c or one value")
    p.add_argument("-o", "--output", help="output CSV (one row per input and temperature; default: stdout)")
    p.add_argument("--observables", nargs="+", metavar="NAME",
                   help="only these observables (default: all the head gives)")
    p.add_argument("--dos", nargs="?", const="auto", metavar="CSV",
                   help="also write the learned phonon DOS (DOS heads; default file OUTPUT.dos.csv)")
    p.add_argument("--phonopy-yaml", metavar="DIR",
                   help="also write DIR/<input>/thermal_properties.yaml (phonopy format)")
    p.add_argument("--plot", help="also plot the curves (PNG, PDF, SVG by suffix)")
    p.add_argument("--plot-max", type=int, default=20,
                   help="materials drawn in the plot (default 20; all go to the CSV)")
    p.add_argument("--keep-going", action="store_true",
                   help="exit 0 when at least one input was predicted, even if others failed "
                        "(error rows still written)")
    p.add_argument("--dialect", help="SCOPE dialect for structure inputs (default: the model's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=1, help="processes for structure conversion")
    add_tolerance_options(p)
    p.set_defaults(func=_run)


def add_tolerance_options(p: Any) -> None:
    """``--symprec`` and ``--angle-tolerance`` (checked by :func:`cloudphys.scope.symmetry.check_tolerances`)."""
    p.add_argument("--symprec", default="auto", metavar="Å|auto",
                   help="spglib distance tolerance for reading the symmetry of structures, in Å, or 'auto' "
                        "(default): the published 0.01 for structures that satisfy their symmetry exactly, looser "
                        "(up to 0.2, RMS displacement <= 0.1 Å) for noisy ones such as ML-relaxed structures")
    p.add_argument("--angle-tolerance", type=float, default=5.0, metavar="DEG",
                   help="spglib angle tolerance in degrees (default 5)")
