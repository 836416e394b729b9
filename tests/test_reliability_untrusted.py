"""Reliability guarantee 4: nothing cloudphys loads is unpickled or executed.

Weights are safetensors, configs and metadata JSON/YAML/TOML read with safe loaders, there is no
``eval``; a config names plugins only through the registry of installed plugins, never a module path.
Planted pickles, malicious YAML tags and remote-code hooks are refused and their payloads never run.
See docs/reliability.md.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from cloudphys.cli import main
from cloudphys.config import load_config, read_config_file
from cloudphys.errors import CheckpointError, ConfigError

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

REPO = Path(__file__).resolve().parents[1]
TINY: dict[str, Any] = {
    "encoder": {"name": "scope-bert", "hidden_size": 16, "num_layers": 1, "num_heads": 2},
    "head": {"name": "debye", "observables": ["cv"]},
    "train": {"epochs": 1, "lr": 1.0e-3, "device": "cpu", "progress": "false"},
}


class _Payload:
    """Unpickling this creates the marker directory: proof that a pickle was (not) loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.makedirs, (str(self.marker),))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cloudphys.training import build_model

    torch.manual_seed(0)
    model = build_model(load_config(TINY))
    path = tmp_path_factory.mktemp("clean") / "model"
    model.save_pretrained(path)
    return path


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("name", ["pytorch_model.bin", "optimizer.pt", "rng_state.pth", "head.pkl",
                                  "training_args.bin"])
@pytest.mark.parametrize("keep_safetensors", [True, False])
def test_planted_pickle_in_a_checkpoint_is_refused_and_never_unpickled(
    model_dir: Path, tmp_path: Path, name: str, keep_safetensors: bool
) -> None:
    from cloudphys.training import ScopePhysicsModel

    marker = tmp_path / "PAYLOAD_RAN"
    path = _copy(model_dir, tmp_path / "model")
    if name == "pytorch_model.bin":  # a real torch.save checkpoint with a payload inside
        state = {"weights": torch.zeros(2), "payload": _Payload(marker)}
        torch.save(state, path / name)
    else:
        (path / name).write_bytes(pickle.dumps(_Payload(marker)))
    if not keep_safetensors:
        (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=rf"contains pickle-based file\(s\) {name}.*never unpickles"):
        ScopePhysicsModel.from_pretrained(path)
    assert not marker.exists()


