"""Do a demo run's samples copy its training faces? Pixel distances to the nearest training face.

  python benchmarks/nearest_faces.py [--num=1000] [--seed=0] DIR [DIR ...]

With 100 training faces, KID and coverage also reward a generator that copies them. This
measures copying directly, in pixels (L2 over every pixel scaled to [-1, 1], as the networks see
them). First the baseline: the distance from each of the run's training images to its nearest
other training image (its median and minimum). Then, for each DIR, `--num` samples of its newest
checkpoint (`sample`'s latents of `--seed`): the median and minimum distance to the nearest
training image, and how many samples are nearer to one than the two closest training images are
to each other (a copy would be near 0).
"""

import argparse
import os
import sys

if not __package__:  # run as `python benchmarks/FILE.py`: make the repository root importable
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=wrong-import-position

from facegan_jax.data import image_sources  # pylint: disable=wrong-import-position
from facegan_jax.metrics import distances  # pylint: disable=wrong-import-position
from facegan_jax.sampling import generation  # pylint: disable=wrong-import-position
from facegan_jax.system.errors import exit_on_user_error  # pylint: disable=wrong-import-position


GENERATION_BATCH = 256  # images generated at a time; they do not depend on it


def positive_count(text: str) -> int:
  """--num's value: a whole number of samples, at least 1."""
  if not text.isdigit() or int(text) < 1:
    raise argparse.ArgumentTypeError(f'{text!r} is not a number of samples; use e.g. 1000')
  return int(text)


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('workdirs', nargs='+', metavar='DIR', help="a run's workdir")
  parser.add_argument('--num', type=positive_count, default=1000, help='samples per run')
  parser.add_argument('--seed', type=int, default=0, help="the samples' latent seed")
  return parser.parse_args(argv)


def flat_pixels(images: np.ndarray) -> np.ndarray:
  """uint8 images [N, H, W, C] -> [N, H * W * C] in [-1, 1]."""
  return images.reshape(len(images), -1).astype(np.float64) / 127.5 - 1.0


@exit_on_user_error
def main(args):
  for workdir in args.workdirs:
    restored = generation.RestoredGenerator(workdir, batch_size=GENERATION_BATCH)
    real = flat_pixels(image_sources.load_images(restored.config))
    between_real = distances.nearest_distances(real, real, exclude_self=True)
    samples = flat_pixels(restored.images(restored.seed_latents(args.seed, args.num)))
    to_real = distances.nearest_distances(samples, real)
    print(f'{workdir} (step {restored.step}): {len(real)} training images, each to its nearest '
          f'other: median {np.median(between_real):.2f}, min {between_real.min():.2f}; '
          f'{args.num} samples to their nearest training image: median '
          f'{np.median(to_real):.2f}, min {to_real.min():.2f}, '
          f'{int((to_real < between_real.min()).sum())} nearer than that min')


if __name__ == '__main__':
  main(parse_args(sys.argv[1:]))
