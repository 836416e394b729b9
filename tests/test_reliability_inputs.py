"""Reliability guarantee 1: bad input gives a documented error naming the item and the reason.

Never a traceback from inside pymatgen/spglib/numpy/torch, never NaN passed along; batch commands
(``cloudphys scope``, ``cloudphys predict``) report the bad item with its id and go on, with exactly
one row per input (per temperature for ``predict``). See docs/reliability.md.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cloudphys import scope
from cloudphys.cli import main
from cloudphys.errors import ConfigError, ScopeParseError, StructureError
from cloudphys.inputs import read_inputs, to_records

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

NACL_ROWS = "0 2.82 2.82\n2.82 0 2.82\n2.82 2.82 0"
NACL = "-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5"
NACL_CELL = "'" + NACL  # as a CSV cell: spreadsheet-safe (OWASP: a text cell starting with "-" gets a "'")


def _poscar(coords: str, lattice: str = NACL_ROWS, species: str = "Na Cl", counts: str = "1 1") -> str:
    return f"test\n1.0\n{lattice}\n{species}\n{counts}\ndirect\n{coords}\n"


def _disordered_cif() -> str:
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice.cubic(4.2), [{"Na": 0.5, "K": 0.5}, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")


# (file name, contents, reason the message must give); each message must also name the file
BAD_FILES = [
    ("empty.cif", "", "cannot read a structure"),
    ("unparsable.cif", "data_broken\n_cell_length_a 4.0\nloop_\n_atom_site_label\n", "cannot read a structure"),
    ("POSCAR_truncated", "junk\n1.0\n", "cannot read a structure"),
    ("POSCAR_nan", _poscar("nan 0 0\n0.5 0.5 0.5"), "NaN or infinite coordinates"),
    ("POSCAR_flat", _poscar("0 0 0\n0.5 0.5 0.5", lattice="3 0 0\n0 3 0\n3 3 0"), "zero volume"),
    ("POSCAR_overlap", _poscar("0.25 0.25 0.25\n0.25 0.25 0.25"), "atoms 0 and 1 overlap"),
    ("POSCAR_lone_atom", _poscar("0 0 0", lattice="0 0 0\n0 0 0\n0 0 0", species="Cu", counts="1"), "zero volume"),
]


@pytest.mark.parametrize(("name", "text", "reason"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_structure_files_name_the_file_and_the_reason(tmp_path: Path, name: str, text: str, reason: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(StructureError, match=reason) as info:
        scope.from_structure(path)
    assert name in str(info.value)


def test_partial_occupancy_is_refused_in_a_file_and_an_object(tmp_path: Path) -> None:
    from pymatgen.core import Structure

    path = tmp_path / "disordered.cif"
    path.write_text(_disordered_cif())
    with pytest.raises(StructureError, match="disordered.cif.*partial or mixed occupancy"):
        scope.from_structure(path)
    with pytest.raises(StructureError, match="site 0 has partial or mixed occupancy"):
        scope.from_structure(Structure.from_str(_disordered_cif(), fmt="cif"))


def _fcc_primitive(a: float = 3.61) -> np.ndarray:
    return 0.5 * a * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ((_fcc_primitive(), [[0.5, float("nan"), 0.5]], [29]), r"atom 0 has NaN or infinite coordinates"),
        ((_fcc_primitive(), [[0.0, 0.0, 0.0], [0.5, float("inf"), 0.5]], [11, 17]), r"atom 1 has NaN or infinite"),
        ((np.full((3, 3), float("nan")), [[0, 0, 0]], [29]), "lattice has NaN or infinite entries"),
        ((np.zeros((3, 3)), [[0, 0, 0]], [29]), "zero volume"),
        (([[4, 0, 0], [0, 4, 0], [8, 8, 0]], [[0, 0, 0], [0.5, 0.5, 0.5]], [11, 17]), "zero volume"),
        ((np.eye(3) * 4, [[0, 0, 0], [0, 0, 1e-4]], [11, 17]), r"atoms 0 and 1 overlap: 0.0004 Å apart"),
        ((np.eye(3) * 4, [[0, 0, 0], [0.999, 0, 0]], [11, 17]), r"atoms 0 and 1 overlap"),  # across the cell face
        ((np.diag([0.05, 4.0, 4.0]), [[0, 0, 0]], [29]), "atom 0 overlaps its own periodic image"),
        ((np.eye(2), [[0, 0, 0]], [29]), r"3x3 matrix"),
        ((np.eye(3) * 4, [[0, 0]], [29]), r"shape \(atoms, 3\)"),
        ((np.eye(3) * 4, [[0, 0, 0], [0.5, 0.5, 0.5]], [11]), "2 coordinates but 1 atoms"),
        ((np.eye(3) * 4, [[0, 0, 0]], [130]), "atomic number 130 is not a chemical element"),
        ((np.eye(3) * 4, [], []), "no atoms"),
        ((np.eye(3) * 4, [["a", 0, 0]], [29]), "must be numbers"),
    ],
)
def test_bad_cells_give_structure_error_with_the_reason(cell: Any, reason: str) -> None:
    with pytest.raises(StructureError, match=reason):
        scope.from_structure(cell)


def test_atoms_closer_than_symprec_are_overlapping() -> None:
    cell = (np.eye(3) * 4, [[0, 0, 0], [0.075, 0, 0]], [11, 17])  # 0.3 Å apart
    assert scope.from_structure(cell, symprec=0.01).spacegroup > 0
    with pytest.raises(StructureError, match=r"0.3 Å apart, less than 0.5 Å"):
        scope.from_structure(cell, symprec=0.5)


def test_a_single_atom_needs_a_cell_but_a_one_atom_cell_is_a_crystal() -> None:
    """An isolated atom (no lattice) is refused; the one-atom primitive cell of fcc Cu is Fm-3m 4a."""
    import ase

    with pytest.raises(StructureError, match="zero volume"):
        scope.from_structure(ase.Atoms("Cu"))
    rec = scope.from_structure((_fcc_primitive(), [[0, 0, 0]], [29]))
    assert rec.render() == "-F 4 2 3 | 4a | Cu 1.0"


# -- SCOPE strings -------------------------------------------------------------------------------

CLOUD_FM3M = "1 6 a O D D a D O D b O O O c O O O d O O O e O O O 0"


@pytest.mark.parametrize(
    ("text", "section", "token", "reason"),
    [
        ("", None, None, "expected 3 sections separated by '|', found 1"),
        ("-F 4 2 3 | 4a 4b", None, None, "found 2"),
        (f"{NACL} | Cl 0.5", None, None, "found 4"),
        ("-F 4 2 3 | | Na 1.0", "Wyckoff", None, "the section is empty"),
        ("-F 4 2 3 | 4a 4b | Na 0.5 Zz 0.5", "composition", "Zz", "not an element symbol"),
        ("-F 4 2 3 | 4a 4b | Na 0.5 Cl", "composition", "Cl", "amount is missing"),
        ("-F 4 2 3 | 4a 4b | Na 0.5 Cl nan", "composition", "nan", "expected an amount"),
        ("-F 4 2 3 | 4a 4? | Na 1.0", "Wyckoff", "4?", "multiplicity followed by one Wyckoff letter"),
        ("F O O | 4a | Na 1.0", "symmetry", "F O O", "Hall symbol"),
        ("1 6 a O D Q | 4a | Na 1.0", "symmetry", "Q", "cloud generator tokens"),
        (
            "-F 4 2 3 | 4z | Na 1.0",
            "Wyckoff",
            "4z",
            "space group 225 has no Wyckoff letter 'z' \\(its positions are a..l\\)",
        ),
        (f"{CLOUD_FM3M} | 4m | Na 1.0", "Wyckoff", "4m", "space group 225 has no Wyckoff letter 'm'"),
        ("P 1 | 1b | Na 1.0", "Wyckoff", "1b", "space group 1 has no Wyckoff letter 'b'"),
        ("-F 4 2 3 | 4l | Na 1.0", "Wyckoff", "4l", "general position l has multiplicity 192"),
        ("-F 4 2 3 | 192a | Na 1.0", "Wyckoff", "192a", "general position l has multiplicity 192"),
        ("-F 4 2 3 | 4a 4a | Na 1.0", "Wyckoff", "4a", "appears twice"),
    ],
)
def test_bad_scope_strings_say_where_and_why(text: str, section: str | None, token: str | None, reason: str) -> None:
    with pytest.raises(ScopeParseError, match=reason) as info:
        scope.parse(text)
    err = info.value
    assert err.section == section and err.token == token  # type: ignore[attr-defined]
    assert 0 <= err.position <= len(text)  # type: ignore[attr-defined]


def test_valid_letters_of_every_group_still_parse(data_root: Path) -> None:
    """The letter check agrees with CLOUD's Wyckoff table for all 230 groups (no valid site refused)."""
    from cloudphys.scope import _grammar as G

    table = json.loads((data_root / "cloud" / "wyckoff-position-multiplicities.json").read_text())
    for number in range(1, 231):
        letters = table[str(number)]
        assert G.general_wyckoff_letter(number) == max(letters, key=G.letter_rank)
        hall = " ".join(G.hall_tokens(number))
        sites = " ".join(f"{m}{letter}" for letter, m in letters.items())
        assert scope.parse(f"{hall} | {sites} | Si 1.0").spacegroup == number


