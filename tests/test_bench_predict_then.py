"""benchmarks/bench_predict_then.py: each side is a fresh process that predicts every file it is given
from an empty SCOPE cache, with the code of the checkout it names (issue 20 §4's comparison)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytest.importorskip("pymatgen")


def test_a_side_predicts_every_file_with_its_own_checkout(tmp_path: Path, data_root: Path) -> None:
    from _training_helpers import load_benchmark

    import cloudphys

    if "phonondb-dos-geo" not in cloudphys.list_models():
        pytest.skip("phonondb-dos-geo: its head's plugin is not installed")
    bench = load_benchmark("bench_predict_then")
    files = tmp_path / "cif"
    files.mkdir()
    load_benchmark("bench_predict")._write_structures(3, files, "cif")
    cache = tmp_path / "cache"
    res = bench._run(bench.REPO, "phonondb-dos-geo", files, cache)
    assert res["n"] == 3 and res["errors"] == 0 and res["seconds"] > 0
    # the cache was empty and is now filled: the conversion ran in that process, with this checkout
    assert any(cache.rglob("*.json"))
    # the child's output is one JSON line: a broken side fails loudly, never a silent number
    with pytest.raises(subprocess.CalledProcessError):
        bench._run(bench.REPO, "no-such-model", files, tmp_path / "cache2")
