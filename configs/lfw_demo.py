"""Offline demo: DCGAN-32 on the 100 real LFW faces that scikit-image ships (grayscale).

  python -m facegan_jax.main --config=configs/lfw_demo.py --workdir=/tmp/lfw_demo

Runs in a few minutes on a 2-core CPU and writes 8x8 sample grids to /tmp/lfw_demo/samples/;
by the end they show face-like blobs: dark eyes and mouth on a lighter oval, some hair. The
`test` variant is the same run shrunk to seconds.
"""

from configs import celeba


def get_config(variant=None):
  config = celeba.get_config()
  config.data.source = 'lfw_subset'
  config.model.resolution = 32
  config.model.channels = 1
  config.model.g_width = 32
  config.model.d_width = 32
  config.train.batch_size = 32
  config.train.num_steps = 1500
  config.train.log_every = 100
  config.train.sample_every = 500
  if variant == 'test':
    config.model.g_width = 8
    config.model.d_width = 8
    config.train.batch_size = 8
    config.train.num_steps = 4
    config.train.log_every = 2
    config.train.sample_every = 2
    config.train.num_samples = 4
  elif variant:
    raise ValueError(f"configs/lfw_demo.py has no variant {variant!r}; use 'test' or none.")
  return config