def test_too_long_and_unknown_tokens_with_the_tokenizer() -> None:
    from cloudphys.tokenizer import SequenceTooLongError, build_tokenizer, check_length

    tok = build_tokenizer(model_max_length=10)
    assert check_length(tok, [NACL], ids=["nacl"], max_length=16) == [14]
    with pytest.raises(SequenceTooLongError, match=r"^1 SCOPE string.*maximum length of 10 tokens: nacl \(14 tokens\)"):
        check_length(tok, ["P 1 | 1a | Na 1.0", NACL], ids=["short", "nacl"])
    # an unknown token maps to [UNK] (never a crash); the parser names it (see predict below)
    ids = tok("-F 4 2 3 | 4a | Zz 1.0")["input_ids"]
    assert tok.unk_token_id in ids


# -- configs ---------------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "encoder": {"name": "scope-bert", "hidden_size": 16, "num_layers": 1, "num_heads": 2},
    "head": {"name": "debye", "observables": ["cv"]},
    "train": {"epochs": 1, "lr": 1.0e-3},
}


@pytest.mark.parametrize(
    ("section", "key", "value", "needle"),
    [
        (None, "trian", {}, "unknown key 'trian' in config"),
        ("train", "lrr", 1.0, "unknown key 'lrr' in section 'train'"),
        ("encoder", "hiden_size", 8, "unknown key 'hiden_size' in encoder 'scope-bert'"),
        ("head", "name", "debyee", "unknown head 'debyee'"),
        ("encoder", "name", "os.system", "unknown encoder 'os.system'"),
        ("head", "name", ["debye"], "unknown head \\['debye'\\]"),
        ("train", "epochs", "ten", "train.epochs must be an integer, got 'ten'"),
        ("train", "lr", "fast", "train.lr must be a number"),
        ("train", "lr", float("nan"), "train.lr must be a number, got NaN"),
        ("train", "lr", -1.0, "train.lr must be a finite number > 0"),
        ("train", "weight_decay", float("inf"), "train.weight_decay must be a finite number"),
        ("train", "loss", "l3", "train.loss: unknown value 'l3'"),
        ("encoder", "hidden_size", "big", "encoder.hidden_size must be an integer, got 'big'"),
        ("encoder", "composition_features", "yes", "encoder.composition_features must be true or false"),
        ("head", "observables", ["heat"], "no observable 'heat'"),
        (None, "train", [1, 2], "section 'train' must be a mapping"),
    ],
)
def test_bad_configs_name_the_key_and_the_reason(section: str | None, key: str, value: Any, needle: str) -> None:
    import copy

    from cloudphys.config import load_config

    cfg = copy.deepcopy(BASE)
    (cfg if section is None else cfg[section])[key] = value
    with pytest.raises(ConfigError, match=needle):
        load_config(cfg)


