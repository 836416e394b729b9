"""CLI: bad config values, temperature specs and output paths give one ``error:`` line before any work.

Each bad case: a non-zero exit, exactly one ``error: ...`` line on stderr naming the item, no
traceback. Every ``--json`` output is valid JSON (no ``Infinity``/``NaN``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from cloudphys.cli import main
from cloudphys.cli.checks import check_output_path, dumps_json
from cloudphys.errors import ConfigError

CONFIG = """\
encoder: {name: scope-bert, hidden_size: 32, num_layers: 1, num_heads: 2}
head: {name: debye, observables: [cv]}
data: {name: cloud-cv}
train: {epochs: 1, batch_size: 4}
"""


def _one_error_line(capsys: pytest.CaptureFixture[str], rc: int, *needles: str) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert rc != 0, err
    assert "Traceback" not in err and len(errors) == 1, err
    for n in needles:
        assert n in errors[0], (n, errors[0])
    return errors[0]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    return path


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        ("train.lr=-1", ["train.lr", "-1", "learning rates"]),
        ("train.lr=.nan", ["train.lr", "NaN"]),
        ("train.batch_size=0", ["train.batch_size", "got 0"]),
        ("train.epochs=-2", ["train.epochs"]),
        ("train.max_steps=-1", ["train.max_steps"]),
        ("train.patience=-1", ["train.patience"]),
        ("train.limit=-5", ["train.limit"]),
        ("train.num_threads=0", ["train.num_threads"]),
        ("train.ensemble=0", ["train.ensemble"]),
        ("train.device=gpu", ["train.device", "'gpu'", "auto, cpu"]),
        ("train.loss=l3", ["train.loss", "'l3'"]),
        ("encoder.num_heads=3", ["hidden_size=32", "num_heads=3"]),
        ("encoder.hidden_size=-8", ["encoder.hidden_size", "-8"]),
        ("encoder.dropout=1.5", ["encoder.dropout", "1.5"]),
        ("encoder.max_length=1000000000", ["encoder.max_length", "1000000000"]),
        ("train.seed=1:30", ["train.seed", "'1:30'"]),
    ],
)
def test_train_refuses_bad_values_before_work(capsys: pytest.CaptureFixture[str], tmp_path: Path, config: Path,
                                               override: str, needles: list[str]) -> None:
    rc = main(["train", str(config), "--out", str(tmp_path / "run"), "-s", override])
    _one_error_line(capsys, rc, *needles)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_cuda_without_a_gpu_is_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path, config: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    rc = main(["train", str(config), "--out", str(tmp_path / "run"), "-s", "train.device=cuda"])
    _one_error_line(capsys, rc, "cuda", "CUDA is not available")


def test_a_repeated_section_is_an_error_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG + "train: {epochs: 5}\n")
    rc = main(["train", str(path), "--out", str(tmp_path / "run")])
    _one_error_line(capsys, rc, "key 'train' is given twice (lines 4 and 5)")


@pytest.mark.parametrize(
    ("spec", "needle"),
    [("5:1000:0", "must be > 0"), ("a:b", "'a' is not a number"), ("1000:5:5", "runs down"),
     ("-5", "not a temperature"), ("nan", "not a temperature"), ("inf", "not a temperature"), ("", "empty"),
     ("0:1e12:1e-3", "more than the limit")],
)
def test_predict_refuses_bad_temperature_specs_before_loading(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                              spec: str, needle: str) -> None:
    rc = main(["predict", str(tmp_path / "no-such-run"), "-i", "x.cif", "-T", spec])
    _one_error_line(capsys, rc, "temperatures", needle)


def _unwritable(tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root writes anywhere permissions allow; /proc takes no new files even for root
        return Path("/proc/cloudphys-cannot-write-here.csv")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    return folder / "out.csv"


@pytest.mark.parametrize("case", ["folder", "missing parent", "unwritable", "under a file"])
def test_output_paths_are_checked_before_work(capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str) -> None:
    (tmp_path / "afile").write_text("x")
    out = {"folder": tmp_path, "missing parent": tmp_path / "nope" / "out.csv", "unwritable": _unwritable(tmp_path),
           "under a file": tmp_path / "afile" / "out.csv"}[case]
    reason = {"folder": "is a folder", "missing parent": "does not exist", "unwritable": "cannot write",
              "under a file": "is a file"}[case]
    commands = [
        ["predict", str(tmp_path / "no-such-run"), "-i", "x.cif", "-o", str(out)],
        ["predict", str(tmp_path / "no-such-run"), "-i", "x.cif", "--plot", str(out)],
        ["evaluate", str(tmp_path / "no-such-run"), "-o", str(out)],
        ["scope", str(tmp_path / "afile"), "-o", str(out)],
    ]
    for argv in commands:
        rc = main(argv)
        _one_error_line(capsys, rc, str(out), reason)


def test_a_run_folder_that_is_a_file_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                 config: Path) -> None:
    (tmp_path / "afile").write_text("keep me")
    for cmd in ("train", "pretrain"):
        rc = main([cmd, str(config), "--out", str(tmp_path / "afile")])
        _one_error_line(capsys, rc, "--out", "is a file, not a folder")
    assert (tmp_path / "afile").read_text() == "keep me"


def test_check_output_path_accepts_what_can_be_written(tmp_path: Path) -> None:
    assert check_output_path(None, what="-o") is None and check_output_path("-", what="-o") is None
    assert check_output_path(tmp_path / "new.csv", what="-o") == tmp_path / "new.csv"
    (tmp_path / "old.csv").write_text("x")
    with pytest.raises(ConfigError, match="file exists; choose another name or pass --overwrite"):
        check_output_path(tmp_path / "old.csv", what="-o")
    assert check_output_path(tmp_path / "old.csv", what="-o", overwrite=True)
    assert check_output_path(tmp_path / "a" / "b" / "c.jsonl", what="-o", create_parents=True)
    assert check_output_path(tmp_path / "run" / "sub", what="--out", folder=True)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        check_output_path(tmp_path / "full", what="--out", folder=True)
    assert not list(tmp_path.glob("**/.cloudphys-write-test-*"))  # the probe leaves nothing behind


def _strict_json(text: str) -> object:
    def refuse(name: str) -> None:
        raise AssertionError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_dumps_json_never_writes_infinity_or_nan() -> None:
    obj = {"a": math.inf, "b": [np.float32("nan"), 1.5], "c": np.int64(3), "d": (1, -math.inf),
           "e": np.array([1.0, np.nan]), "f": Path("x"), "g": {"h": float("nan")}}
    assert _strict_json(dumps_json(obj)) == {"a": None, "b": [None, 1.5], "c": 3, "d": [1, None],
                                             "e": [1.0, None], "f": "x", "g": {"h": None}}
    assert _strict_json(dumps_json({"x": 1}, indent=2, allow_nan=True)) == {"x": 1}


@pytest.mark.parametrize("argv", [["plugins", "--json"], ["data", "list", "--json"],
                                  ["data", "info", "cloud-cv", "--json"], ["models", "list", "--json"]])
def test_json_outputs_are_valid_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    rc = main(argv)
    out = capsys.readouterr().out
    assert rc == 0
    _strict_json(out)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "tpu"])
def test_unknown_devices_are_refused_before_loading(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                    device: str) -> None:
    for argv in (["predict", str(tmp_path / "no-such-run"), "-i", "x.cif", "--device", device],
                 ["evaluate", str(tmp_path / "no-such-run"), "--device", device]):
        rc = main(argv)
        _one_error_line(capsys, rc, "--device", repr(device), "use auto, cpu")


def test_a_missing_cuda_device_is_refused_before_loading(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import torch

    from cloudphys.cli.checks import check_device

    check_device("auto")
    check_device("cpu")
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    rc = main(["predict", str(tmp_path / "no-such-run"), "-i", "x.cif", "--device", f"cuda:{n}"])
    _one_error_line(capsys, rc, "--device", f"'cuda:{n}'")


def test_an_output_that_is_an_input_is_refused_and_the_input_kept(capsys: pytest.CaptureFixture[str],
                                                                   tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "in.csv"
    src.write_text("id,scope,n_atoms\nx,-P 4 2 3 | 1a | Na 1.0,1\n")
    monkeypatch.chdir(tmp_path)
    for argv in (["predict", str(tmp_path / "no-such-run"), "-i", str(src), "-o", "in.csv"],
                 ["predict", str(tmp_path / "no-such-run"), "-i", "in.csv", "--plot", str(src)],
                 ["scope", str(src), "-o", "./in.csv"]):
        rc = main(argv)
        _one_error_line(capsys, rc, "is also an input")
    assert src.read_text().startswith("id,scope,n_atoms")
