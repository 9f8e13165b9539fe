import torch

from scorelid.estimators.noise import point_noise, point_rademacher


def test_point_noise_depends_only_on_seed_and_index():
    a = point_noise(3, [5, 9], 4, (2, 3))
    b = point_noise(3, [9, 5], 4, (2, 3))
    assert a.shape == (2, 4, 2, 3)
    torch.testing.assert_close(a[0], b[1])
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a, point_noise(4, [5, 9], 4, (2, 3)))


def test_seed_index_pairs_do_not_collide():
    # (seed, index) is hashed as a pair, so seed 1 / index 0 differs from seed 0 / index 1 etc.
    a = point_noise(0, [1], 2, (8,))
    b = point_noise(1, [0], 2, (8,))
    assert not torch.equal(a, b)


def test_rademacher_values_and_balance():
    r = point_rademacher(0, range(50), 100, (10,))
    assert set(r.unique().tolist()) == {-1.0, 1.0}
    assert abs(r.mean().item()) < 0.02  # 50,000 signs: standard error 0.0045
