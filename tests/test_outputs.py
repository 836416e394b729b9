"""The output side (issue 22 §1, §5, §6, §8; issue 21 §3): one atomic writer, outputs checked against
inputs, each other and model folders before any work, CSVs that load anywhere (header first, JSON
sidecar, spreadsheet-safe, never an encoding error), writing linear in the rows.

Predictions are built from the Debye head itself (no trained model): the checks concern the files.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cloudphys.errors import CheckpointError, ConfigError
from cloudphys.inference.result import ItemInfo, Prediction, quantities_from_head
from cloudphys.outputs import (
    atomic_write,
    check_outputs,
    clean_text,
    model_folder_of,
    replace_folder,
    sidecar_path,
    text_cell,
    write_text,
)

HYP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _prediction(names: list[str], T=(0.0, 300.0), ensemble: bool = True, failed: set[int] = frozenset()) -> Prediction:
    from cloudphys.physics.debye import DebyeHead

    head = DebyeHead()
    n = len(names)
    theta = torch.linspace(200.0, 800.0, max(n, 1), dtype=torch.float64)[:n]
    n_atoms = torch.arange(1, n + 1, dtype=torch.float64)
    temps = torch.tensor(T, dtype=torch.float64)
    out = head(latents={"theta_D": theta}, temperature=temps.expand(n, -1), n_atoms=n_atoms)
    obs = {k: v.numpy().copy() for k, v in out.items()}
    lat = {"theta_D": theta.numpy().copy()}
    items = []
    for k, name in enumerate(names):
        err = f"cannot read {name}" if k in failed else None
        items.append(ItemInfo(name, f"{name}.cif", "-F 4 2 3 | 4a | Cu 1.0", float(k + 1), err))
        if err:
            for v in (*obs.values(), *lat.values()):
                v[k] = np.nan
    std = {k: 0.05 * np.abs(v) + 0.01 for k, v in {**obs, **lat}.items()} if ensemble else None
    return Prediction(np.asarray(T), items, obs, quantities_from_head(head), lat, member_std=std, scale=1.5,
                      calibration={"scale": 1.5, "fitted_on": "val"} if ensemble else None,
                      model="test-model", head="debye", members=3 if ensemble else 1)


# ------------------------------------------------------------------------------------------
# the atomic writer
# ------------------------------------------------------------------------------------------

def test_a_write_that_fails_half_way_leaves_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    write_text(target, "old,complete\n")
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_write(target) as fh:
        fh.write("new,half")
        raise RuntimeError("disk on fire")
    assert target.read_text() == "old,complete\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]  # no temporary file left behind


def test_prediction_to_csv_killed_mid_write_keeps_the_old_table(tmp_path: Path, monkeypatch) -> None:
    """Monkeypatch the table writer to raise after writing half: the old CSV and sidecar are intact."""
    import cloudphys.inference.result as result

    p = _prediction(["a", "b", "c", "d"])
    path = p.to_csv(tmp_path / "out.csv")
    before, meta_before = path.read_bytes(), sidecar_path(path).read_bytes()
    real = result._write_table

    def half(pred, fh, obs, safe):
        import io

        buf = io.StringIO()
        real(pred, buf, obs, safe)
        fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise OSError("killed")

    monkeypatch.setattr(result, "_write_table", half)
    with pytest.raises(OSError, match="killed"):
        _prediction(["x", "y"]).to_csv(path)
    assert path.read_bytes() == before and sidecar_path(path).read_bytes() == meta_before
    assert sorted(q.name for q in tmp_path.iterdir()) == ["out.csv", "out.csv.json"]


_SLOW_WRITER = textwrap.dedent("""
    import sys, time
    from cloudphys.outputs import atomic_write
    with atomic_write(sys.argv[1]) as fh:
        for k in range(100000):
            fh.write(sys.argv[2] * 50 + "\\n")
            if k == 10:
                fh.flush()
                print("writing", flush=True)
                time.sleep(60)
""")


def test_sigkill_during_a_write_leaves_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    write_text(target, "previous\n")
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(target), "x"], stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert target.read_text() == "previous\n"


_WRITER = textwrap.dedent("""
    import sys
    from cloudphys.outputs import atomic_write
    for _ in range(int(sys.argv[3])):
        with atomic_write(sys.argv[1]) as fh:
            for k in range(2000):
                fh.write(f"{sys.argv[2]},{k}\\n")
