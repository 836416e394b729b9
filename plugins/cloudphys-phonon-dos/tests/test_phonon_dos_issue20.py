"""Issue 20: the head's DOS as a histogram in THz, and old (16-bin) models predicting as before."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cloudphys_phonon_dos.head import K_PER_THZ, PhononDOSHead

DATA = Path(__file__).parent / "data"


def test_old_16_bin_model_predicts_as_before():
    # the shipped 16-bin phonondb-dos (before issue 20), predicted with the code of that time: its head
    # config, the member-mean latents of three phonondb materials and the curves it gave
    ref = json.loads((DATA / "old_16bin_reference.json").read_text(encoding="utf-8"))
    head = PhononDOSHead(**ref["head_config"])
    assert head.bins == 16 and head.theta_max is None
    lat = {k: torch.tensor(v, dtype=torch.float32) for k, v in ref["latents"].items()}
    n = torch.tensor(ref["n_atoms"], dtype=torch.float32)
    T = torch.tensor(ref["temperatures_K"], dtype=torch.float32).expand(len(n), -1)
    out = head(lat, temperature=T, n_atoms=n, observables=("cv", "s", "u"))
    for o in ("cv", "s", "u"):
        np.testing.assert_allclose(out[o].numpy(), np.asarray(ref["curves"][o]), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dos_histogram_matches_density_of_states(dtype):
    head = PhononDOSHead(bins=8)
    w = torch.rand(3, 8, dtype=dtype)
    lat = {"dos": w, "theta_max": torch.tensor([300.0, 600.0, 900.0], dtype=dtype)}
    n = torch.tensor([1.0, 2.0, 5.0], dtype=dtype)
    edges, g = head.dos_histogram(lat, n)
    theta, g2 = head.density_of_states(lat, n)
    assert edges.dtype == dtype and edges.shape == (3, 9)
    torch.testing.assert_close(g, g2)
    torch.testing.assert_close(0.5 * (edges[:, 1:] + edges[:, :-1]) * K_PER_THZ, theta)
    torch.testing.assert_close(g.sum(-1), 3 * n)
    fixed = PhononDOSHead(bins=4, theta_max=480.0)
    e, _ = fixed.dos_histogram({"dos": torch.ones(2, 4, dtype=dtype)}, 1.0)
    torch.testing.assert_close(e[1], torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=dtype) * 480.0 / K_PER_THZ)
