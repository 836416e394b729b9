"""The README's main job gives the number the docs state, and a code change that moves it is caught.

``tests/data/main_job.json`` holds what ``python benchmarks/bench_main_job.py --record`` measured:
the whole job's test metrics (pretrain + 8-member ensemble + evaluate, as the README runs it) and
a fingerprint -- a few steps of the same trainings (the configs' pinned thread counts and seeds)
hashed bit for bit. A change to the encoder, the loop, the data or the configs that alters the
trained numbers changes the fingerprint: this test then fails until the job is measured again and
docs/benchmarks.md states the new result. (Issue 21 §5: the lean training forward of the BERT trunk
changed the numbers "up to rounding", and the main job's documented 0.0583 silently became 0.0602.)
Bit-for-bit numbers also depend on the torch version and the CPU kind: elsewhere the fingerprint
check is skipped (the documentation checks still run).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
RECORD = REPO / "tests" / "data" / "main_job.json"
REMEDY = ("if the change is meant: `python benchmarks/bench_main_job.py --record` (the whole job, ~10 min on "
          "2 cores), then state its MAE and MAE/MAD in docs/benchmarks.md")


def _bench() -> ModuleType:
    from _training_helpers import load_benchmark

    return load_benchmark("bench_main_job")


def _record() -> dict:
    return json.loads(RECORD.read_text(encoding="utf-8"))


def test_the_docs_state_the_recorded_result_and_it_meets_the_goal() -> None:
    result = _record().get("result")
    if result is None:  # the fingerprint is recorded, the whole job with this code not yet
        pytest.xfail("the README main job has not been measured with this code and its pinned threads: run "
                     "`python benchmarks/bench_main_job.py --record` and state the result in docs/benchmarks.md")
    text = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    stated = re.search(r"<!-- main-job-result -->\s.*?printed test \*\*MAE ([0-9.]+) J/\(K·mol\),\s+MAE/MAD "
                       r"([0-9.]+)\*\*", text, re.S)
    assert stated, "docs/benchmarks.md no longer states the README main job's result"
    assert float(stated.group(1)) == pytest.approx(result["mae"], abs=5e-4)
    assert float(stated.group(2)) == pytest.approx(result["mae_over_mad"], abs=5e-5)
    assert result["mae_over_mad"] <= 0.06


def test_the_main_job_configs_pin_their_thread_counts() -> None:
    """A newcomer's core count must not change the result: both trainings fix torch's threads."""
    from cloudphys.config import load_config

    assert load_config(REPO / "configs" / "cloud-pretrain.yaml").pretrain.num_threads is not None
    assert load_config(REPO / "configs" / "cloud-cv-debye-ensemble.yaml").train.num_threads is not None


def _same_machine(bench: ModuleType) -> None:
    recorded = _record()["machine"]
    here = bench.machine()
    if recorded != here:
        pytest.skip(f"the fingerprint was recorded with {recorded}; this is {here} (bit-for-bit numbers differ)")


def test_fine_tuning_trains_to_the_recorded_numbers(data_root: Path) -> None:
    bench = _bench()
    _same_machine(bench)
    got = bench.finetune_fingerprint()
    want = _record()["fingerprint"]["finetune"]
    assert got == want, f"the main job's fine-tuning now trains to other numbers ({got} != {want}); {REMEDY}"


@pytest.mark.slow
def test_pretraining_and_fine_tuning_train_to_the_recorded_numbers(data_root: Path, tmp_path: Path) -> None:
    bench = _bench()
    _same_machine(bench)
    got = bench.fingerprint(tmp_path)["pretrained"]
    want = _record()["fingerprint"]["pretrained"]
    assert got == want, f"the main job's pretraining + fine-tuning now train to other numbers; {REMEDY}"
