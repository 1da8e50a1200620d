"""DCGAN-64 on CelebA, the defaults of the DCGAN paper (Adam 2e-4, beta1 0.5, batch 128, z 100).

  python -m facegan_jax.main --config=configs/celeba.py --workdir=/tmp/celeba

About 8,000 steps (5 epochs of the 202,599 training faces); recognisable faces appear after the
first epoch. Other configs start from this one and override a few fields.
"""

import ml_collections


def get_config(variant=None):
  """The DCGAN-faithful defaults; no variants yet."""
  if variant:
    raise ValueError(f'configs/celeba.py has no variant {variant!r}.')
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.source = 'celeb_a'
  config.data.split = 'train'
  config.data.random_flip = True

  config.model = ml_collections.ConfigDict()
  config.model.name = 'dcgan'
  config.model.resolution = 64
  config.model.channels = 3
  config.model.latent_dim = 100
  config.model.g_width = 64  # ngf: generator channels at full resolution / 2
  config.model.d_width = 64  # ndf: discriminator channels of its first layer
  config.model.g_norm = 'batch'
  config.model.d_norm = 'batch'
  config.model.hidden = 0  # width of the dense layers of the 'mlp' models; unused by DCGAN

  config.loss = ml_collections.ConfigDict()
  config.loss.generator = 'non_saturating'  # or 'minimax'

  config.optim = ml_collections.ConfigDict()
  config.optim.g_learning_rate = 2e-4
  config.optim.d_learning_rate = 2e-4
  config.optim.b1 = 0.5
  config.optim.b2 = 0.999

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 128  # global, over all devices and hosts
  config.train.num_steps = 8000
  config.train.d_steps = 1  # discriminator updates per generator update
  config.train.log_every = 100
  config.train.sample_every = 1000
  config.train.num_samples = 64  # images in each sample grid, from fixed latents
  return config