""")


def test_two_concurrent_writers_leave_one_complete_file(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(target), tag, "15"], env=env) for tag in "AB"]
    seen = set()
    deadline = time.monotonic() + 120
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        if target.exists():  # a reader at any moment sees one writer's whole file
            lines = target.read_text().splitlines()
            assert len(lines) == 2000 and len({ln.split(",")[0] for ln in lines}) == 1
            seen.add(lines[0][0])
    assert all(p.wait(timeout=120) == 0 for p in procs)
    lines = target.read_text().splitlines()
    tags = {ln.split(",")[0] for ln in lines}
    assert len(lines) == 2000 and len(tags) == 1 and [ln.split(",")[1] for ln in lines] == [str(k) for k in range(2000)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_new_file_mode_follows_the_umask_and_a_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    old = os.umask(0o022)
    try:
        write_text(f, "x")
    finally:
        os.umask(old)
    assert f.stat().st_mode & 0o777 == 0o644
    os.chmod(f, 0o600)
    write_text(f, "y")
    assert f.stat().st_mode & 0o777 == 0o600 and f.read_text() == "y"


def test_replace_folder_keeps_the_old_folder_when_the_build_fails(tmp_path: Path) -> None:
    target = tmp_path / "pkg"
    target.mkdir()
    (target / "keep.txt").write_text("old")
    with pytest.raises(ValueError), replace_folder(target) as build:
        (build / "new.txt").write_text("new")
        raise ValueError("build failed")
    assert [p.name for p in target.iterdir()] == ["keep.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]
    with replace_folder(target) as build:
        (build / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]


# ------------------------------------------------------------------------------------------
# output paths against inputs, each other and model folders
# ------------------------------------------------------------------------------------------

_NAMES = st.sampled_from(["a.csv", "b.csv", "a.csv.json", "sub/a.csv", "./a.csv", "sub/../a.csv", "mdl/x.csv",
                          "pkg/out.csv", "run/model/y.csv", "c.png"])


def _layout(root: Path) -> None:
    (root / "sub").mkdir(exist_ok=True)
    for d, files in {"mdl": ("head.json", "config.json"), "pkg": ("model.json", "SHA256SUMS"),
                     "run/model": ("head.json", "config.json")}.items():
        (root / d).mkdir(parents=True, exist_ok=True)
        for f in files:
            (root / d / f).write_text("{}")
    for f in ("a.csv", "b.csv"):
        (root / f).write_text("id\n")


@HYP
@given(outputs=st.lists(st.one_of(st.none(), _NAMES), min_size=1, max_size=4),
       inputs=st.lists(_NAMES, max_size=3))
@example(outputs=["a.csv", "./a.csv"], inputs=[])
@example(outputs=["b.csv"], inputs=["sub/../b.csv"])
def test_outputs_are_refused_exactly_when_they_collide(tmp_path: Path, outputs, inputs) -> None:
    _layout(tmp_path)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        given_out = {f"--opt{k}": p for k, p in enumerate(outputs)}
        real = [os.path.realpath(p) for p in outputs if p is not None]
        in_model = any(p.startswith(("mdl/", "pkg/", "run/")) for p in outputs if p is not None)
        collide = len(set(real)) < len(real) or bool(set(real) & {os.path.realpath(i) for i in inputs})
        if collide or in_model:
            with pytest.raises(ConfigError, match="also an input|also the path of|inside the model or run folder"):
                check_outputs(given_out, inputs=inputs)
        else:
            check_outputs(given_out, inputs=inputs)
    finally:
        os.chdir(cwd)


def test_model_folder_markers(tmp_path: Path) -> None:
    _layout(tmp_path)
    assert model_folder_of(tmp_path / "mdl" / "x.csv") == (tmp_path / "mdl").resolve()
    assert model_folder_of(tmp_path / "run" / "model" / "deep" / "x") == (tmp_path / "run" / "model").resolve()
    assert model_folder_of(tmp_path / "run" / "metrics.csv") == (tmp_path / "run").resolve()  # RUN/model/head.json
    assert model_folder_of(tmp_path / "pkg") == (tmp_path / "pkg").resolve()
    assert model_folder_of(tmp_path / "sub" / "x.csv") is None


# ------------------------------------------------------------------------------------------
# CSVs that load anywhere
# ------------------------------------------------------------------------------------------

_ID_TEXT = st.text(alphabet=st.characters(codec=None, categories=None, blacklist_categories=()), min_size=1,
                   max_size=12)
_IDS = st.one_of(_ID_TEXT, st.builds(lambda p, s: p + s, st.sampled_from(["=", "+", "-", "@", "\t", "\r", "'"]),
                                     _ID_TEXT), st.sampled_from(["\ud800", "=HYPERLINK(\"http://x\")", "@SUM(A1)",
                                                                 "-1.5", "a\x00b", "x\udcff.cif", "NaCl"]))


def _expected_cell(name: str) -> str:
    return text_cell(name, True)


@HYP
@given(names=st.lists(_IDS, min_size=1, max_size=6), failed=st.sets(st.integers(0, 5), max_size=2))
@example(names=["\ud800", "a\x00b", "=cmd", "-1.5"], failed={1})
def test_csv_round_trips_through_dictreader_and_pandas(tmp_path: Path, names, failed) -> None:
    pd = pytest.importorskip("pandas")
    p = _prediction(names, failed={k for k in failed if k < len(names)})
    path = p.to_csv(tmp_path / "out.csv")
    n_rows = sum(1 if it.error else 2 for it in p.items)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == n_rows
    want = [_expected_cell(it.name) for it in p.items for _ in range(1 if it.error else 2)]
    assert [r["id"] for r in rows] == want
    for r in rows:  # only text cells are neutralised: numbers stay numbers
        assert r["temperature_K"] == "" or math.isfinite(float(r["temperature_K"]))
    df = pd.read_csv(path, keep_default_na=False, dtype={"id": str})
    assert len(df) == n_rows and list(df["id"]) == want
    meta = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    assert meta["failed"] == len(p.errors) and meta["spreadsheet_safe"] is True


def test_text_cells_owasp_rule_and_numbers() -> None:
    for bad in ("=1+1", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "-F 4 2 3 | 4a | Cu 1.0"):
        assert text_cell(bad) == "'" + bad and text_cell(bad, spreadsheet_safe=False) == bad
    for fine in ("-1.5", "+3e-2", "NaCl", "mp-1000", ""):
        assert text_cell(fine) == fine
    assert clean_text("\ud800") == "\\ud800" and clean_text("a\x00b") == "a\\x00b"
    assert clean_text(os.fsdecode(b"caf\xe9.cif")) == "caf\\udce9.cif"


def test_csv_header_first_units_in_names_sidecar_and_option_off(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    p = _prediction(["=evil", "Cu"], failed={0})
    path = p.to_csv(tmp_path / "out.csv", spreadsheet_safe=False)
    df = pd.read_csv(path)  # no arguments
    assert list(df.columns) == p.columns() and len(df) == 3
    assert df["id"].tolist()[0] == "=evil" and "cv_J_per_K_mol_atom" in df.columns
    meta = json.loads((tmp_path / "out.csv.json").read_text())
    assert meta["errors"] == {"=evil": "cannot read =evil"} and meta["spreadsheet_safe"] is False
    assert meta["model"] == "test-model" and meta["head"] == "debye" and meta["members"] == 3
    assert meta["spread"]["calibrated"] is True and meta["columns"]["temperature_K"]["unit"] == "K"
    p.to_csv(tmp_path / "bare.csv", metadata=False)
    assert not (tmp_path / "bare.csv.json").exists()


def test_to_pandas_equals_the_csv_numbers(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    p = _prediction(["a", "b", "c"], T=(0.0, 10.0, 300.0), failed={1})
    df = p.to_pandas()
    back = pd.read_csv(p.to_csv(tmp_path / "o.csv"))
    assert list(df.columns) == list(back.columns) and len(df) == len(back) == 7
    num = [c for c in df.columns if c not in ("id", "source", "scope", "error")]
    np.testing.assert_allclose(df[num].to_numpy(float), back[num].to_numpy(float), rtol=1e-7, equal_nan=True)
    assert int(df["error"].isna().sum()) == 6 and df["error"].tolist()[3] == "cannot read b"


def test_writing_computes_bands_once_per_column_not_per_value(monkeypatch) -> None:
    """Linear in rows: interval() runs once per column whatever the number of inputs."""
    calls = []
    real = Prediction.interval

    def counting(self, name):
        calls.append(name)
        return real(self, name)

    monkeypatch.setattr(Prediction, "interval", counting)
    import io

    for n in (2, 50):
        calls.clear()
        _prediction([f"m{k}" for k in range(n)], T=tuple(np.linspace(0, 1000, 20))).write_csv(io.StringIO())
        assert len(calls) == 5  # u, cv, s, f, theta_D


def test_dos_csv_and_repr_names_are_safe(tmp_path: Path) -> None:
    p = _prediction(["\ud800", "=x"])
    assert "=x" in repr(p) and "\\ud800" in repr(p)
    repr(p).encode("utf-8")  # print(p) to a strict UTF-8 stdout never raises
    p.dos = {"theta_K": np.full((2, 3), 1.0), "modes": np.ones((2, 3))}
    path = p.dos_to_csv(tmp_path / "dos.csv", grid="0:1:0.5")  # 3 frequency points per structure
    rows = list(csv.DictReader(open(path, newline="", encoding="utf-8")))
    assert [r["id"] for r in rows][::3] == ["\\ud800", "'=x"]
    assert json.loads((tmp_path / "dos.csv.json").read_text())["format"] == "cloudphys-dos"


def test_plot_legends_take_any_id(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    p = _prediction(["x\udcff.cif", "a$b$c", "=HYPERLINK(1)"], T=(10.0, 300.0))
    info = p.plot(tmp_path / "p.png")
    labels = [t.get_text() for t in info.figure.legends[0].get_texts()]
    assert labels[0].startswith("x\\udcff.cif") and labels[1].startswith("a\\$b\\$c")
    assert (tmp_path / "p.png").stat().st_size > 0 and sorted(q.name for q in tmp_path.iterdir()) == ["p.png"]


# ------------------------------------------------------------------------------------------
# the commands: refused before any work
# ------------------------------------------------------------------------------------------

def _predict_cli(argv: list[str], monkeypatch, capsys) -> tuple[int, str]:
    from cloudphys.cli import main

    def no_model(*a, **k):  # the checks must come first: loading the model is already "work"
        raise AssertionError("the model was loaded before the outputs were checked")

    monkeypatch.setattr("cloudphys.models.load_model", no_model)
    rc = main(["predict", "--model", "phonondb-dos", *argv])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("extra", [
    ["-o", "x.csv", "--dos", "x.csv"],
    ["-o", "x.csv", "--plot", "x.csv"],
    ["-o", "x.csv", "--dos", "x.csv.json"],
    ["-o", "in.cif.csv", "--dos", "in.cif"],
    ["-o", "in.cif"],
    ["-o", "in.dos.csv", "--dos"],
    ["-o", "x.csv", "--phonopy-yaml", "x.csv"],
    ["-o", "pkg/out.csv"],
    ["-o", "x.csv", "--plot", "x.txt"],
])
def test_predict_refuses_colliding_outputs_before_any_work(tmp_path: Path, monkeypatch, capsys, extra) -> None:
    pytest.importorskip("matplotlib")
    _layout(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.cif").write_text("data_x\n")
    (tmp_path / "in.dos.csv").write_text("keep\n")
    args = ["--input", "in.cif", "in.dos.csv", *extra] if "in.dos.csv" in extra else ["--input", "in.cif", *extra]
    rc, err = _predict_cli(args, monkeypatch, capsys)
    assert rc == 1 and err.startswith("error:") and err.count("\n") == 1, err
    assert (tmp_path / "in.cif").read_text() == "data_x\n" and (tmp_path / "in.dos.csv").read_text() == "keep\n"
    assert not (tmp_path / "x.csv").exists()


def test_calibration_is_refused_in_a_packaged_model(tmp_path: Path) -> None:
    from cloudphys.inference.uncertainty import calibrate_run, write_calibration

    (tmp_path / "model.json").write_text("{}")
    (tmp_path / "SHA256SUMS").write_text("")
    with pytest.raises(CheckpointError, match="packaged model"):
        write_calibration(tmp_path, {"scale": 1.0})
    with pytest.raises(CheckpointError, match="packaged model"):
        calibrate_run(tmp_path)  # before loading anything
    assert not (tmp_path / "uncertainty.json").exists()
