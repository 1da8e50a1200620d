"""Offline demo: DCGAN-32 on the 100 real LFW faces that scikit-image ships (grayscale).

  python -m facegan_jax.main --config=configs/lfw_demo.py --workdir=/tmp/lfw_demo

About 1.5 minutes on a 2-core CPU (benchmarks/README.md). Writes an 8x8 sample grid to
/tmp/lfw_demo/samples/ every 500 steps: by step 2000 they are recognisable grayscale faces (eyes,
nose, mouth, hairline, varied pose and lighting), blurry at 32x32 and with some smeared ones; D
wins the game on 100 images. The `test` variant shrinks it to seconds; `best` adds DiffAugment
and the EMA generator (README, 'Better faces'): D stops memorising the faces and samples are
smoother.
"""

from configs import celeba
from configs import default

VARIANTS = ('test', 'best')


def get_config(variant=None):
  default.check_variant('configs/lfw_demo.py', variant, VARIANTS)
  config = default.get_config()
  config.data.source = 'lfw_subset'
  config.model.resolution = 32
  config.model.channels = 1
  config.model.g_width = 32
  config.model.d_width = 32
  config.train.batch_size = 64
  config.train.num_steps = 2000
  config.samples.every = 500
  if variant == 'test':
    default.shrink_for_tests(config)
  elif variant == 'best':
    celeba.use_best(config, small_data=True)
  return config
