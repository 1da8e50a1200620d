"""Fréchet distance and KID against direct numpy/scipy computations."""

import itertools

import numpy as np
import pytest
from scipy import linalg

from facegan_jax.metrics import distances


def scipy_frechet_distance(mu1, sigma1, mu2, sigma2):
  """The TTUR / pytorch-fid recipe: sqrtm of the product, an offset if it is not finite."""
  covmean = linalg.sqrtm(sigma1 @ sigma2)
  if not np.isfinite(covmean).all():
    offset = np.eye(len(sigma1)) * 1e-6
    covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
  return (np.sum((mu1 - mu2)**2) + np.trace(sigma1) + np.trace(sigma2)
          - 2 * np.trace(covmean.real))


def random_features(seed, count, dim, shift=0.0):
  """Samples of one correlated Gaussian per (dim, shift); `seed` picks the samples."""
  mixing = np.random.default_rng(dim).normal(size=(dim, dim)) / np.sqrt(dim)
  return np.random.default_rng(seed).normal(size=(count, dim)) @ mixing + shift


@pytest.mark.parametrize('count', [500, 40])  # 40 samples of 64-d features: rank 39 covariances
def test_frechet_distance_matches_scipy(count):
  stats1 = distances.gaussian_statistics(random_features(0, count, 64))
  stats2 = distances.gaussian_statistics(random_features(1, count, 64, shift=0.3))
  expected = scipy_frechet_distance(*stats1, *stats2)
  assert distances.frechet_distance(*stats1, *stats2) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_of_diagonal_gaussians_has_the_closed_form():
  mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
  var1, var2 = np.array([1.0, 4.0, 0.0]), np.array([9.0, 1.0, 0.25])
  expected = np.sum((mu1 - mu2)**2) + np.sum((np.sqrt(var1) - np.sqrt(var2))**2)
  assert distances.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(
      expected, abs=1e-12)


def test_frechet_distance_of_a_set_to_itself_is_zero_even_when_singular():
  for count in (1000, 20):  # 20 samples of 256-d features: covariance of rank 19
    features = random_features(2, count, 256)
    assert abs(distances.features_frechet_distance(features, features)) < 1e-9
  far = distances.features_frechet_distance(features, features + 1.0)
  assert far == pytest.approx(256.0, rel=1e-9)  # only the means differ, by 1 in each dimension


def direct_mmd2(x, y):
  k = lambda a, b: (np.dot(a, b) / len(a) + 1.0)**3
  n, m = len(x), len(y)
  xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
  yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
  xy = sum(k(a, b) for a in x for b in y) / (n * m)
  return xx + yy - 2 * xy


def test_mmd2_unbiased_matches_the_sum_over_pairs():
  x, y = random_features(3, 7, 5), random_features(4, 6, 5, shift=0.5)
  assert distances.mmd2_unbiased(x, y) == pytest.approx(direct_mmd2(x, y), rel=1e-12)


def test_kid_averages_mmd2_over_random_subsets():
  real, fake = random_features(5, 9, 4), random_features(6, 9, 4, shift=0.2)
  # With one subset as large as the sets, the subset is all of them (in another order).
  full = distances.kernel_inception_distance(real, fake, num_subsets=1, subset_size=100, seed=0)
  assert full == pytest.approx(direct_mmd2(real, fake), rel=1e-12)
  rng = np.random.default_rng(7)
  expected = np.mean([direct_mmd2(real[rng.choice(9, 5, replace=False)],
                                  fake[rng.choice(9, 5, replace=False)]) for _ in range(3)])
  kid = distances.kernel_inception_distance(real, fake, num_subsets=3, subset_size=5, seed=7)
  assert kid == pytest.approx(expected, rel=1e-12)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_two():
  same = [distances.kernel_inception_distance(random_features(s, 200, 16),
                                              random_features(s + 100, 200, 16), 10, 100, s)
          for s in range(5)]
  shifted = distances.kernel_inception_distance(random_features(0, 200, 16),
                                                random_features(100, 200, 16, shift=0.5),
                                                10, 100, 0)
  assert abs(np.mean(same)) < 0.1 * shifted


def test_nearest_neighbour_measures_by_hand():
  # Reals on a line at 0, 1, 2, 3: every 1-NN radius is 1. Fakes at 0.5 and 4.5, 4 apart.
  real, fake = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([[0.5], [4.5]])
  measures = distances.nearest_neighbour_measures(real, fake, precision_recall_k=1,
                                                  density_coverage_k=1)
  # 0.5 lies in the balls of 0 and 1, 4.5 in none: precision 1/2, density (2 + 0) / (1 * 2).
  # The fakes' radius 4 reaches every real: recall 1. Reals 0 and 1 hold a fake: coverage 1/2.
  assert measures == {'precision': 0.5, 'recall': 1.0, 'density': 1.0, 'coverage': 0.5}
  # k = 2 for density/coverage: radii 2, 1, 1, 2 (the ends reach two away); 0.5 is in the
  # balls of 0 and 1, 4.5 in that of 3: density 3 / (2 * 2), reals 0, 1, 3 covered.
  measures = distances.nearest_neighbour_measures(real, fake, 1, 2)
  assert measures['density'] == 0.75 and measures['coverage'] == 0.75
  assert measures['precision'] == 0.5  # still k = 1


def loop_measures(real, fake, k_pr, k_dc):
  """The four measures with an explicit loop over every pair (Naeem et al.'s formulas)."""
  def radius(points, index, k):
    return sorted(np.linalg.norm(points[index] - p) for j, p in enumerate(points)
                  if j != index)[k - 1]
  real_pr = [radius(real, i, k_pr) for i in range(len(real))]
  real_dc = [radius(real, i, k_dc) for i in range(len(real))]
  fake_pr = [radius(fake, j, k_pr) for j in range(len(fake))]
  inside = lambda a, b, r: np.linalg.norm(a - b) <= r
  return {
      'precision': np.mean([any(inside(y, x, r) for x, r in zip(real, real_pr)) for y in fake]),
      'recall': np.mean([any(inside(x, y, r) for y, r in zip(fake, fake_pr)) for x in real]),
      'density': sum(inside(y, x, r) for x, r in zip(real, real_dc) for y in fake)
                 / (k_dc * len(fake)),
      'coverage': np.mean([any(inside(y, x, r) for y in fake) for x, r in zip(real, real_dc)]),
  }


def test_nearest_neighbour_measures_match_the_loop_across_row_blocks(monkeypatch):
  monkeypatch.setattr(distances, '_ROW_BLOCK', 7)  # several blocks, one partial
  real, fake = random_features(8, 30, 6), random_features(9, 25, 6, shift=0.4)
  measures = distances.nearest_neighbour_measures(real, fake, 3, 5)
  expected = loop_measures(real, fake, 3, 5)
  assert measures == pytest.approx(expected, abs=1e-12)
  assert 0 < measures['precision'] < 1 and 0 < measures['coverage'] < 1


def test_identical_sets_are_fully_precise_and_covered():
  features = random_features(10, 40, 8)
  measures = distances.nearest_neighbour_measures(features, features, 3, 5)
  assert measures['precision'] == measures['recall'] == measures['coverage'] == 1.0
  assert measures['density'] >= 1 / 5  # each point lies at least in its own ball


def test_nearest_distances_exclude_the_point_itself_when_asked():
  points = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 5.0]])
  np.testing.assert_allclose(distances.nearest_distances(points, points, True), [5.0, 1.0, 1.0])
  np.testing.assert_allclose(distances.nearest_distances(points[:1] + 1, points), [np.sqrt(2)])
