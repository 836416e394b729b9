"""A model directory is validated at load, whatever its origin (issue 22 §3).

Each tampered directory is a :class:`CheckpointError` naming the file and the reason -- at load,
never a wrong number or a failure at predict: tensor dtypes against the architecture, finite
weights, head and encoder parameters against the config bounds, the encoder class, ensemble members
that are really different models. The untampered directory loads and predicts as before.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudphys.config import load_config
from cloudphys.errors import CheckpointError
from tests._training_helpers import TINY

SCOPE = "-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cloudphys.training import build_model

    torch.manual_seed(0)
    model = build_model(load_config(TINY))
    path = tmp_path_factory.mktemp("clean") / "model"
    model.save_pretrained(path)
    return path


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _load(path: Path):
    from cloudphys.training import ScopePhysicsModel

    return ScopePhysicsModel.from_pretrained(path)


def _rewrite_header(file: Path, edit) -> None:
    """Edit the JSON header of a safetensors file in place (the tensor bytes are kept)."""
    raw = file.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    edit(header)
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    file.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n :])


def _first_float_tensor(file: Path) -> str:
    raw = file.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    return next(k for k, v in sorted(header.items()) if k != "__metadata__" and v["dtype"] == "F32")


def test_the_clean_directory_loads_and_predicts(model_dir: Path) -> None:
    model = _load(model_dir)
    assert model.head.name == "debye"


@pytest.mark.parametrize("dtype", ["I32", "U32", "I64", "I16", "U8", "BOOL"])
def test_a_float_tensor_stored_as_integers_is_refused(model_dir: Path, tmp_path: Path, dtype: str) -> None:
    # the sample: an I32 header where F32 is expected loaded and predicted θ_D 386 K instead of 419 K
    path = _copy(model_dir, tmp_path / "m")
    file = path / "model.safetensors"
    name = _first_float_tensor(file)
    size = {"I32": 4, "U32": 4, "I64": 8, "I16": 2, "U8": 1, "BOOL": 1}[dtype]

    def edit(h: dict) -> None:
        shape = h[name]["shape"]
        n = 1
        for d in shape:
            n *= d
        begin = h[name]["data_offsets"][0]
        if size == 4:
            h[name]["dtype"] = dtype
        else:  # keep the byte count: a different shape with the new element size
            total = n * 4
            if total % size:
                pytest.skip("the tensor's bytes do not divide into this dtype")
            h[name]["dtype"] = dtype
            h[name]["shape"] = [total // size]
        assert h[name]["data_offsets"][1] - begin == n * 4

    _rewrite_header(file, edit)
    with pytest.raises(CheckpointError, match=rf"model\.safetensors.*(tensor '{name}' is {dtype}|{name})"):
        _load(path)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused(model_dir: Path, tmp_path: Path, value: float) -> None:
    # (no built-in head has tensors; head.safetensors goes through the same check_tensor_files)
    from safetensors.torch import load_file, save_file

    path = _copy(model_dir, tmp_path / "m")
    file = path / "model.safetensors"
    tensors = load_file(str(file))
    name = sorted(k for k, v in tensors.items() if v.is_floating_point())[0]
    tensors[name] = tensors[name].clone().reshape(-1)
    tensors[name][0] = value
    tensors[name] = tensors[name].reshape(load_file(str(file))[name].shape)
    save_file(tensors, str(file))
    with pytest.raises(CheckpointError, match="NaN or infinite weights"):
        _load(path)


@pytest.mark.parametrize(("key", "value", "match"), [
    ("order", 20000, "head.order"),  # the sample: MemoryError at predict
    ("order", 1, "head.order"),
    ("order", "many", "head.order"),
    ("observables", ["cv", "nonsense"], "no observable .nonsense."),
    ("no_such_parameter", 1, "no_such_parameter"),
])
def test_head_parameters_beyond_the_config_bounds_are_refused(model_dir: Path, tmp_path: Path, key: str,
                                                             value: object, match: str) -> None:
    path = _copy(model_dir, tmp_path / "m")
    info = json.loads((path / "head.json").read_text())
    info["config"][key] = value
    (path / "head.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match=rf"head\.json.*{match}"):
        _load(path)


def test_head_config_that_is_not_an_object_is_refused(model_dir: Path, tmp_path: Path) -> None:
    path = _copy(model_dir, tmp_path / "m")
    info = json.loads((path / "head.json").read_text())
    info["config"] = [1, 2]
    (path / "head.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match=r"head\.json.*'config' must be a JSON object"):
        _load(path)


def test_a_plain_bert_config_is_refused_at_load(model_dir: Path, tmp_path: Path) -> None:
    # the sample: a plain BERT config.json loaded without complaint and failed at predict
    path = _copy(model_dir, tmp_path / "m")
    cfg = json.loads((path / "config.json").read_text())
    cfg["model_type"] = "bert"
    cfg["architectures"] = ["BertModel"]
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"config\.json: model_type 'bert' is not a cloudphys encoder"):
        _load(path)


@pytest.mark.parametrize(("key", "value"), [
    ("hidden_size", 10**7), ("num_hidden_layers", 100_000), ("intermediate_size", 10**9),
    ("max_position_embeddings", 10**8), ("vocab_size", 10**9), ("latent_mlp", 10**8), ("hidden_size", -4),
    ("hidden_dropout_prob", 1.5), ("num_hidden_layers", "four"),
])
def test_encoder_sizes_beyond_the_config_bounds_are_refused_before_building(
        model_dir: Path, tmp_path: Path, key: str, value: object) -> None:
    path = _copy(model_dir, tmp_path / "m")
    cfg = json.loads((path / "config.json").read_text())
    cfg[key] = value
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=rf"config\.json: .*{key}"):
        _load(path)


def test_latents_the_head_does_not_read_are_a_checkpoint_error(model_dir: Path, tmp_path: Path) -> None:
    path = _copy(model_dir, tmp_path / "m")
    cfg = json.loads((path / "config.json").read_text())
    cfg["latents"][0]["name"] = "theta_X"
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="config.json does not fit .*head.json"):
        _load(path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dtype=st.sampled_from(["I8", "U8", "I16", "U16", "I32", "U32", "I64", "U64", "BOOL"]),
       pick=st.integers(0, 10**6))
def test_any_tensor_read_as_any_integer_dtype_is_refused(model_dir: Path, tmp_path_factory, dtype: str,
                                                         pick: int) -> None:
    """Property: whichever float tensor of the encoder or head is relabelled with whichever integer dtype
    (bytes kept, shape adjusted), loading fails with a CheckpointError naming the file."""
    path = _copy(model_dir, tmp_path_factory.mktemp("prop") / "m")
    files = [f for f in (path / "model.safetensors", path / "head.safetensors") if f.exists()]
    file = files[pick % len(files)]
    raw = file.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    names = sorted(k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32")
    name = names[pick % len(names)]
    size = {"I8": 1, "U8": 1, "BOOL": 1, "I16": 2, "U16": 2, "I32": 4, "U32": 4, "I64": 8, "U64": 8}[dtype]
    begin, end = header[name]["data_offsets"]
    if (end - begin) % size:
        return
    header[name]["dtype"] = dtype
    header[name]["shape"] = header[name]["shape"] if size == 4 else [(end - begin) // size]
    _rewrite_header(file, lambda h: h.update(header))
    with pytest.raises(CheckpointError, match=file.name):
        _load(path)


# -- ensembles --------------------------------------------------------------------------------------------

def _ensemble(root: Path, model_dir: Path, members: list[str], dirs: dict[str, Path]) -> Path:
    root.mkdir()
    for name, src in dirs.items():
        shutil.copytree(src, root / name / "model")
    (root / "ensemble.json").write_text(json.dumps({"format": 2, "members": members, "seeds": list(range(len(members))),
                                                    "complete": members}))
    return root


@pytest.fixture(scope="module")
def second_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cloudphys.training import build_model

    torch.manual_seed(1)
    model = build_model(load_config(TINY))
    path = tmp_path_factory.mktemp("second") / "model"
    model.save_pretrained(path)
    return path


@pytest.mark.parametrize("members", [["member-0"] * 3, ["member-0", "./member-0"], ["member-0", "member-0/"],
                                     ["member-0", "member-1", "member-0"]])
def test_an_ensemble_naming_one_member_twice_is_refused(model_dir: Path, second_model: Path, tmp_path: Path,
                                                        members: list[str]) -> None:
    # the sample: ensemble.json naming one member three times gave a spread of exactly 0
    from cloudphys.modeling import load_core as load_model

    path = _ensemble(tmp_path / "ens", model_dir, members, {"member-0": model_dir, "member-1": second_model})
    with pytest.raises(CheckpointError, match=r"ensemble\.json: member .* is listed twice"):
        load_model(path)


def test_an_ensemble_of_copies_or_links_is_refused(model_dir: Path, second_model: Path, tmp_path: Path) -> None:
    from cloudphys.modeling import load_core as load_model

    copies = _ensemble(tmp_path / "copies", model_dir, ["member-0", "member-1"],
                       {"member-0": model_dir, "member-1": model_dir})
    with pytest.raises(CheckpointError, match="member member-1 holds the same encoder weights as member member-0"):
        load_model(copies)
    linked = _ensemble(tmp_path / "linked", model_dir, ["member-0", "member-1"], {"member-0": model_dir})
    (linked / "member-1").symlink_to(linked / "member-0")
    with pytest.raises(CheckpointError, match="member member-1 is the same directory as member member-0"):
        load_model(linked)
    good = _ensemble(tmp_path / "good", model_dir, ["member-0", "member-1"],
                     {"member-0": model_dir, "member-1": second_model})
    assert len(load_model(good).encoder.members) == 2
