"""DCGAN-64 on CelebA, the defaults of the DCGAN paper (configs/default.py).

  python -m facegan_jax.main --config=configs/celeba.py --workdir=/tmp/celeba

About 8,000 steps (6 epochs of the 162,770 faces of the train split; `--config.data.split=all`
takes all 202,599, as the DCGAN code did); recognisable faces appear after the first epoch.
The first run decodes, crops and resizes the faces once into a cache under the TFDS data dir (a
few minutes); later runs read the cache. The `test` variant trains a tiny model for a few steps
(the end-to-end test runs it on `tfds.testing.mock_data`).
"""

from configs import default

VARIANTS = ('test', 'best', 'best_3k')


def get_config(variant=None):
  """The defaults: CelebA's faces, cropped to 140 pixels. Variants: 'test' (seconds on a CPU), 'best' (EMA
  generator), 'best_3k' (the first 3,000 faces, with DiffAugment and the EMA generator)."""
  default.check_variant('configs/celeba.py', variant, VARIANTS)
  config = default.get_config()
  if variant == 'test':
    config.data.max_examples = 32
    config.model.resolution = 16
    default.shrink_for_tests(config)
  elif variant == 'best':
    use_best(config, small_data=False)
  elif variant == 'best_3k':
    config.data.max_examples = 3000  # the 3,000-face subsets of low-budget papers and demos
    use_best(config, small_data=True)
  return config


def use_best(config, small_data):
  """The switches that trained best here (README, 'Better faces'): the EMA generator, and on
  small data DiffAugment so that D cannot memorise the real images."""
  config.ema.halflife_images = 10_000.0
  if small_data:
    config.augment.policy = 'color,translation,cutout'