def test_unparsable_config_file_names_the_file(tmp_path: Path) -> None:
    from cloudphys.config import load_config

    for name, text in (("broken.yaml", "encoder: [unclosed\n"), ("broken.toml", "[train\n"), ("list.yaml", "- 1\n")):
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError, match=name):
            load_config(tmp_path / name)


# -- head inputs -------------------------------------------------------------------------------------


def _heads() -> list[str]:
    from cloudphys.plugins import get_registry

    return sorted(get_registry().heads)


@pytest.mark.parametrize("name", _heads())
@pytest.mark.parametrize(
    ("temperature", "n_atoms", "needle"),
    [
        (-1.0, 2.0, "temperature"),
        (float("nan"), 2.0, "temperature"),
        (300.0, 0.0, "n_atoms"),
        (300.0, -3.0, "n_atoms"),
        (300.0, float("nan"), "n_atoms"),
    ],
)
def test_every_head_refuses_negative_or_nan_temperature_and_nonpositive_n_atoms(
    name: str, temperature: float, n_atoms: float, needle: str
) -> None:
    from cloudphys.plugins import get_registry

    head = get_registry().head(name)()
    latents = {s.name: torch.full((2, *s.shape), float(s.typical)) for s in head.latents}
    T = torch.tensor([[300.0], [temperature]])
    with pytest.raises(ValueError, match=needle) as info:
        head(latents=latents, temperature=T, n_atoms=torch.tensor([2.0, n_atoms]))
    assert repr(temperature if needle == "temperature" else n_atoms)[:3].lower() in str(info.value).lower()