def test_pickle_in_a_run_is_refused_by_resume_evaluate_and_predict(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    marker = tmp_path / "PAYLOAD_RAN"
    run = tmp_path / "run"
    _copy(model_dir, run / "model")
    _copy(model_dir, run / "last")
    (run / "last" / "optimizer.pt").write_bytes(pickle.dumps(_Payload(marker)))
    (run / "model" / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    src = tmp_path / "in.csv"
    src.write_text("id,scope,n_atoms,cv,split\nnacl,-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5,2,45.0,train\n"
                   "cu,-F 4 2 3 | 4a | Cu 1.0,1,24.0,val\n")
    cfg = tmp_path / "cfg.yaml"
    data = {"name": "csv", "path": str(src), "targets": {"cv": "cv"}, "temperature": 300}
    cfg.write_text(yaml.safe_dump({**TINY, "data": data}))
    for argv in (["train", str(cfg), "--out", str(run), "--resume"],
                 ["evaluate", str(run)],
                 ["predict", str(run), "-i", str(src), "-o", str(tmp_path / "out.csv")]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert "pickle-based file" in err and "never unpickles" in err, (argv, err)
    assert not marker.exists() and not (tmp_path / "out.csv").exists()


def test_pretrained_encoder_with_a_pickle_is_refused(model_dir: Path, tmp_path: Path) -> None:
    from cloudphys.encoders.pretrained import load_pretrained_bert
    from cloudphys.tokenizer import build_tokenizer

    marker = tmp_path / "PAYLOAD_RAN"
    path = _copy(model_dir, tmp_path / "pretrained")
    (path / "model.safetensors").unlink()
    (path / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CheckpointError, match="pickle-based file"):
        load_pretrained_bert(path, build_tokenizer().get_vocab())
    assert not marker.exists()


def test_remote_code_in_a_model_config_is_never_imported(model_dir: Path, tmp_path: Path) -> None:
    from cloudphys.training import ScopePhysicsModel

    marker = tmp_path / "CODE_RAN"
    path = _copy(model_dir, tmp_path / "model")
    cfg = json.loads((path / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "evil_code.EvilConfig", "AutoModel": "evil_code.EvilModel"}
    (path / "config.json").write_text(json.dumps(cfg))
    (path / "evil_code.py").write_text(f"import os\nos.makedirs({str(marker)!r})\n")
    model = ScopePhysicsModel.from_pretrained(path)
    assert type(model.encoder).__module__ == "cloudphys.encoders.bert"
    assert not marker.exists() and "evil_code" not in sys.modules


# -- YAML / configs -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "tagged",
    [
        "!!python/object/apply:os.makedirs [{marker}]",
        "!!python/object/new:os.makedirs [{marker}]",
        "!!python/name:os.system",
        "!!python/object:cloudphys.config.TrainConfig {{epochs: 1}}",
        "!!python/module:os",
    ],
)
def test_malicious_yaml_tags_are_refused(tmp_path: Path, tagged: str) -> None:
    marker = tmp_path / "TAG_RAN"
    text = tagged.format(marker=json.dumps(str(marker)))
    path = tmp_path / "evil.yaml"
    path.write_text(f"encoder: {{name: scope-bert}}\nhead: {{name: debye}}\ntrain: {text}\n")
    with pytest.raises(ConfigError, match=r"cannot parse config .*evil.yaml.*python/"):
        load_config(path)
    with pytest.raises(ConfigError, match="python/"):
        read_config_file(path)
    with pytest.raises(ConfigError, match="cannot read value"):  # the same tag in a -s override
        load_config(TINY, overrides=[f"train.lr={text}"])
    assert not marker.exists()


def test_a_config_cannot_import_code_only_name_installed_plugins(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "IMPORTED"
    (tmp_path / "evil_plugin_module.py").write_text(
        f"import os\nos.makedirs({str(marker)!r})\nclass Head: pass\ndef factory(**kw): return Head()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for section in ("encoder", "head", "data"):
        for name in ("evil_plugin_module", "evil_plugin_module:Head", "evil_plugin_module.factory", "os.system"):
            cfg = copy.deepcopy(TINY)
            cfg[section] = {"name": name}
            with pytest.raises(ConfigError, match=rf"unknown {section} '{name}'; available: "):
                load_config(cfg)
    assert not marker.exists() and "evil_plugin_module" not in sys.modules


# -- the source itself ------------------------------------------------------------------------------------

UNSAFE_CALLS = {
    ("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("torch", "load"), ("marshal", "loads"),
    ("marshal", "load"), ("dill", "load"), ("dill", "loads"), ("joblib", "load"), ("cloudpickle", "load"),
    ("cloudpickle", "loads"), ("shelve", "open"), ("yaml", "load"), ("yaml", "unsafe_load"), ("yaml", "full_load"),
    ("yaml", "load_all"), ("yaml", "unsafe_load_all"), ("yaml", "full_load_all"),
}
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
# importlib is used only to register plugins: the built-in module names of DEFAULT_PLUGINS (constants) and
# lazily-imported submodules of cloudphys.testing -- never a name that comes from a config.
IMPORT_MODULE_ALLOWED = {"cloudphys/plugins.py", "cloudphys/testing/__init__.py"}


def _python_sources() -> list[Path]:
    files = sorted((REPO / "cloudphys").rglob("*.py"))
    if (REPO / "plugins").is_dir():
        files += sorted(p for p in (REPO / "plugins").rglob("*.py") if "tests" not in p.parts)
    return files


def _unsafe(rel: str, text: str) -> list[str]:
    """Unsafe loading/execution in one source file: pickle-family imports and loads, eval/exec, unsafe
    YAML loaders, numpy pickles, computed imports, remote code or non-safetensors weights."""
    problems = []
    for node in ast.walk(ast.parse(text, filename=rel)):
        if isinstance(node, ast.Import):
            problems += [f"{rel}:{node.lineno} import {a.name}" for a in node.names
                         if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            problems.append(f"{rel}:{node.lineno} from {node.module} import ...")
        elif isinstance(node, ast.Call):
            fn = node.func
            if isinstance(fn, ast.Name) and fn.id in ("eval", "exec", "compile"):
                problems.append(f"{rel}:{node.lineno} {fn.id}()")
            if (isinstance(fn, ast.Name) and fn.id == "__import__"
                    and not all(isinstance(a, ast.Constant) for a in node.args)):
                problems.append(f"{rel}:{node.lineno} __import__ of a computed name")
            if isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name):
                if (fn.value.id, fn.attr) in UNSAFE_CALLS:
                    problems.append(f"{rel}:{node.lineno} {fn.value.id}.{fn.attr}()")
                if fn.attr == "import_module" and rel not in IMPORT_MODULE_ALLOWED:
                    problems.append(f"{rel}:{node.lineno} importlib.import_module()")
                if fn.attr == "load" and fn.value.id in ("np", "numpy") and any(
                        k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                        for k in node.keywords):
                    problems.append(f"{rel}:{node.lineno} numpy.load(allow_pickle=...)")
            if isinstance(fn, ast.Attribute) and fn.attr == "from_pretrained":
                for k in node.keywords:
                    if k.arg == "trust_remote_code" and not (
                            isinstance(k.value, ast.Constant) and k.value.value is False):
                        problems.append(f"{rel}:{node.lineno} from_pretrained(trust_remote_code=...)")
                    if k.arg == "use_safetensors" and not (isinstance(k.value, ast.Constant) and k.value.value is True):
                        problems.append(f"{rel}:{node.lineno} from_pretrained(use_safetensors=...)")
    return problems


def test_source_has_no_pickle_eval_exec_or_unsafe_loader() -> None:
    problems = []
    for path in _python_sources():
        problems += _unsafe(path.relative_to(REPO).as_posix(), path.read_text(encoding="utf-8"))
    assert not problems, "unsafe loading in the package:\n" + "\n".join(problems)


def test_the_source_check_catches_unsafe_code() -> None:
    bad = """
import pickle
from dill import loads
import numpy as np, torch, yaml, importlib
from transformers import AutoModel
eval("1 + 1")
exec("x = 1")
torch.load("w.pt")
yaml.load(open("c.yaml"))
yaml.unsafe_load("a: 1")
np.load("a.npy", allow_pickle=True)
__import__(name)
importlib.import_module(config["head"])
AutoModel.from_pretrained(path, trust_remote_code=True, use_safetensors=False)
"""
    found = _unsafe("cloudphys/evil.py", bad)
    for needle in ("import pickle", "from dill", "eval()", "exec()", "torch.load()", "yaml.load()",
                   "yaml.unsafe_load()",
                   "numpy.load(allow_pickle", "__import__", "importlib.import_module()", "trust_remote_code",
                   "use_safetensors"):
        assert any(needle in p for p in found), needle
    assert _unsafe("cloudphys/ok.py", "import yaml\nyaml.safe_load('a: 1')\nnp.load('a.npy')\n") == []


def test_model_weight_loads_insist_on_safetensors() -> None:
    """Every ``<Model>.from_pretrained`` of weights in the package passes ``use_safetensors=True``."""
    missing = []
    for path in _python_sources():
        rel = path.relative_to(REPO).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "from_pretrained"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id not in (
                        "PreTrainedTokenizerFast", "AutoTokenizer", "AutoConfig", "cls", "ScopePhysicsModel")
                    and not any(k.arg == "use_safetensors" for k in node.keywords)):
                missing.append(f"{rel}:{node.lineno} {node.func.value.id}.from_pretrained")
    assert not missing, "weights loaded without use_safetensors=True:\n" + "\n".join(missing)


# -- structure inputs: data never runs code (issue 13, class 3) -----------------------------------

CANARY = "cloudphys_canary_module"


@pytest.fixture()
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real module on ``sys.path``: importing it, or calling its ``from_dict``, creates a marker."""
    lib = tmp_path / "lib"
    lib.mkdir()
    marker = tmp_path / "CANARY_RAN"
    (lib / f"{CANARY}.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('imported')\n"
        "class Evil:\n"
        "    @classmethod\n"
        "    def from_dict(cls, d):\n"
        f"        pathlib.Path({str(marker)!r}).write_text('from_dict called')\n"
        "        return 1.0\n"
    )
    monkeypatch.syspath_prepend(str(lib))
    sys.modules.pop(CANARY, None)
    yield marker
    sys.modules.pop(CANARY, None)


def _tainted_structure() -> dict[str, Any]:
    from pymatgen.core import Lattice, Structure

    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    d = nacl.as_dict()
    evil = {"@module": CANARY, "@class": "Evil", "@version": None, "x": 1}
    d["properties"] = {"note": evil}
    for site in d["sites"]:
        site["properties"] = {"magmom": 0.0, "evil": dict(evil), "nested": {"deep": [dict(evil)]}}
        site["species"][0]["@module"] = CANARY
    return d


def test_the_canary_is_real(canary: Path) -> None:
    """pymatgen's own reader does import the module named in the data (so the tests below mean something)."""
    from pymatgen.core import Structure

    Structure.from_dict(_tainted_structure())
    assert canary.exists()


def test_scope_command_never_imports_code_named_in_structure_files(canary: Path, tmp_path: Path) -> None:
    d = _tainted_structure()
    folder = tmp_path / "found"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "tainted.json").write_text(json.dumps(d))
    single = tmp_path / "tainted.json"
    single.write_text(json.dumps(d))
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([d, d]))
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text(json.dumps({"id": "t", "structure": d}) + "\n")
    csv_path = tmp_path / "rows.csv"
    import csv as csv_mod

    with open(csv_path, "w", newline="") as fh:
        w = csv_mod.writer(fh)
        w.writerow(["id", "structure"])
        w.writerow(["t", json.dumps(d)])
    out = tmp_path / "out.csv"
    assert main(["scope", str(single), str(folder), str(listed), str(jsonl), str(csv_path), "-o", str(out),
                 "--no-progress"]) == 0
    rows = out.read_text().splitlines()[1:]
    assert len(rows) == 6 and all("-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5" in r for r in rows), rows
    assert not canary.exists() and CANARY not in sys.modules


def test_python_readers_never_import_code_named_in_data(canary: Path, tmp_path: Path) -> None:
    from cloudphys.data.labels import read_structure
    from cloudphys.inputs import read_inputs, to_records
    from cloudphys.scope import StructureError, from_structure

    d = _tainted_structure()
    path = tmp_path / "tainted.json"
    path.write_text(json.dumps(d))
    items = read_inputs([path, d, {"id": "x", "structure": d}])
    to_records(items, dialect="default", cache=False)
    assert [it.error for it in items] == [None, None, None]
    structures = [it.structure for it in items]  # the pymatgen objects, built from plain values
    assert all(len(s) == 8 and s.site_properties["evil"][0]["@module"] == CANARY for s in structures)
    assert len(read_structure(path)) == 8 and len(read_structure(d)) == 8
    with pytest.raises(StructureError, match="plain data"):
        from_structure(path)  # the scope package's path reader refuses JSON instead of decoding it
    assert not canary.exists() and CANARY not in sys.modules


def test_predict_never_imports_code_named_in_structure_files(canary: Path, tmp_path: Path, model_dir: Path) -> None:
    d = _tainted_structure()
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "tainted.json").write_text(json.dumps(d))
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text(json.dumps({"id": "t", "structure": d}) + "\n")
    out = tmp_path / "pred.csv"
    rc = main(["predict", str(model_dir), "-i", str(folder), str(jsonl), "-T", "300", "-o", str(out),
               "--device", "cpu"])
    assert rc == 0 and out.exists()
    assert not canary.exists() and CANARY not in sys.modules


def test_a_jsonl_data_set_never_imports_code_named_in_its_rows(canary: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudphys.data.thermo_jsonl import load_thermo_jsonl

    monkeypatch.setenv("CLOUDPHYS_CACHE", str(tmp_path / "cache"))
    grid = [0.0, 300.0]
    row = {"id": "t", "n_atoms": 8, "structure": _tainted_structure(), "temperatures_K": grid,
           "cv": [0.0, 1.0], "s": [0.0, 1.0], "u": [1.0, 2.0], "f": [1.0, 0.0]}
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(row) + "\n")
    ex = load_thermo_jsonl("all", path=str(path))
    assert ex.scope == ["-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5"]
    assert not canary.exists() and CANARY not in sys.modules


def test_ase_files_never_import_code_named_in_them(canary: Path, tmp_path: Path) -> None:
    """ASE's JSON database and trajectory headers are decoded without ase's object decoder picking
    classes from the data (cloudphys reads numbers, positions, cell, pbc and magmoms only)."""
    from ase.build import bulk
    from ase.io import write

    from cloudphys.inputs import read_inputs, to_records

    atoms = bulk("NaCl", "rocksalt", a=5.64)
    db = tmp_path / "atoms.json"
    write(str(db), atoms, format="json")
    doc = json.loads(db.read_text())
    doc["1"]["key_value_pairs"] = {"evil": {"@module": CANARY, "@class": "Evil"}}
    doc["1"]["data"] = {"__ase_objtype__": "nonsense", "@module": CANARY}
    db.write_text(json.dumps(doc))
    traj = tmp_path / "atoms.traj"
    write(str(traj), [atoms, atoms])
    items = read_inputs([db, traj])
    to_records(items, dialect="default", cache=False)
    assert [it.error for it in items] == [None, None, None] and len({it.scope for it in items}) == 1
    assert not canary.exists() and CANARY not in sys.modules


def test_source_never_decodes_structures_with_monty() -> None:
    """No module of the package hands data to monty's decoder or pymatgen's ``from_dict``/JSON readers."""
    problems = []
    for path in _python_sources():
        rel = path.relative_to(REPO).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Name) and node.id in ("MontyDecoder", "loadfn"):
                problems.append(f"{rel}:{node.lineno} {node.id}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "from_dict"
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in ("Structure", "IStructure", "Lattice", "PeriodicSite", "Site", "Species",
                                               "Composition", "Molecule", "Atoms")):
                problems.append(f"{rel}:{node.lineno} {node.func.value.id}.from_dict")
    assert not problems, "data decoded through code-running readers:\n" + "\n".join(problems)


def test_a_phonopy_yaml_structure_never_runs_code(tmp_path: Path) -> None:
    """phonopy's ``read_cell_yaml`` parses with PyYAML's full ``Loader`` (``!!python/object/apply``
    runs); cloudphys reads phonopy.yaml cells with ``yaml.safe_load``, and a legitimate one still reads."""
    pytest.importorskip("phonopy")
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    from cloudphys.data.labels import read_structure
    from cloudphys.errors import DataError

    marker = tmp_path / "PWNED"
    evil = tmp_path / "phonopy.yaml"
    evil.write_text("unit_cell:\n  lattice:\n  - [5, 0, 0]\n  - [0, 5, 0]\n  - [0, 0, 5]\n  points:\n"
                    f"  - symbol: !!python/object/apply:os.makedirs [{str(marker)!r}]\n    coordinates: [0, 0, 0]\n")
    with pytest.raises(DataError, match="not plain YAML"):
        read_structure(evil)
    assert not marker.exists()
    cell = PhonopyAtoms(symbols=["Na", "Cl"], cell=[[0, 2.82, 2.82], [2.82, 0, 2.82], [2.82, 2.82, 0]],
                        scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]])
    good = tmp_path / "good" / "phonopy.yaml"
    good.parent.mkdir()
    Phonopy(cell, supercell_matrix=[[1, 0, 0], [0, 1, 0], [0, 0, 1]]).save(str(good))
    st = read_structure(good)
    assert [str(sp) for sp in st.species] == ["Na", "Cl"] and abs(st.volume - cell.volume) < 1e-6
