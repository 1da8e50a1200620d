"""Comparisons of two sets of features: Fréchet distance (FID), KID, and the k-NN measures
precision, recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020).

All take features [N, D] (float) and compute in float64 with numpy on the host.
"""

import numpy as np


def gaussian_statistics(features) -> tuple[np.ndarray, np.ndarray]:
  """Mean [D] and unbiased covariance [D, D] (float64) of features [N, D]."""
  features = np.asarray(features, np.float64)
  return features.mean(axis=0), np.cov(features, rowvar=False)


def _psd_eigenvalues(eigenvalues):
  """Sets eigenvalues that are round-off (below numpy's matrix_rank tolerance) to zero.

  Their square roots would add sqrt(1e-16 * scale) each, 1e-5 in all for 2048 dimensions.
  """
  tolerance = np.abs(eigenvalues).max() * len(eigenvalues) * np.finfo(np.float64).eps
  return np.where(eigenvalues > tolerance, eigenvalues, 0.0)


def _symmetric_sqrt(matrix):
  """Principal square root of a symmetric PSD matrix."""
  eigenvalues, eigenvectors = np.linalg.eigh(matrix)
  return (eigenvectors * np.sqrt(_psd_eigenvalues(eigenvalues))) @ eigenvectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) between N(mu1, S1) and N(mu2, S2).

  tr (S1 S2)^(1/2) is the sum of the square roots of the eigenvalues of S1 S2, which are those
  of the symmetric PSD matrix S1^(1/2) S2 S1^(1/2). Taking them from `eigh` stays real and
  accurate when the covariances are singular (fewer samples than dimensions), where
  `scipy.linalg.sqrtm(S1 @ S2)` returns complex round-off and needs an added offset.
  """
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
  root1 = _symmetric_sqrt(sigma1)
  product = root1 @ sigma2 @ root1
  eigenvalues = np.linalg.eigvalsh((product + product.T) / 2)
  trace_sqrt = np.sqrt(_psd_eigenvalues(eigenvalues)).sum()
  return float(np.sum((mu1 - mu2)**2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def features_frechet_distance(features1, features2) -> float:
  """Fréchet distance between Gaussians fitted to two feature sets [N1, D] and [N2, D]."""
  return frechet_distance(*gaussian_statistics(features1), *gaussian_statistics(features2))


def polynomial_kernel(x, y) -> np.ndarray:
  """KID's kernel k(a, b) = (a.b / D + 1)^3 for all pairs: [N, D], [M, D] -> [N, M]."""
  return (x @ y.T / x.shape[1] + 1.0)**3


def mmd2_unbiased(x, y) -> float:
  """Unbiased estimate of MMD^2 between the distributions of x [N, D] and y [M, D], N, M >= 2.

  Mean of k over distinct pairs within x, plus the same within y, minus twice the mean of k
  over all (x, y) pairs (Bińkowski et al., 2018, eq. 2 of "Demystifying MMD GANs").
  """
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  n, m = len(x), len(y)
  kxx, kyy = polynomial_kernel(x, x), polynomial_kernel(y, y)
  within_x = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
  within_y = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
  return float(within_x + within_y - 2 * polynomial_kernel(x, y).mean())


def kernel_inception_distance(real, fake, num_subsets: int, subset_size: int,
                              seed: int) -> float:
  """KID: the mean of `mmd2_unbiased` over random subsets of both sets (as clean-fid).

  Each subset draws min(subset_size, len(real), len(fake)) rows of each set without
  replacement, from `np.random.default_rng(seed)`, so the value is a function of its inputs.
  """
  rng = np.random.default_rng(seed)
  size = min(subset_size, len(real), len(fake))
  estimates = [mmd2_unbiased(real[rng.choice(len(real), size, replace=False)],
                             fake[rng.choice(len(fake), size, replace=False)])
               for _ in range(num_subsets)]
  return float(np.mean(estimates))


_ROW_BLOCK = 512  # rows of a distance matrix held at once: [512, N] float64


def _squared_distances(a, b) -> np.ndarray:
  """Squared Euclidean distances [len(a), len(b)] between rows, float64, at least 0."""
  squared = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
  return np.maximum(squared, 0.0)


def _row_blocks(count):
  return [slice(start, start + _ROW_BLOCK) for start in range(0, count, _ROW_BLOCK)]


def knn_squared_radii(points, ks) -> dict[int, np.ndarray]:
  """{k: squared distance [N] from each point to its k-th nearest other point} for each k."""
  points = np.asarray(points, np.float64)
  if len(points) <= max(ks):
    raise ValueError(f'{len(points)} points have no {max(ks)}-th nearest other point')
  radii = {k: np.empty(len(points)) for k in ks}
  for rows in _row_blocks(len(points)):
    distances = _squared_distances(points[rows], points)
    distances[np.arange(len(distances)), np.arange(len(points))[rows]] = -1.0  # itself first
    ordered = np.partition(distances, list(ks), axis=1)
    for k in ks:
      radii[k][rows] = ordered[:, k]
  return radii


def nearest_neighbour_measures(real, fake, precision_recall_k: int = 3,
                               density_coverage_k: int = 5) -> dict[str, float]:
  """{'precision', 'recall', 'density', 'coverage'} of `fake` [M, D] against `real` [N, D].

  With B(x, k) the closed ball around x reaching its k-th nearest neighbour in its own set:
  precision = share of fakes inside some B(real, k_pr); recall = share of reals inside some
  B(fake, k_pr) (Kynkäänniemi et al. 2019); density = sum over fakes of the number of
  B(real, k_dc) containing it, / (k_dc M); coverage = share of reals whose B(real, k_dc) holds
  a fake (Naeem et al. 2020). Needs N and M above the k's.
  """
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  real_radii = knn_squared_radii(real, sorted({precision_recall_k, density_coverage_k}))
  fake_radii = knn_squared_radii(fake, [precision_recall_k])[precision_recall_k]
  fake_in_precision_ball = np.zeros(len(fake), bool)
  balls_holding_fake = np.zeros(len(fake))
  real_recalled, real_covered = np.zeros(len(real), bool), np.zeros(len(real), bool)
  for rows in _row_blocks(len(real)):
    distances = _squared_distances(real[rows], fake)  # [block of reals, M]
    fake_in_precision_ball |= (distances <= real_radii[precision_recall_k][rows, None]).any(0)
    inside_density_balls = distances <= real_radii[density_coverage_k][rows, None]
    balls_holding_fake += inside_density_balls.sum(0)
    real_covered[rows] = inside_density_balls.any(1)
    real_recalled[rows] = (distances <= fake_radii[None, :]).any(1)
  return {'precision': float(fake_in_precision_ball.mean()),
          'recall': float(real_recalled.mean()),
          'density': float(balls_holding_fake.sum() / (density_coverage_k * len(fake))),
          'coverage': float(real_covered.mean())}


def nearest_distances(queries, references, exclude_self: bool = False) -> np.ndarray:
  """Distance [len(queries)] from each query to its nearest reference (another one when the
  sets are the same points and `exclude_self`)."""
  queries, references = np.asarray(queries, np.float64), np.asarray(references, np.float64)
  nearest = np.empty(len(queries))
  for rows in _row_blocks(len(queries)):
    distances = _squared_distances(queries[rows], references)
    if exclude_self:
      distances[np.arange(len(distances)), np.arange(len(queries))[rows]] = np.inf
    nearest[rows] = distances.min(1)
  return np.sqrt(nearest)
