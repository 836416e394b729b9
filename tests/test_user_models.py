"""Pretrained-model registry, packaging, checksums, the user's Model (predict for every input kind),
the differentiable path and the ``predict`` / ``models`` CLI -- on a tiny untrained 2-member ensemble."""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from cloudphys import hookimpl
from cloudphys.errors import CheckpointError, DataError
from cloudphys.plugins import DEFAULT_PLUGINS, Registry, make_plugin_manager

TINY = {
    "encoder": {"name": "scope-bert", "hidden_size": 16, "num_layers": 1, "num_heads": 2,
                "composition_features": True},
    "head": {"name": "debye", "observables": ["cv"]},
    "data": {"name": "cloud-cv"},
}


def _structures(tmp: Path) -> dict[str, object]:
    from pymatgen.core import Lattice, Structure

    mgo = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.21), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    cu = Structure.from_spacegroup("Fm-3m", Lattice.cubic(3.61), ["Cu"], [[0, 0, 0]])
    mgo.to(filename=str(tmp / "mgo.cif"))
    return {"mgo": mgo, "cu": cu}


@pytest.fixture(scope="module")
def tiny_ensemble(tmp_path_factory) -> Path:
    """An ensemble run directory of two freshly initialised members (different seeds)."""
    from cloudphys.modeling.format import write_manifest
    from cloudphys.modeling.model import build_model

    root = tmp_path_factory.mktemp("tiny-ens")
    for k in range(2):
        torch.manual_seed(k)
        build_model(TINY).save_pretrained(root / f"member-{k}")
    write_manifest(root, ["member-0", "member-1"], [0, 1], ["member-0", "member-1"])
    return root


@pytest.fixture(scope="module")
def shipped(tiny_ensemble, tmp_path_factory) -> Path:
    from cloudphys.models.package import package_model

    out = tmp_path_factory.mktemp("ship") / "tiny-debye"
    return package_model(tiny_ensemble, out, name="tiny-debye", card="# tiny-debye\n\nA test model.\n",
                         meta={"summary": "tiny test model", "licence": "MIT"},
                         calibration={"scale": 2.0, "level": 0.9, "fitted_on": "val"})


def _registry_with(folder: Path) -> Registry:
    """A fresh registry: the built-in plugins plus a test plugin shipping ``folder``."""
    from cloudphys.models.registry import spec_from_folder

    class ShipsAModel:
        @hookimpl
        def register_models(self, register):
            register(spec_from_folder(folder))

    pm = make_plugin_manager([*DEFAULT_PLUGINS, ShipsAModel()], entry_points=False)
    return Registry(pm)


def test_plugin_ships_a_model_and_it_loads_offline(shipped, monkeypatch) -> None:
    from cloudphys.models import list_models, load_model

    reg = _registry_with(shipped)
    assert "tiny-debye" in list_models(reg)
    assert reg.owner("models", "tiny-debye") not in (None, "cloudphys.models.builtin")

    def no_network(*a, **k):
        raise AssertionError("network access during load_model")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    m = load_model("tiny-debye", registry=reg)
    assert m.is_ensemble and m.members == 2 and m.calibration["scale"] == 2.0
    assert "tiny test model" not in m.card and "A test model" in m.card


def test_float16_storage_loads_as_float32_and_predicts_like_the_run(tiny_ensemble, shipped) -> None:
    from cloudphys.models import load_model

    full = load_model(str(tiny_ensemble))
    half = load_model(str(shipped))
    assert all(p.dtype == torch.float32 for p in half.core.parameters())
    sizes = {f.name: f.stat().st_size for f in (shipped / "member-0").glob("model.safetensors")}
    assert sizes["model.safetensors"] < 0.6 * (tiny_ensemble / "member-0" / "model.safetensors").stat().st_size
    scope = "0 4 b O O O c O O O d O O O l O O O 0 | 1a 3d 4e | Ta 0.12 Cu 0.38 S 0.5"
    a = full.predict([scope], [100.0, 300.0]).observables["cv"]
    b = half.predict([scope], [100.0, 300.0]).observables["cv"]
    np.testing.assert_allclose(b, a, rtol=2e-3)


