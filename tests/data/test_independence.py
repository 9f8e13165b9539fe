"""independent_groups: finds the independent factors of product data, and never splits a sphere."""

import numpy as np
import pytest

from scorelid.data.independence import independent_groups


def _product(N: int, seed: int) -> tuple[np.ndarray, list[list[int]]]:
    """A circle (2 coords), a 2-sphere (3), a 2-d curved sheet (4) and a Gaussian (1), columns
    shuffled, plus two zero columns: the true groups."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * np.pi, N)
    circle = np.c_[np.cos(t), np.sin(t)]
    s = rng.normal(size=(N, 3))
    sphere = s / np.linalg.norm(s, axis=1, keepdims=True)
    u = rng.uniform(-1, 1, (N, 2))
    sheet = np.c_[u, np.sin(2 * u[:, 0]) * u[:, 1], u[:, 0] ** 2 - u[:, 1]]
    gauss = rng.normal(size=(N, 1))
    core = np.c_[circle, sphere, sheet, gauss, np.zeros((N, 2))]
    perm = np.random.default_rng(99).permutation(core.shape[1])
    x = core[:, perm]
    where = np.argsort(perm)  # where[i]: the column holding core column i
    truth = [sorted(where[list(g)].tolist()) for g in ([0, 1], [2, 3, 4], [5, 6, 7, 8], [9])]
    return x, sorted(truth)


@pytest.mark.parametrize("N", [500, 3000])
def test_recovers_the_factors_of_a_product(N):
    x, truth = _product(N, seed=N)
    assert independent_groups(x) == truth


@pytest.mark.parametrize("d", [4, 16, 63])
def test_a_sphere_is_one_group(d):
    # no pair of a sphere's coordinates is clearly dependent; their squares sum to 1
    x = np.random.default_rng(d).normal(size=(500, d + 1))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert independent_groups(x) == [list(range(d + 1))]


def test_rotated_product_is_one_group():
    x, _ = _product(2000, seed=1)
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(12, 12)))
    assert independent_groups(x @ q) == [list(range(12))]


def test_independent_coordinates_are_split_apart():
    x = np.random.default_rng(3).uniform(size=(2000, 40))
    assert independent_groups(x) == [[i] for i in range(40)]


@pytest.mark.parametrize("bad, match", [(np.zeros((5, 3)), "N >= 8"), (np.zeros(20), "N >= 8"),
                                        (np.full((20, 3), np.nan), "NaN")])
def test_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        independent_groups(bad)


def test_too_many_coordinates_are_not_tested():
    x = np.random.default_rng(4).uniform(size=(50, 30))
    x[:, 7] = 0.0
    expected = [[i for i in range(30) if i != 7]]
    assert independent_groups(x, max_coords=20) == expected


def test_pack_groups_unites_small_neighbours():
    from scorelid.data.independence import pack_groups

    assert pack_groups([[0], [1], [2, 3], [4, 5, 6], [7]], 3) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert pack_groups([[0, 1, 2, 3]], 8) == [[0, 1, 2, 3]]
    assert pack_groups([[i] for i in range(5)], 1) == [[i] for i in range(5)]
    with pytest.raises(ValueError, match="min_size"):
        pack_groups([[0]], 0)
