"""Offline demo: DCGAN-32 on the 100 real LFW faces that scikit-image ships (grayscale).

  python -m facegan_jax.main --config=configs/lfw_demo.py --workdir=/tmp/lfw_demo

About 1.5 minutes on a 2-core CPU (about 1,500 images/s). Writes an 8x8 sample grid to
/tmp/lfw_demo/samples/ every 500 steps: by step 2000 they are recognisable grayscale faces (eyes,
nose, mouth, hairline, varied pose and lighting), blurry at 32x32 and with some smeared ones; D
wins the game on 100 images (D(x) near 0.97). The `test` variant shrinks it to seconds; `best`
adds DiffAugment and the EMA generator (README, 'Better faces'): D stops memorising the faces
(D(x) near 0.57) and samples are smoother, at about 0.8x the speed.
"""

from configs import celeba


def get_config(variant=None):
  config = celeba.get_config()
  config.data.source = 'lfw_subset'
  config.model.resolution = 32
  config.model.channels = 1
  config.model.g_width = 32
  config.model.d_width = 32
  config.train.batch_size = 64
  config.train.num_steps = 2000
  config.train.log_every = 100
  config.train.sample_every = 500
  if variant == 'test':
    celeba.shrink_for_tests(config)
  elif variant == 'best':
    celeba.use_best(config, small_data=True)
  elif variant:
    raise ValueError(f"configs/lfw_demo.py has no variant {variant!r}; use 'test', 'best' or "
                     'none.')
  return config