def test_format_round_trip_float32_is_exact(tiny_ensemble, tmp_path) -> None:
    from cloudphys.models import load_model
    from cloudphys.models.package import package_model

    out = package_model(tiny_ensemble, tmp_path / "f32", name="f32", card="# f32\n", dtype="float32")
    scope = "0 4 b O O O c O O O d O O O l O O O 0 | 1a 3d 4e | Ta 0.12 Cu 0.38 S 0.5"
    a = load_model(str(tiny_ensemble)).predict(scope, [5.0, 300.0, 1000.0])
    b = load_model(str(out)).predict(scope, [5.0, 300.0, 1000.0])
    for o in ("u", "cv", "s", "f"):
        np.testing.assert_array_equal(a.observables[o], b.observables[o])
    np.testing.assert_array_equal(a.member_std["theta_D"], b.member_std["theta_D"])


@pytest.mark.parametrize("tamper", ["modify", "delete", "add"])
def test_checksum_refusal(shipped, tmp_path, tamper) -> None:
    import shutil

    from cloudphys.models import load_model

    copy = tmp_path / "copy"
    shutil.copytree(shipped, copy)
    target = copy / "member-1" / "model.safetensors"
    if tamper == "modify":
        data = bytearray(target.read_bytes())
        data[-5] ^= 0xFF
        target.write_bytes(bytes(data))
    elif tamper == "delete":
        (copy / "member-1" / "head.json").unlink()
    else:
        (copy / "member-1" / "extra.safetensors").write_bytes(b"x")
    reg = _registry_with(copy)
    with pytest.raises(CheckpointError, match="failed verification"):
        load_model("tiny-debye", registry=reg)
    with pytest.raises(CheckpointError, match="failed verification"):  # a path with SHA256SUMS is verified too
        load_model(str(copy))


def test_unknown_name_lists_the_models() -> None:
    from cloudphys.models import load_model

    with pytest.raises(CheckpointError, match="neither a registered model"):
        load_model("no-such-model-xyz")


def test_predict_every_input_kind(shipped, tmp_path) -> None:
    from pymatgen.io.ase import AseAtomsAdaptor

    from cloudphys.models import load_model

    s = _structures(tmp_path)
    atoms = AseAtomsAdaptor.get_atoms(s["cu"])
    scope = "0 4 b O O O c O O O d O O O l O O O 0 | 1a 3d 4e | Ta 0.12 Cu 0.38 S 0.5"
    m = load_model(str(shipped))
    for one in (s["mgo"], atoms, str(tmp_path / "mgo.cif"), scope):
        p = m.predict(one, temperatures=[50, 300])
        assert len(p) == 1 and not p.errors, p.errors
        for o in ("u", "cv", "s", "f"):
            assert np.all(np.isfinite(p[0].values(o))) and p[0].std(o) is not None
    p = m.predict([s["mgo"], atoms, tmp_path / "mgo.cif", scope, "missing.cif"], temperatures=[300])
    assert len(p) == 5 and len(p.errors) == 1 and p[4].error == "no such file or folder" and p[4].name == "missing.cif"
    assert [s.name for s in p][:2] == ["MgO", "Cu"]  # in-memory structures: their reduced formula as id
    assert p[3].n_atoms is None and np.isnan(p[3].values("cv", "cell")).all()  # SCOPE string: per atom only
    # the same crystal (MgO from a Structure and from its CIF) gives the same per-atom answer
    np.testing.assert_allclose(p[0].values("cv"), p[2].values("cv"), rtol=1e-6)
    # Cv bounded by Dulong-Petit per atom, spreads calibrated by the stored scale (2.0)
    assert 0 <= p[1].values("cv")[0] <= 3 * 8.314462618 + 1e-6
    np.testing.assert_allclose(p.std("cv"), 2.0 * p.member_std["cv"])
    text = repr(p)
    assert "theta_D" in text and "missing.cif" in text


