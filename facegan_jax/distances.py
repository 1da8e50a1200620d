"""Distances between two sets of features: Fréchet distance (FID) and the KID estimator.

Both take features [N, D] (float, any N >= 2) and compute in float64 with numpy on the host.
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