# -- batch commands: one row per input, bad items named, the rest goes on -----------------------------


def test_scope_command_reports_each_bad_file_and_converts_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a_good.cif").write_text(_poscar_to_cif(_poscar("0 0 0\n0.5 0.5 0.5")))
    for name, text, _ in BAD_FILES:
        target = folder / (name if name.endswith(".cif") or name.startswith("POSCAR") else name + ".cif")
        target.write_text(text)
    (folder / "disordered.cif").write_text(_disordered_cif())
    out = tmp_path / "out.csv"
    assert main(["scope", str(folder), "-o", str(out), "--no-progress"]) == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    files = sorted(p for p in folder.iterdir())
    assert [Path(r["id"]).name for r in rows] == [p.name for p in files]  # one row per input, in order
    by_name = {Path(r["id"]).name: r for r in rows}
    assert by_name["a_good.cif"]["scope"] == NACL_CELL and not by_name["a_good.cif"]["error"]
    for name, _, reason in BAD_FILES:
        assert reason in by_name[name]["error"] and not by_name[name]["scope"], name
    assert "partial or mixed occupancy" in by_name["disordered.cif"]["error"]


def _poscar_to_cif(text: str) -> str:
    from pymatgen.core import Structure

    return Structure.from_str(text, fmt="poscar").to(fmt="cif")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny model (default dialect, 24 tokens at most): enough to exercise predict."""
    from cloudphys.config import load_config
    from cloudphys.training import build_model

    cfg = {**BASE, "encoder": {**BASE["encoder"], "max_length": 24}}
    torch.manual_seed(0)
    model = build_model(load_config(cfg))
    path = tmp_path_factory.mktemp("model")
    model.save_pretrained(path)
    return path


def _predict_keep_going(model_dir: Path, inputs: list[Path], out: Path) -> int:
    """``cloudphys predict MODEL --keep-going -i INPUTS -T 0,300 -o OUT --device cpu``; its exit status."""
    return main(["predict", str(model_dir), "--keep-going", "-i", *map(str, inputs), "-T", "0,300", "-o", str(out),
                 "--device", "cpu"])


def test_predict_reports_each_bad_input_and_predicts_the_rest(tmp_path: Path, model_dir: Path) -> None:
    from pymatgen.core import Lattice, Structure

    long_string = "P 1 | 1a | " + " ".join(f"{el} 0.1" for el in ("H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne"))
    rows_in = [
        ("good", NACL, "2"),
        ("unknown-token", "-F 4 2 3 | 4a 4b | Na 0.5 Zz 0.5", "2"),
        ("two-sections", "-F 4 2 3 | 4a 4b", "2"),
        ("impossible-letter", "-F 4 2 3 | 4z | Na 1.0", "4"),
        ("n-zero", NACL, "0"),
        ("n-negative", NACL, "-4"),
        ("n-nan", NACL, "nan"),
        ("too-long", long_string, "10"),
    ]
    src = tmp_path / "strings.csv"
    with open(src, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "scope", "n_atoms"])
        w.writerows(rows_in)
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    overlap = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).as_dict()
    overlap["sites"][1]["abc"] = [0.0, 0.0, 0.0]
    nan_cell = nacl.as_dict()
    nan_cell["sites"][0]["abc"] = [float("nan"), 0.0, 0.0]
    jsonl = tmp_path / "structures.jsonl"
    with open(jsonl, "w") as fh:
        for rid, struct, extra in (
            ("s-good", nacl.as_dict(), {}),
            ("s-overlap", overlap, {}),
            ("s-nan", nan_cell, {}),
            ("s-n-negative", nacl.as_dict(), {"n_atoms": -1}),
        ):
            fh.write(json.dumps({"id": rid, "structure": struct, **extra}) + "\n")
        fh.write("{not json\n")
    (tmp_path / "empty.cif").write_text("")
    (tmp_path / "POSCAR_nan").write_text(_poscar("nan 0 0\n0.5 0.5 0.5"))
    inputs = [src, jsonl, tmp_path / "empty.cif", tmp_path / "POSCAR_nan", tmp_path / "missing.cif"]
    out = tmp_path / "pred.csv"
    rc = _predict_keep_going(model_dir, inputs, out)
    assert rc == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))  # the first line is the header
    expect_error = {
        "unknown-token": "not an element symbol",
        "two-sections": "found 2",
        "impossible-letter": "no Wyckoff letter 'z'",
        "n-zero": "n_atoms",
        "n-negative": "n_atoms",
        "n-nan": "n_atoms",
        "too-long": "max_length 24",
        "s-overlap": "overlap",
        "s-nan": "NaN",
        "s-n-negative": "n_atoms",
        f"{jsonl}:5": "JSON",
        str(tmp_path / "empty.cif"): "cannot read",
        str(tmp_path / "POSCAR_nan"): "cannot read|NaN",
        str(tmp_path / "missing.cif"): "no such file",
    }  # failures are named as cloudphys.inputs names them: the file as given, FILE:LINE for a line
    good = {"good", "s-good"}
    ids = [r["id"] for r in rows]
    assert set(ids) == good | set(expect_error)
    for rid, pattern in expect_error.items():
        mine = [r for r in rows if r["id"] == rid]
        assert len(mine) == 1, rid  # one row for a failed input
        assert __import__("re").search(pattern, mine[0]["error"]), (rid, mine[0]["error"])
        assert mine[0]["cv_J_per_K_mol_cell"] == "" and mine[0]["temperature_K"] == ""
    for rid in good:
        mine = [r for r in rows if r["id"] == rid]
        assert [float(r["temperature_K"]) for r in mine] == [0.0, 300.0] and not any(r["error"] for r in mine)
        assert all(
            math.isfinite(float(r["cv_J_per_K_mol_cell"])) and math.isfinite(float(r["theta_D_K"])) for r in mine
        )
    assert len(rows) == 2 * len(good) + len(expect_error)


@pytest.mark.parametrize("temperatures", ["-5", "nan", "300,-1", "10:5", "abc"])
def test_predict_refuses_negative_or_nan_temperatures(
    tmp_path: Path, model_dir: Path, temperatures: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "one.csv"
    src.write_text(f"id,scope,n_atoms\nx,{NACL},2\n")
    rc = main(
        ["predict", str(model_dir), "--keep-going", "-i", str(src), "-T", temperatures, "-o", str(tmp_path / "o.csv")]
    )
    assert rc == 1
    assert "temperatures" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_training_data_with_unknown_tokens_or_bad_n_atoms_names_the_item(model_dir: Path) -> None:
    from cloudphys.data import Examples
    from cloudphys.errors import DataError
    from cloudphys.modeling.encoding import encode
    from cloudphys.training import ScopePhysicsModel

    model = ScopePhysicsModel.from_pretrained(model_dir)

    def examples(scope_strings: list[str], n_atoms: list[float]) -> Examples:
        return Examples(
            ids=[f"row{k}" for k in range(len(n_atoms))],
            scope=scope_strings,
            n_atoms=np.array(n_atoms),
            temperatures=np.array([300.0]),
            targets={"cv": np.full((len(n_atoms), 1), 40.0)},
            units={"cv": "J/(K*mol)"},
        )

    with pytest.raises(DataError, match=r"row1 has token\(s\) outside the vocabulary: \['Zz'\]"):
        encode(examples([NACL, "-F 4 2 3 | 4a | Zz 1.0"], [2, 1]), model, ["cv"])
    with pytest.raises(DataError, match=r"n_atoms of row1 is .*-1.0.*positive"):
        encode(examples([NACL, NACL], [2, -1]), model, ["cv"])


# -- unreadable input files: not UTF-8, corrupt or truncated gzip, folders ---------------------------


def _nacl_dict() -> dict[str, Any]:
    from pymatgen.core import Lattice, Structure

    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).as_dict()


def _truncated_jsonl_gz(path: Path, n: int) -> int:
    """Write ``n`` NaCl lines (ids ``t0``...), gzipped and cut in the middle; return the complete lines kept."""
    import gzip
    import zlib

    nacl = json.dumps(_nacl_dict())
    text = "".join(f'{{"id": "t{k}", "structure": {nacl}}}\n' for k in range(n))
    data = gzip.compress(text.encode(), mtime=0)
    cut = data[: len(data) // 2]
    kept = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(cut).count(b"\n")
    assert 0 < kept < n  # the cut falls after some complete lines and before the end
    path.write_bytes(cut)
    return kept


def _latin1_csv(path: Path, header: str, row: str) -> None:
    path.write_bytes(f"{header}\n{row}\n".encode("latin-1"))  # 'é' as the single byte 0xe9


def test_unreadable_config_files_name_the_file_and_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloudphys.config import load_config, read_config_file

    latin = tmp_path / "latin1.yaml"
    latin.write_bytes("encoder: {name: scope-bert}\nhead: {name: debye}\n# café\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"cannot read config .*latin1\.yaml: not UTF-8 text \(byte 0xe9"):
        read_config_file(latin)
    folder = tmp_path / "conf.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"cannot read config .*conf\.yaml: it is a folder"):
        load_config(folder)
    with pytest.raises(ConfigError, match=r"config file not found: .*missing\.yaml"):
        load_config(tmp_path / "missing.yaml")
    for path, reason in ((latin, "not UTF-8 text"), (folder, "it is a folder")):
        assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: cannot read config") and path.name in err and reason in err
        assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_scope_command_reports_unreadable_files_and_empty_folders(tmp_path: Path) -> None:
    good = tmp_path / "good.cif"
    good.write_text(_poscar_to_cif(_poscar("0 0 0\n0.5 0.5 0.5")))
    latin = tmp_path / "latin1.csv"
    _latin1_csv(latin, "id,cif", "caf\xe9,data_x")
    not_gzip = tmp_path / "corrupt.jsonl.gz"
    not_gzip.write_bytes(b"this is not gzip data\n")
    truncated = tmp_path / "truncated.jsonl.gz"
    kept = _truncated_jsonl_gz(truncated, 40)
    empty = tmp_path / "no_structures"
    empty.mkdir()
    (empty / "notes.txt").write_text("nothing to convert here\n")
    inputs = [good, latin, not_gzip, truncated, empty]
    out = tmp_path / "out.csv"
    assert main(["scope", *map(str, inputs), "-o", str(out), "--no-progress"]) == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    # one row per input file, the rows read before the truncation, then one row for the rest
    expect_ids = [str(good), str(latin), str(not_gzip), *[f"t{k}" for k in range(kept)], str(truncated), str(empty)]
    assert [r["id"] for r in rows] == expect_ids
    by_id = {r["id"]: r for r in rows}
    assert by_id[str(good)]["scope"] == NACL_CELL and not by_id[str(good)]["error"]
    assert all(by_id[f"t{k}"]["scope"] == NACL_CELL and not by_id[f"t{k}"]["error"] for k in range(kept))
    errors = {
        latin: r"cannot read the file: not UTF-8 text \(byte 0xe9",
        not_gzip: r"cannot read the file: not a valid gzip file",
        truncated: rf"cannot read from line {kept + 1} on: the gzip file is truncated"
        rf".*lines 1-{kept} were read",
        empty: r"no_structures: the folder has no structure files \(looked for \*\.cif, \*\.mcif, \*\.vasp, "
        r"\*\.poscar, \*\.json, \*\.extxyz, \*\.xyz, \*\.traj, "
        r"POSCAR\*, CONTCAR\*",
    }
    for path, pattern in errors.items():
        row = by_id[str(path)]
        assert __import__("re").search(pattern, row["error"]), (path.name, row["error"])
        assert not row["scope"]


def test_scope_inputs_keep_the_rows_before_a_non_utf8_line(tmp_path: Path) -> None:
    """A CSV that turns out not to be UTF-8 far into the file keeps what came before it."""
    path = tmp_path / "mostly_utf8.csv"
    good = "".join(f"m{k},data_{k}\n" for k in range(3000))  # well past one read buffer
    path.write_bytes(("id,cif\n" + good + "caf\xe9,data_x\n").encode("latin-1"))
    items = read_inputs([path])
    assert 0 < len(items) - 1 <= 3000
    assert [it.id for it in items[:-1]] == [f"m{k}" for k in range(len(items) - 1)]
    last = items[-1]
    assert last.id == str(path) and last.error is not None
    assert __import__("re").search(rf"cannot read from line {len(items) + 1} on: not UTF-8 text", last.error)
    to_records(items[-1:], dialect="default")
    assert "not UTF-8" in (last.error or "")


def test_predict_reports_unreadable_files_and_predicts_the_rest(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "good.csv"
    src.write_text(f"id,scope,n_atoms\ngood,{NACL},2\n")
    latin = tmp_path / "latin1.csv"
    _latin1_csv(latin, "id,scope,n_atoms", f"caf\xe9,{NACL},2")
    not_gzip = tmp_path / "corrupt.jsonl.gz"
    not_gzip.write_bytes(b"this is not gzip data\n")
    truncated = tmp_path / "truncated.jsonl.gz"
    kept = _truncated_jsonl_gz(truncated, 40)
    no_cols = tmp_path / "no_columns.csv"
    no_cols.write_text("id,formula\nx,NaCl\n")
    inputs = [src, latin, not_gzip, truncated, no_cols]
    out = tmp_path / "pred.csv"
    rc = _predict_keep_going(model_dir, inputs, out)
    assert rc == 0
    assert "Traceback" not in capsys.readouterr().err
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))  # the first line is the header
    good = ["good", *[f"t{k}" for k in range(kept)]]
    errors = {
        str(latin): r"cannot read the file: not UTF-8 text \(byte 0xe9",
        str(not_gzip): r"cannot read the file: not a valid gzip file",
        str(truncated): rf"cannot read from line {kept + 1} on: the gzip file is truncated"
        rf".*lines 1-{kept} were read",
        str(no_cols): r"a CSV input needs a scope/cloud/cif/poscar/structure column "
        r"\(has id, formula\)",
    }
    assert len(rows) == 2 * len(good) + len(errors)  # two temperatures per good input, one row per failure
    for rid in good:
        mine = [r for r in rows if r["id"] == rid]
        assert [float(r["temperature_K"]) for r in mine] == [0.0, 300.0] and not any(r["error"] for r in mine), rid
        assert all(math.isfinite(float(r["cv_J_per_K_mol_cell"])) for r in mine)
    for rid, pattern in errors.items():
        mine = [r for r in rows if r["id"] == rid]
        assert len(mine) == 1, rid
        assert __import__("re").search(pattern, mine[0]["error"]), (rid, mine[0]["error"])
        assert mine[0]["cv_J_per_K_mol_cell"] == "" and mine[0]["temperature_K"] == ""


def test_predict_inputs_keep_the_rows_before_a_non_utf8_line(tmp_path: Path) -> None:
    from cloudphys.inputs import read_inputs

    path = tmp_path / "mostly_utf8.csv"
    good = "".join(f"m{k},{NACL},2\n" for k in range(2000))  # well past one read buffer
    path.write_bytes(("id,scope,n_atoms\n" + good + f"caf\xe9,{NACL},2\n").encode("latin-1"))
    items = read_inputs([path, tmp_path / "missing.cif"])
    *read, failed, missing = items
    assert 0 < len(read) <= 2000
    assert [it.id for it in read] == [f"m{k}" for k in range(len(read))]
    assert all(it.error is None and it.scope == NACL and it.n_atoms == 2.0 for it in read)
    assert failed.id == str(path) and failed.scope is None
    assert __import__("re").search(
        rf"mostly_utf8\.csv: cannot read from line {len(read) + 2} on: not UTF-8 text", failed.error or ""
    )
    where = str(tmp_path / "missing.cif")  # the next input is still read
    assert missing.id == where and missing.error == f"{where}: no such file or folder"


def test_predict_reads_gzipped_csv_like_plain_csv(tmp_path: Path) -> None:
    import gzip

    from cloudphys.inputs import read_inputs

    text = f"id,scope,n_atoms\ngood,{NACL},2\nbad,{NACL},-1\n"
    plain, packed = tmp_path / "t.csv", tmp_path / "t.csv.gz"
    plain.write_text(text)
    with gzip.open(packed, "wt") as fh:
        fh.write(text)
    a, b = read_inputs([plain]), read_inputs([packed])
    same = [(i.id, i.scope, i.n_atoms, (i.error or "").replace(str(plain), "FILE")) for i in a]
    assert same == [(i.id, i.scope, i.n_atoms, (i.error or "").replace(str(packed), "FILE")) for i in b]
    assert [i.id for i in b] == ["good", "bad"] and b[0].error is None and "n_atoms" in b[1].error


def test_evaluate_refuses_an_empty_split(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudphys.data import Examples
    from cloudphys.errors import DataError
    from cloudphys.training import evaluation

    empty = Examples(
        ids=[],
        scope=[],
        n_atoms=np.zeros(0),
        temperatures=np.array([300.0]),
        targets={"cv": np.zeros((0, 1))},
        units={"cv": "J/(K*mol)"},
    )
    monkeypatch.setattr(evaluation, "load_split", lambda *args, **kwargs: empty)
    with pytest.raises(DataError, match="split 'test' .* is empty"):
        evaluation.evaluate(model_dir, "test", device="cpu")