def test_predict_structure_and_differentiable_path(shipped, tmp_path) -> None:
    from cloudphys.models import load_model

    s = _structures(tmp_path)
    m = load_model(str(shipped))
    one = m.predict_structure(s["mgo"], [300.0])
    assert one.name and one.values("cv").shape == (1,)
    batch = m.tensors([s["mgo"], s["cu"]])
    T = torch.tensor([100.0, 300.0], requires_grad=True)
    obs, lat = m.forward_tensors(batch, T)
    assert obs["u"].shape == (2, 2) and lat["theta_D"].requires_grad
    (du_dT,) = torch.autograd.grad(obs["u"].sum(), T)
    # Cv = dU/dT through autograd, summed over the batch
    np.testing.assert_allclose(du_dT.numpy(), obs["cv"].sum(0).detach().numpy(), rtol=1e-3)
    lat["theta_D"].sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.core.parameters())
    with pytest.raises(DataError, match="cannot encode"):
        m.tensors(["missing.cif"])


def _cli(argv, monkeypatch, capsys, registry=None):
    from cloudphys.cli import main

    if registry is not None:
        monkeypatch.setattr("cloudphys.plugins.get_registry", lambda: registry)
    rc = main(argv)
    return rc, capsys.readouterr()


def test_cli_predict_exit_codes_csv_yaml_and_plot(shipped, tmp_path, monkeypatch, capsys) -> None:
    pytest.importorskip("matplotlib")
    _structures(tmp_path)
    good, bad = str(tmp_path / "mgo.cif"), str(tmp_path / "nope.cif")
    out = tmp_path / "out.csv"
    rc, cap = _cli(["predict", "--model", str(shipped), "--input", good, "-T", "5:1000:5", "-o", str(out),
                    "--plot", str(tmp_path / "p.png"), "--phonopy-yaml", str(tmp_path / "yaml")], monkeypatch, capsys)
    assert rc == 0, cap.err
    lines = out.read_text().splitlines()
    assert lines[0].startswith("id,source,scope,")  # header first; the metadata is in out.csv.json
    assert json.loads((tmp_path / "out.csv.json").read_text())["format"] == "cloudphys-prediction"
    rows = list(csv.DictReader(lines))
    assert len(rows) == 200 and "cv_std_J_per_K_mol_atom" in rows[0] and "u_lo90_J_per_mol_cell" in rows[0]
    assert (tmp_path / "p.png").stat().st_size > 0
    assert (tmp_path / "yaml" / "mgo.cif" / "thermal_properties.yaml").is_file()

    rc, cap = _cli(["predict", "--model", str(shipped), "--input", good, bad, "-o", str(out)], monkeypatch, capsys)
    assert rc == 1 and "nope.cif" in cap.err
    assert sum(1 for r in csv.DictReader(out.read_text().splitlines()) if r["error"]) == 1
    assert "nope.cif: nope.cif" not in cap.err  # the path is said once
    rc, _ = _cli(["predict", "--model", str(shipped), "--input", good, bad, "-o", str(out), "--keep-going"],
                 monkeypatch, capsys)
    assert rc == 0
    rc, _ = _cli(["predict", "--model", str(shipped), "--input", bad, "-o", str(out), "--keep-going"],
                 monkeypatch, capsys)
    assert rc == 1  # nothing predicted
    rc, cap = _cli(["predict", "--model", str(shipped), "--input", good, "--dos", "-o", str(out)], monkeypatch, capsys)
    assert rc == 1 and cap.err.startswith("error:") and "density of states" in cap.err


