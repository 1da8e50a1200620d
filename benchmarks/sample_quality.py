"""Precision and recall of a run's samples against its training images, in pixel space.

  python benchmarks/sample_quality.py /tmp/q/base /tmp/q/best [--num=1000]

For small offline data (the 100 LFW faces) where no FID Inception weights are at hand: the k-NN
precision and recall of Kynkäänniemi et al. (2019), computed on raw pixels. Precision is the
fraction of samples inside the k-NN ball of some training image (realism); recall is the
fraction of training images inside the k-NN ball of some sample (coverage). Also prints the
mean distance from a sample to its nearest training image, against the same figure for the
training images themselves (nearest other training image): far below it suggests copying.
"""

import argparse
import os
import sys

if not __package__:  # run as `python benchmarks/FILE.py`: make the repository root importable
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

from facegan_jax import generation
from facegan_jax import image_sources


def pairwise_distances(a, b):
  """Euclidean distances [len(a), len(b)] between rows of a and b."""
  squared = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
  return np.sqrt(np.maximum(squared, 0.0))


def knn_radii(points, k):
  """Distance from each point to its k-th nearest other point."""
  distances = pairwise_distances(points, points)
  return np.sort(distances, axis=1)[:, k]  # column 0 is the point itself


def coverage(queries, references, radii):
  """Fraction of queries within the k-NN ball of at least one reference point."""
  return float((pairwise_distances(queries, references) <= radii[None, :]).any(axis=1).mean())


def quality(workdir, num, k, seed):
  restored = generation.RestoredGenerator(workdir)
  fakes = restored.images(restored.seed_latents(seed, num)).reshape(num, -1) / 255.0
  reals = image_sources.load_images(restored.config)
  reals = reals.reshape(len(reals), -1) / 255.0
  return {
      'step': restored.step,
      'precision': coverage(fakes, reals, knn_radii(reals, k)),
      'recall': coverage(reals, fakes, knn_radii(fakes, k)),
      'nn_fake_to_real': float(pairwise_distances(fakes, reals).min(axis=1).mean()),
      'nn_real_to_real': float(np.sort(pairwise_distances(reals, reals), axis=1)[:, 1].mean()),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('workdirs', nargs='+', help='workdirs of training runs')
  parser.add_argument('--num', type=int, default=1000, help='samples per run')
  parser.add_argument('--k', type=int, default=3, help='neighbourhood size of the k-NN balls')
  parser.add_argument('--seed', type=int, default=0, help='seed of the sample latents')
  args = parser.parse_args()
  print(f'{"workdir":<24} {"step":>6} {"precision":>9} {"recall":>7} {"NN fake->real":>13} '
        f'{"NN real->real":>13}')
  for workdir in args.workdirs:
    q = quality(workdir, args.num, args.k, args.seed)
    print(f'{workdir:<24} {q["step"]:>6} {q["precision"]:>9.3f} {q["recall"]:>7.3f} '
          f'{q["nn_fake_to_real"]:>13.3f} {q["nn_real_to_real"]:>13.3f}')


if __name__ == '__main__':
  main()
