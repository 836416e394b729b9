"""Every value checked before work by the bounds table; limits per file as well as per item (issue 22 §2, §5).

The class: a value that passes the up-front check and fails after the work (``-T 1e300`` is finite
in float64 and ``inf`` in the float32 models compute in; a loss weight of ``1e39`` is a finite
number and overflows float32). Each case here is one ``error: ...`` line before anything is computed.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudphys.bounds import MAX_KELVIN, MAX_LOSS_WEIGHT
from cloudphys.cli import build_parser, main
from cloudphys.config import load_config, parse_temperatures
from cloudphys.errors import ConfigError

NACL = "-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5"


def _one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str], match: str) -> None:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert match in lines[0], lines[0]
    assert "Traceback" not in err


def test_max_kelvin_is_the_float32_limit_of_the_heads() -> None:
    import torch

    from cloudphys.physics.contract import temperature_limit

    assert temperature_limit(torch.float32) == MAX_KELVIN
    assert math.isfinite(float(np.float32(MAX_KELVIN)))


@pytest.mark.parametrize("spec", ["1e300", "1e39", "0:1e300:1e299", "300,1e300", "9.3e18"])
def test_temperatures_beyond_the_float32_limit_are_refused(spec: str) -> None:
    # the sample: -T 1e300 passed the checks and failed at the end
    with pytest.raises(ConfigError, match="above the largest temperature models accept"):
        parse_temperatures(spec)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**40)))
def test_an_accepted_temperature_is_finite_in_float32(t: float) -> None:
    """Property: whatever number is given, it is refused or it stays finite and >= 0 in float32."""
    try:
        arr = parse_temperatures([t])
    except ConfigError:
        return
    assert np.isfinite(arr.astype(np.float32)).all() and (arr >= 0).all()


def test_predict_refuses_a_huge_temperature_before_loading(capsys: pytest.CaptureFixture[str]) -> None:
    _one_error_line(capsys, ["predict", "--model", "no-such-model", "-i", NACL, "-T", "1e300"],
                    "above the largest temperature")


@pytest.mark.parametrize("name", ["out.txt", "out", "out.csv", "plot.pgf", "plot.PNG.bak"])
def test_plot_formats_are_checked_before_work(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    pytest.importorskip("matplotlib")
    _one_error_line(capsys, ["predict", "--model", "no-such-model", "-i", NACL, "--plot", str(tmp_path / name)],
                    "--plot")
    assert not (tmp_path / name).exists()


def test_accepted_plot_formats_are_the_ones_matplotlib_writes() -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from cloudphys.inference.plot import PLOT_FORMATS, check_plot_path

    writable = set(FigureCanvasAgg(Figure()).get_supported_filetypes())
    assert set(PLOT_FORMATS) <= writable
    assert check_plot_path("a/b/Curves.PDF") == "pdf"


@pytest.mark.parametrize(("argv", "match"), [
    (["models", "calibrate", "RUN", "--level", "1.5"], "--level must be a finite number > 0 and < 1, got 1.5"),
    (["models", "calibrate", "RUN", "--level", "0"], "--level"),
    (["models", "calibrate", "RUN", "--level", "nan"], "--level"),
    (["predict", "--model", "x", "-i", NACL, "--workers", "0"], "--workers"),
    (["predict", "--model", "x", "-i", NACL, "--plot-max", "0"], "--plot-max"),
    (["scope", NACL, "--symprec", "nan"], "--symprec"),
    (["scope", NACL, "--symprec", "5"], "--symprec"),
    (["scope", NACL, "--angle-tolerance", "-1"], "--angle-tolerance"),
    (["scope", NACL, "--max-atoms", "0"], "--max-atoms"),
    (["scope", NACL, "--max-file-atoms", "-5"], "--max-file-atoms"),
    (["scope", NACL, "--item-timeout", "inf"], "--item-timeout"),
    (["data", "build-corpus", "x", "-o", "out.csv", "--holdout", "1.5"], "--holdout"),
    (["data", "build-corpus", "x", "-o", "out.csv", "--seed", "-1"], "--seed"),
    (["data", "build-phonondb", "x", "-o", "out.jsonl", "--mesh", "inf"], "--mesh"),
    (["data", "from-phonon-dos", "d.json", "--structure", "s", "-o", "o.jsonl", "--n-atoms", "0"], "--n-atoms"),
])
def test_numeric_options_are_checked_before_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str], argv: list[str],
                                                 match: str) -> None:
    monkeypatch.chdir(tmp_path)
    _one_error_line(capsys, argv, match)
    assert not any(tmp_path.iterdir())  # nothing written


def _numeric_options(parser: argparse.ArgumentParser, path: str = "") -> list[tuple[str, str]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _numeric_options(sub, f"{path} {name}".strip())
        elif action.type in (int, float):
            out.append((path, action.dest))
    return out


def test_every_numeric_option_of_every_core_command_has_a_bound() -> None:
    from cloudphys.cli.options import OPTION_BOUNDS

    found = _numeric_options(build_parser())
    assert found  # the walk sees the options
    missing = sorted({(cmd, dest) for cmd, dest in found if dest not in OPTION_BOUNDS})
    assert not missing, f"options without a bound in cloudphys.cli.options.OPTION_BOUNDS: {missing}"


@settings(max_examples=200, deadline=None)
@given(dest=st.sampled_from(sorted(__import__("cloudphys.cli.options", fromlist=["x"]).OPTION_BOUNDS)),
       value=st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True)))
def test_option_checks_only_raise_config_error(dest: str, value: float) -> None:
    """Property: any number for any bounded option is accepted or one ConfigError naming the flag."""
    from cloudphys.cli.options import OPTION_BOUNDS, check_options

    try:
        check_options(argparse.Namespace(**{dest: value}))
    except ConfigError as exc:
        assert OPTION_BOUNDS[dest][0] in str(exc)


# -- models package --meta -------------------------------------------------------------------------------

@pytest.mark.parametrize(("meta", "match"), [
    ([1, 2, 3], "must be a JSON object"),
    ("just text", "must be a JSON object"),
    ({"a": {"b": {"c": 1}}}, "nothing nested deeper"),
    ({"a": [[1]]}, "nothing nested deeper"),
    ({"a": [{"b": 1}]}, "nothing nested deeper"),
    ({"members": 3}, "written by cloudphys"),
    ({"name": "other"}, "written by cloudphys"),
    ({"bad key!": 1}, "not a plain name"),
    ({"a": "x" * 20_000}, "characters"),
    ({"a": list(range(500))}, "lists 500 values"),
    ({f"k{i}": 1 for i in range(100)}, "100 fields"),
])
def test_model_meta_must_be_a_flat_bounded_object(meta: object, match: str) -> None:
    from cloudphys.models.registry import check_model_meta

    with pytest.raises(ConfigError, match=match):
        check_model_meta(meta)


def test_models_package_meta_is_checked_before_the_run_is_read(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    # the sample: --meta with a list or deep nesting raised a traceback
    for k, text in enumerate(["[1, 2]", "[" * 5000 + "]" * 5000, '{"a": {"b": 1}}', '{"summary": NaN}']):
        meta = tmp_path / f"meta{k}.json"
        meta.write_text(text)
        code = main(["models", "package", str(tmp_path / "no-run"), "--out", str(tmp_path / f"pkg{k}"),
                     "--name", "x", "--meta", str(meta)])
        err = capsys.readouterr().err
        assert code == 1 and err.startswith("error: --meta") and "Traceback" not in err, err
        assert not (tmp_path / f"pkg{k}").exists()
    from cloudphys.models.registry import check_model_meta

    ok = {"summary": "one line", "licence": "CC-BY-4.0", "requires": ["cloudphys-phonon-dos"], "epochs": 400,
          "head": "debye"}
    assert check_model_meta(ok) == ok


# -- products of bounded values -----------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "value"), [("loss_weights", {"cv": 1e39}), ("loss_weights", {"cv": 1e7}),
                                            ("dos_smoothness", 1e39), ("grad_clip", 1e300), ("max_steps", 10**30)])
def test_values_whose_products_overflow_are_refused(key: str, value: object) -> None:
    # the sample: a loss weight of 1e39 was inside its bound, overflowed float32 and ended training with NaN
    cfg = {"encoder": {"name": "scope-bert"}, "head": {"name": "debye", "observables": ["cv"]},
           "train": {key: value}}
    with pytest.raises(ConfigError, match=f"train.{key}"):
        load_config(cfg)


@settings(max_examples=200, deadline=None)
@given(w=st.floats(0, 1e300), loss=st.floats(0, 3e32))
def test_an_accepted_loss_weight_times_a_large_loss_is_finite_in_float32(w: float, loss: float) -> None:
    """Property: a weight that passes the bound, times any loss up to 3e32, is finite in float32."""
    import torch

    try:
        cfg = load_config({"encoder": {"name": "scope-bert"}, "head": {"name": "debye", "observables": ["cv"]},
                           "train": {"loss_weights": {"cv": w}}})
    except ConfigError:
        assert w > MAX_LOSS_WEIGHT
        return
    weight = cfg.train.loss_weights["cv"]
    assert torch.isfinite(torch.tensor(loss, dtype=torch.float32) * weight)


# -- limits per file --------------------------------------------------------------------------------------------

def _ase_row(n: int = 2) -> dict:
    return {"numbers": [11, 17][:n], "positions": [[0, 0, 0], [2.8, 0, 0]][:n],
            "cell": [[5.6, 0, 0], [0, 5.6, 0], [0, 0, 5.6]], "pbc": [True, True, True]}


def test_ase_json_with_repeated_ids_is_read_once_per_row(tmp_path: Path) -> None:
    # the sample: repeated 'ids' expanded a ~400 KB file into 10 million atoms
    from cloudphys.inputs import read_inputs

    path = tmp_path / "db.json"
    path.write_text(json.dumps({"1": _ase_row(), "2": _ase_row(), "ids": [1, 2] + [1] * 100_000, "nextid": 3}))
    items = read_inputs([str(path)])
    assert len(items) == 3
    assert [it.error is None for it in items] == [True, True, False]
    assert "listed again" in items[2].error and "100,000 repeated entries" in items[2].error


def test_a_file_over_the_per_file_atom_budget_names_what_is_not_read(tmp_path: Path) -> None:
    from cloudphys.inputs import read_inputs

    path = tmp_path / "db.json"
    rows = {str(k): _ase_row() for k in range(1, 11)}
    path.write_text(json.dumps({**rows, "ids": list(range(1, 11)), "nextid": 11}))
    items = read_inputs([str(path)], limits={"max_file_atoms": 7})
    assert [it.error is None for it in items] == [True, True, True, False]
    assert "rows 4 and the 6 after it are not read" in items[3].error and "--max-file-atoms" in items[3].error


def _traj(path: Path, frames: int) -> Path:
    from ase import Atoms
    from ase.io import Trajectory

    with Trajectory(str(path), "w") as tr:
        for k in range(frames):
            tr.write(Atoms("NaCl", positions=[[0, 0, 0], [2.8 + 0.01 * k, 0, 0]], cell=[5.6] * 3, pbc=True))
    return path


def _repeat_offsets(path: Path, times: int) -> None:
    """Point the trajectory's index at its first frame ``times`` times (the crafted file of the issue)."""
    raw = bytearray(path.read_bytes())
    version, nitems, pos0 = struct.unpack("<3q", raw[24:48])
    first = struct.unpack("<q", raw[pos0 : pos0 + 8])[0]
    table = struct.pack(f"<{times}q", *([first] * times))
    new_pos = len(raw)
    raw += table
    raw[24:48] = struct.pack("<3q", version, times, new_pos)
    path.write_bytes(bytes(raw))