def test_cli_plot_without_matplotlib_fails_before_any_work(shipped, tmp_path, monkeypatch, capsys) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    out = tmp_path / "o.csv"
    rc, cap = _cli(["predict", "--model", str(shipped), "--input", "x.cif", "-o", str(out), "--plot", "p.png"],
                   monkeypatch, capsys)
    assert rc == 1 and not out.exists()
    assert cap.err.count("\n") == 1 and cap.err.startswith("error:") and "matplotlib" in cap.err


def test_cli_models_list_and_info(shipped, monkeypatch, capsys) -> None:
    reg = _registry_with(shipped)
    monkeypatch.setattr("cloudphys.models._registry", lambda registry=None: reg)
    rc, cap = _cli(["models"], monkeypatch, capsys)
    assert rc == 0 and "tiny-debye" in cap.out and "2-member ensemble" in cap.out
    rc, cap = _cli(["models", "info", "tiny-debye", "--verify"], monkeypatch, capsys)
    assert rc == 0 and "A test model" in cap.out
    rc, cap = _cli(["models", "--json"], monkeypatch, capsys)
    assert any(d["name"] == "tiny-debye" for d in json.loads(cap.out))


def test_package_a_single_model_and_refuse_overwrite(tiny_ensemble, tmp_path) -> None:
    from cloudphys.models import load_model
    from cloudphys.models.package import package_model
    from cloudphys.models.registry import spec_from_folder

    out = package_model(tiny_ensemble / "member-0", tmp_path / "one", name="one", card="# one\n")
    spec = spec_from_folder(out)
    assert spec.members == 1 and spec.head == "debye"
    m = load_model(str(out))
    assert not m.is_ensemble
    p = m.predict("0 4 b O O O c O O O d O O O l O O O 0 | 1a 3d 4e | Ta 0.12 Cu 0.38 S 0.5", [300.0])
    assert p.member_std is None and p[0].std("cv") is None and "single model" in p.header()
    with pytest.raises(CheckpointError, match="exists"):
        package_model(tiny_ensemble / "member-0", out, name="one", card="# one\n")


def test_ensemble_predict_tokenizes_once_for_all_members(tiny_ensemble, monkeypatch) -> None:
    """The mean and every member read one tokenization; the spread equals members run one by one."""
    import cloudphys
    from cloudphys.inference import predict as pred_mod

    m = cloudphys.load_model(tiny_ensemble)
    tok = type(m.core.tokenizer)
    real = tok.__call__
    calls: list[int] = []

    def counting(self, texts, *a, **k):
        calls.append(len(texts))
        return real(self, texts, *a, **k)

    monkeypatch.setattr(tok, "__call__", counting)
    strings = ["-F 4 2 3 | 4a 4b | Mg 0.5 O 0.5", "-F 4 2 3 | 4a | Cu 1.0"]
    res = m.predict([(f"x{k}", s) for k, s in enumerate(strings)], temperatures=[100.0, 300.0])
    assert calls == [len(strings)]
    monkeypatch.setattr(tok, "__call__", real)
    def items():
        out = pred_mod.read_items(strings)
        for it in out:  # SCOPE strings describe no cell: Model.predict reads them per atom
            it.n_atoms = 1.0
        return out

    one_by_one = [pred_mod.predict_with_members(member, (), items(), np.array([100.0, 300.0, 0.0]))[0]
                  for member in m._members]
    std = np.std([p.latents["theta_D"] for p in one_by_one], axis=0, ddof=1)
    assert np.allclose(res.member_std["theta_D"], std, rtol=1e-6) and np.all(std > 0)  # raw members' std
    cv_std = np.std([p.observables["cv"][:, :-1] for p in one_by_one], axis=0, ddof=1)
    assert np.allclose(res.member_std["cv"], cv_std, rtol=1e-6)


