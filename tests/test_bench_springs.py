"""The spring-network proxy of benchmarks/bench_springs.py (issue 20, a lever tried): invariant under the
choice of cell, and its frequency features follow the d^-3 stiffness of a stretched lattice."""

from __future__ import annotations

import math

import numpy as np
from _training_helpers import load_benchmark
from pymatgen.core import Lattice, Structure

springs = load_benchmark("bench_springs")


def _nacl(a: float = 5.64, species: tuple[str, str] = ("Na", "Cl")) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), list(species), [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_same_numbers_for_any_cell_of_the_crystal() -> None:
    prim = springs.spring_features(_nacl().get_primitive_structure())
    np.testing.assert_allclose(springs.spring_features(_nacl()), prim, rtol=0, atol=1e-9)
    np.testing.assert_allclose(springs.spring_features(_nacl() * (2, 1, 1)), prim, rtol=0, atol=1e-9)
    assert np.isfinite(prim).all()
    assert prim[springs.NAMES.index("floppy_fraction")] == 0.0  # transverse springs: a rigid network


def test_frequencies_scale_with_the_stiffness_of_a_stretched_lattice() -> None:
    base = springs.spring_features(_nacl())
    # stiffness d^-3: a lattice stretched by s lowers every frequency by s^(-3/2) and the velocities by
    # s^(-3/2) * s (a length per time), i.e. log shifts of -1.5 log s and -0.5 log s
    s = 1.1
    big = springs.spring_features(_nacl(5.64 * s))
    shift = big - base
    i_w = [springs.NAMES.index(n) for n in ("log_mean_w", "mean_log_w", "log_rms_w", "log_q10", "log_q25", "log_q90")]
    np.testing.assert_allclose(shift[i_w], -1.5 * math.log(s), atol=1e-4)
    # velocities are read at a fixed |q| = 0.02 1/A: the dispersion of the stretched lattice differs at 1e-5
    np.testing.assert_allclose(shift[springs.NAMES.index("log_v_debye")], -0.5 * math.log(s), atol=1e-4)
    # the Debye estimate adds log(n / V) / 3: another -log s
    np.testing.assert_allclose(shift[springs.NAMES.index("log_theta_estimate")], -1.5 * math.log(s), atol=1e-4)
