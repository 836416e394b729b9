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


def _dos_path(args: argparse.Namespace) -> str | None:
    """Where ``--dos`` writes: its value, or OUTPUT.dos.csv beside ``-o`` (``dos.csv`` without ``-o``)."""
    if args.dos is None:
        return None
    if args.dos != "auto":
        return str(args.dos)
    return str(Path(args.output).with_suffix("")) + ".dos.csv" if args.output and args.output != "-" else "dos.csv"


def _check_plot_format(path: str | None) -> None:
    """Refuse, before any work, a ``--plot`` suffix matplotlib cannot write (``inference.plot.check_plot_path``)."""
    if path is None:
        return
    from ..inference.plot import check_plot_path

    check_plot_path(path)


def _check_all_outputs(args: argparse.Namespace, source: str) -> None:
    """Every output of the command against the inputs, each other and model folders (before any work)."""
    from ..outputs import check_outputs, sidecar_path

    out = args.output if args.output and args.output != "-" else None
    dos = _dos_path(args)
    meta = not args.no_metadata
    outputs: dict[str, Any] = {"-o/--output": out}
    if out and meta:
        outputs["-o/--output's JSON sidecar"] = sidecar_path(out)
    outputs["--dos"] = dos
    if dos and meta:
        outputs["--dos's JSON sidecar"] = sidecar_path(dos)
    outputs["--plot"] = args.plot
    outputs["--phonopy-yaml"] = args.phonopy_yaml
    models = [source] if Path(source).exists() else []
    check_outputs(outputs, inputs=[i for i in args.input if "|" not in i], models=models)


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
    _check_output(_dos_path(args), "--dos", args.input)
    check_output_path(args.phonopy_yaml, what="--phonopy-yaml", folder=True, overwrite=True)
    _check_plot_format(args.plot)
    _check_all_outputs(args, source)
    if args.dos_grid is not None:
        from ..inference.result import parse_dos_grid

        parse_dos_grid(args.dos_grid)  # a bad grid fails before any work
        if args.dos is None and not args.phonopy_yaml:
            raise ConfigError("--dos-grid sets the grid of --dos (and of --phonopy-yaml's total_dos.dat); give --dos")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    if args.plot_max < 1:
        raise ConfigError(f"--plot-max must be at least 1, got {args.plot_max}")
    T = parse_temperatures(args.temperatures)
    check_device(args.device)
    from ..scope.symmetry import check_tolerances

    symprec, angle_tolerance = check_tolerances(args.symprec, args.angle_tolerance, prefix="--")

    from ..models import load_model

    model = load_model(source, device="cpu")
    extra = [(name, load_model(name, device="cpu")) for name in (args.with_models or [])]
    given = list(model.observables) + [o for _, m in extra for o in m.observables if o not in model.observables]
    if args.observables:
        unknown = [o for o in args.observables if o not in given]
        if unknown:
            raise ConfigError(f"--observables {unknown}: head {model.head.name!r} gives {model.observables}"
                              + "".join(f"; --with {n} gives {m.observables}" for n, m in extra))
    if args.dos is not None and not model.head.has_density_of_states:
        raise ConfigError(f"--dos: head {model.head.name!r} has no density of states "
                          "(a DOS head such as phonon-dos has)")
    if args.dos_grid is not None:
        if not model.head.has_density_of_states:
            raise ConfigError(f"--dos-grid: head {model.head.name!r} has no density of states")
    if args.phonopy_yaml and args.observables and not {"u", "cv", "s", "f"} <= set(args.observables):
        raise ConfigError("--phonopy-yaml needs u, cv, s and f; drop --observables or include all four")

    pred = model.predict(args.input, T, device=args.device, workers=args.workers, dialect=args.dialect,
                         allow_disordered=args.allow_disordered,
                         threads=args.threads if args.threads is not None else "auto",
                         symprec=symprec, angle_tolerance=angle_tolerance)
    for name, other in extra:  # e.g. --with phonondb-stability: p_unstable beside the curves
        new = [o for o in other.observables if o not in pred.observables]
        if not new:
            raise ConfigError(f"--with {name}: it gives no observable the first model does not ({other.observables})")
        more = other.predict(args.input, T, observables=new, device=args.device, workers=args.workers,
                             dialect=args.dialect, allow_disordered=args.allow_disordered,
                             threads=args.threads if args.threads is not None else "auto",
                             symprec=symprec, angle_tolerance=angle_tolerance)
        pred = pred.combined(more, name)
    obs = args.observables or None
    safe = not args.no_spreadsheet_safe
    written = []
    if args.output and args.output != "-":
        pred.to_csv(args.output, observables=obs, metadata=not args.no_metadata, spreadsheet_safe=safe)
        written.append(args.output + ("" if args.no_metadata else " (+ .json)"))
    else:
        pred.write_csv(sys.stdout, observables=obs, spreadsheet_safe=safe)
    dos_path = _dos_path(args)
    if dos_path is not None:
        pred.dos_to_csv(dos_path, grid=args.dos_grid, metadata=not args.no_metadata, spreadsheet_safe=safe)
        written.append(dos_path)
    if args.phonopy_yaml:
        from ..inference.export import export_phonopy

        done = export_phonopy(pred, args.phonopy_yaml, dos_grid=args.dos_grid)
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
    p.add_argument("--with", dest="with_models", action="append", metavar="MODEL",
                   help="also predict with this model (name or directory) and add its observables as columns, "
                        "e.g. --with phonondb-stability for p_unstable (repeatable)")
    p.add_argument("--input", "-i", nargs="+", required=True,
                   help="structure files (CIF, POSCAR, extxyz, traj, ASE JSON ...), folders, CSV/JSON-lines, "
                        "or SCOPE strings")
    p.add_argument("--temperatures", "-T", default="300", help="K: start:stop:step (stop included), a,b,c or one value")
    p.add_argument("-o", "--output",
                   help="output CSV (header first, one row per input and temperature; default: stdout) and its "
                        "metadata OUTPUT.json (model, units, spread, failed inputs)")
    p.add_argument("--observables", nargs="+", metavar="NAME",
                   help="only these observables (default: all the head gives)")
    p.add_argument("--dos", nargs="?", const="auto", metavar="CSV",
                   help="also write the predicted phonon DOS in phonopy's total-DOS convention (frequency THz, "
                        "states/THz per cell and per atom; DOS heads; default file OUTPUT.dos.csv)")
    p.add_argument("--dos-grid", metavar="STEP|FMIN:FMAX:STEP",
                   help="frequency grid of --dos and of --phonopy-yaml's total_dos.dat, THz (default: 0.1 THz steps "
                        "from 0 past the highest frequency)")
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
    p.add_argument("--workers", type=int, default=None,
                   help="processes converting structures to SCOPE strings (default: 1 below 64 structures, else "
                        "min(4, cores))")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for the model (default: 1 below 64 inputs, else min(4, cores))")
    p.add_argument("--allow-disordered", action="store_true",
                   help="convert partial-occupancy structures as CLOUD's converter does (refused by default)")
    p.add_argument("--no-spreadsheet-safe", action="store_true",
                   help="write text cells as they are (default: a cell starting with = + - @ tab or CR gets a "
                        "leading ' so spreadsheets do not run it as a formula)")
    p.add_argument("--no-metadata", action="store_true", help="do not write the JSON sidecar(s) OUTPUT.json")
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