def test_ensemble_members_encoders_run_once_per_batch(tiny_ensemble, monkeypatch) -> None:
    """Issue 21 §2: the mean latents and the spread come from one encoder pass per member and batch,
    and the numbers equal the members run one by one (mean-latent prediction unchanged too)."""
    import cloudphys
    from cloudphys.inference import predict as pred_mod

    m = cloudphys.load_model(tiny_ensemble)
    strings = ["-F 4 2 3 | 4a 4b | Mg 0.5 O 0.5", "-F 4 2 3 | 4a | Cu 1.0", "-F 4 2 3 | 4a | Al 1.0"]
    calls: list[int] = []
    for enc in m.core.encoder.members:
        real = enc.forward
        monkeypatch.setattr(enc, "forward", lambda *a, _real=real, **k: (calls.append(1), _real(*a, **k))[1])
    res = m.predict(strings, temperatures=[100.0, 300.0], batch_size=2)
    assert len(calls) == len(m.core.encoder.members) * 2  # 2 members x 2 batches, not twice that
    monkeypatch.undo()

    def items():
        out = pred_mod.read_items(strings)
        for it in out:
            it.n_atoms = 1.0
        return out

    T = np.array([100.0, 300.0, 0.0])
    whole = pred_mod.predict_with_members(m.core, (), items(), T, batch_size=2)[0]  # the ensemble forward alone
    np.testing.assert_array_equal(res.observables["cv"], whole.observables["cv"][:, :-1])
    np.testing.assert_array_equal(res.latents["theta_D"], whole.latents["theta_D"])


def test_threads_are_set_only_inside_the_call_and_restored(tiny_ensemble) -> None:
    import cloudphys
    from cloudphys.models.api import default_threads, default_workers

    m = cloudphys.load_model(tiny_ensemble)
    before = torch.get_num_threads()
    seen: list[int] = []
    real = m.core.head.forward

    def spy(*a, **k):
        seen.append(torch.get_num_threads())
        return real(*a, **k)

    m.core.head.forward = spy
    try:
        m.predict("-F 4 2 3 | 4a | Cu 1.0", [300.0], threads=1)
        assert seen and set(seen) == {1} and torch.get_num_threads() == before
        seen.clear()
        m.predict("-F 4 2 3 | 4a | Cu 1.0", [300.0])  # the library leaves torch's setting alone
        assert set(seen) == {before}
    finally:
        del m.core.head.forward
    assert default_threads(1) == 1 and 1 <= default_threads(10_000) <= 4
    assert default_workers(3) == 1 and 1 <= default_workers(10_000) <= 4
    with pytest.raises(DataError, match="threads"):
        m.predict("-F 4 2 3 | 4a | Cu 1.0", [300.0], threads=0)


def test_workers_keep_input_order_and_per_item_failures(shipped, tmp_path) -> None:
    from pymatgen.core import Lattice, Structure

    from cloudphys.models import load_model

    paths = []
    for k, a in enumerate(np.linspace(3.5, 4.5, 6)):
        s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(float(a)), ["Cu"], [[0, 0, 0]])
        paths.append(str(s.to(filename=str(tmp_path / f"cu{k}.cif"))) and str(tmp_path / f"cu{k}.cif"))
    paths.insert(3, str(tmp_path / "missing.cif"))
    m = load_model(str(shipped))
    one = m.predict(paths, [300.0], workers=1)
    two = m.predict(paths, [300.0], workers=2)
    assert [s.name for s in two] == [s.name for s in one] == paths
    assert list(two.errors) == [paths[3]] and two[3].error == "no such file or folder"
    np.testing.assert_array_equal(one.observables["cv"], two.observables["cv"])


def test_predict_allow_disordered_and_repeated_formula_ids(shipped) -> None:
    from pymatgen.core import Lattice, Structure

    from cloudphys.models import load_model

    alloy = Structure(Lattice.cubic(3.6), [{"Cu": 0.5, "Au": 0.5}], [[0, 0, 0]])
    cu = Structure(Lattice.cubic(3.6), ["Cu"], [[0, 0, 0]])
    m = load_model(str(shipped))
    p = m.predict([alloy, cu, cu], [300.0])
    assert [s.name for s in p] == ["Cu0.5Au0.5", "Cu#1", "Cu#2"]  # readable ids, indexed where repeated
    assert p[0].error is not None and "allow_disordered" in p[0].error
    p = m.predict([alloy], [300.0], allow_disordered=True)
    assert not p.errors