def test_a_traj_with_repeated_offsets_is_not_expanded(tmp_path: Path) -> None:
    from cloudphys.inputs import read_inputs

    path = _traj(tmp_path / "a.traj", 2)
    _repeat_offsets(path, 50_000)
    items = read_inputs([str(path)], limits={"max_file_atoms": 1_000})
    good = [it for it in items if it.error is None]
    assert len(good) == 1  # the one real frame the index points at
    assert all("repeats the data of frame 0" in it.error for it in items[1:])
    assert len(items) == 50_000  # every listed frame has its row: nothing dropped silently


def test_traj_frames_over_the_per_file_atom_budget(tmp_path: Path) -> None:
    from cloudphys.inputs import read_inputs

    path = _traj(tmp_path / "b.traj", 10)
    items = read_inputs([str(path)], limits={"max_file_atoms": 9})
    assert [it.error is None for it in items] == [True] * 4 + [False]
    assert "frames 4-9 of 10 are not read" in items[4].error


def test_extxyz_frames_over_the_per_file_atom_budget(tmp_path: Path) -> None:
    from cloudphys.inputs import read_inputs

    frame = ('2\nLattice="5.6 0 0 0 5.6 0 0 0 5.6" Properties=species:S:1:pos:R:3 pbc="T T T"\n'
             "Na 0 0 0\nCl 2.8 0 0\n")
    path = tmp_path / "c.extxyz"
    path.write_text(frame * 6)
    items = read_inputs([str(path)], limits={"max_file_atoms": 5})
    assert [it.error is None for it in items] == [True, True, False]
    assert "the frames from line 9 on are not read" in items[2].error
