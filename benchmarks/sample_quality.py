"""Precision, recall, density and coverage of runs' samples against their training images.

  python benchmarks/sample_quality.py /tmp/q/base /tmp/q/best [--num=1000]

On the FID Inception's features when its weights are at hand (config.eval.inception_weights, or
--inception_weights; README, "Evaluation and TensorBoard"), with FID and KID beside them, in the
run's config.eval.protocol; else on raw pixels. Precision: the share of samples inside the
k-NN ball of some training image (realism); recall: the share of training images inside the
k-NN ball of some sample (Kynkäänniemi et al. 2019); density and coverage: their counterparts
of Naeem et al. 2020, robust to outliers. Also prints the mean distance from a sample to its
nearest training image, against the same figure for the training images themselves (nearest
other training image), in the same space: far below it suggests copying.
"""

import argparse
import os
import sys

if not __package__:  # run as `python benchmarks/FILE.py`: make the repository root importable
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from facegan_jax.data import image_sources
from facegan_jax.metrics import distances
from facegan_jax.metrics import fid
from facegan_jax.sampling import generation
from facegan_jax.system import parallel


def _inception_features(config, reals, fakes):
  """(real features, fake features) through config.eval's Inception and protocol."""
  extractor = fid.make_extractor(config.eval, parallel.make_mesh())
  real = fid.reference_features(reals, extractor, config.eval.stats_dir,
                                f'{config.data.source}-{config.data.split}')
  return real, extractor.of_images(fakes)


def quality(workdir, num, seed, inception_weights):
  """{'space', 'step', measures...} of `num` samples of `workdir`'s newest checkpoint."""
  restored = generation.RestoredGenerator(workdir)
  config = restored.config
  fakes = restored.images(restored.seed_latents(seed, num))
  reals = image_sources.load_images(config)
  weights = inception_weights or config.eval.inception_weights
  if os.path.isfile(os.path.expanduser(weights)):
    config.eval.inception_weights = weights
    real, fake = _inception_features(config, reals, fakes)
    space = f'inception ({config.eval.protocol})'
    measures = fid.scores(real, fake, kid_subsets=config.eval.kid_subsets,
                          kid_subset_size=config.eval.kid_subset_size, seed=config.seed,
                          precision_recall_k=config.eval.precision_recall_k,
                          density_coverage_k=config.eval.density_coverage_k)
  else:
    real, fake = reals.reshape(len(reals), -1) / 255.0, fakes.reshape(num, -1) / 255.0
    space = 'pixels'
    measures = distances.nearest_neighbour_measures(real, fake, config.eval.precision_recall_k,
                                                    config.eval.density_coverage_k)
  return dict(measures, space=space, step=restored.step,
              nn_fake_to_real=float(distances.nearest_distances(fake, real).mean()),
              nn_real_to_real=float(distances.nearest_distances(real, real, True).mean()))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('workdirs', nargs='+', help='workdirs of training runs')
  parser.add_argument('--num', type=int, default=1000, help='samples per run')
  parser.add_argument('--seed', type=int, default=0, help='seed of the sample latents')
  parser.add_argument('--inception_weights', default='',
                      help='FID Inception .npz; default: the run\'s config.eval.inception_weights')
  args = parser.parse_args()
  for workdir in args.workdirs:
    q = quality(workdir, args.num, args.seed, args.inception_weights)
    names = [name for name in ('fid', 'kid') if name in q] + [
        'precision', 'recall', 'density', 'coverage', 'nn_fake_to_real', 'nn_real_to_real']
    print(f'{workdir} step {q["step"]}, {args.num} samples, {q["space"]}: '
          + ' '.join(f'{name} {q[name]:.4f}' for name in names))


if __name__ == '__main__':
  main()