def test_package_never_deletes_what_it_did_not_create(tiny_ensemble, tmp_path, monkeypatch) -> None:
    import shutil

    from cloudphys.models.package import package_model

    run = tmp_path / "run"
    shutil.copytree(tiny_ensemble, run)
    (tmp_path / "notes.txt").write_text("mine")
    for out in (run, tmp_path, run / "pkg"):  # the run itself, a folder holding it, a folder inside it
        with pytest.raises(CheckpointError, match="run"):
            package_model(run, out, name="x", card="# x\n", overwrite=True)
    assert (run / "ensemble.json").is_file() and (tmp_path / "notes.txt").read_text() == "mine"
    user = tmp_path / "user"
    user.mkdir()
    (user / "thesis.tex").write_text("precious")
    with pytest.raises(CheckpointError, match="not a cloudphys model package"):
        package_model(run, user, name="x", card="# x\n", overwrite=True)
    assert (user / "thesis.tex").read_text() == "precious"
    pkg = package_model(run, tmp_path / "pkg", name="x", card="# x\n")
    (pkg / "extra.txt").write_text("added by the user")
    with pytest.raises(CheckpointError, match="extra.txt"):
        package_model(run, pkg, name="x", card="# x\n", overwrite=True)
    (pkg / "extra.txt").unlink()
    before = sorted(p.relative_to(pkg).as_posix() for p in pkg.rglob("*"))
    card = (pkg / "model_card.md").read_text()
    monkeypatch.setattr("cloudphys.models.package.write_checksums", lambda out: (_ for _ in ()).throw(OSError("full")))
    with pytest.raises(OSError, match="full"):  # a failed rebuild leaves the old package whole
        package_model(run, pkg, name="x", card="# changed\n", overwrite=True)
    assert sorted(p.relative_to(pkg).as_posix() for p in pkg.rglob("*")) == before
    assert (pkg / "model_card.md").read_text() == card
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "pkg", "run", "user"]


def test_cli_outputs_inside_the_model_and_phonopy_yaml_onto_a_file(shipped, tmp_path, monkeypatch, capsys) -> None:
    from cloudphys.models import verify_checksums

    _structures(tmp_path)
    good = str(tmp_path / "mgo.cif")
    rc, cap = _cli(["predict", "--model", str(shipped), "--input", good, "-o", str(shipped / "out.csv")],
                   monkeypatch, capsys)
    assert rc == 1 and "inside" in cap.err and not (shipped / "out.csv").exists()
    verify_checksums(shipped)
    yaml = tmp_path / "yaml"
    yaml.mkdir()
    (yaml / "mgo.cif").write_text("a file where the folder goes")
    rc, cap = _cli(["predict", "--model", str(shipped), "--input", good, "-o", str(tmp_path / "o.csv"),
                    "--phonopy-yaml", str(yaml)], monkeypatch, capsys)
    assert rc == 0 and "Traceback" not in cap.err and "is a file, not a folder" in cap.err
    assert (yaml / "mgo.cif").read_text() == "a file where the folder goes"
    (yaml / "mgo.cif").unlink()
    for _ in range(2):  # onto an existing thermal_properties.yaml: replaced whole
        rc, cap = _cli(["predict", "--model", str(shipped), "--input", good, "-o", str(tmp_path / "o.csv"),
                        "--phonopy-yaml", str(yaml)], monkeypatch, capsys)
        assert rc == 0, cap.err
    assert (yaml / "mgo.cif" / "thermal_properties.yaml").read_text().startswith("# Thermal properties")
    assert sorted(p.name for p in (yaml / "mgo.cif").iterdir()) == ["thermal_properties.yaml"]
