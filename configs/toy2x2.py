"""The simplest GAN: 2x2 grayscale 'slanted faces' with a tiny dense G and D.

  python -m facegan_jax.main --config=configs/toy2x2.py --workdir=/tmp/toy2x2

A face has dark (high) top-left and bottom-right pixels and light others; the seed's rule calls
an image a face when TL + BR - TR - BL > 1 on a [0, 1] scale. Within seconds on a CPU, more
than 95% of the generator's images pass the rule (an untrained one: none).
"""

from configs import default


def get_config(variant=None):
  default.check_variant('configs/toy2x2.py', variant, ())
  config = default.get_config()
  config.data.source = 'toy2x2'
  config.data.random_flip = False  # a mirrored face is not a face in this world
  config.model.name = 'mlp'
  config.model.resolution = 2
  config.model.channels = 1
  config.model.latent_dim = 4
  config.model.hidden = 16
  config.optim.g_learning_rate = 1e-3
  config.optim.d_learning_rate = 1e-3
  config.train.batch_size = 64
  config.train.num_steps = 500
  config.samples.every = 500
  return config
