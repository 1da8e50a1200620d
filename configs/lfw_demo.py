"""Offline demo: DCGAN-32 on the 100 real LFW faces that scikit-image ships (grayscale).

  python -m facegan_jax.main --config=configs/lfw_demo.py --workdir=/tmp/lfw_demo

About 1.5 minutes on a 2-core CPU (about 1,500 images/s). Writes an 8x8 sample grid to
/tmp/lfw_demo/samples/ every 500 steps: by step 2000 they are recognisable grayscale faces (eyes,
nose, mouth, hairline, varied pose and lighting), blurry at 32x32 and with some smeared ones; D
wins the game on 100 images (D(x) near 0.97). The `test` variant shrinks it to seconds; `best`
adds DiffAugment and the EMA generator (README, 'Better faces'): D stops memorising the faces
(D(x) near 0.57) and samples are smoother, at about 0.8x the speed.
The `stylegan2` variant trains a small StyleGAN2 (channels 64 up to 16x16, 32 at 32x32, z = w =
64, 2 mapping layers) with NVIDIA's recipe (lazy R1 and path-length regularisation, style
mixing, the EMA generator with ramp-up, Adam(0.0025, 0, 0.99)) for 300 steps (9,600 images):
far too few for StyleGAN2 to draw faces (NVIDIA trains on millions); at step 250 its samples
are grey mottled textures.
"""

from configs import celeba

# 300 steps took 10 CPU-minutes (compilation included) on the shared, overloaded CPU here
# (benchmarks/README.md, 'StyleGAN2 on the LFW demo'); the 5-minute budget needs a quieter one.
STYLEGAN2_STEPS = 300


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
  elif variant == 'stylegan2':
    model = celeba.stylegan2_model(32, channel_base=1024, channel_max=64, latent_dim=64,
                                   w_dim=64)
    model.channels = 1
    celeba.use_stylegan2(config, model, batch_size=32, learning_rate=0.0025,
                         r1_gamma=0.0002 * 32**2 / 32, ema_kimg=10, ema_rampup=0.05)
    config.train.num_steps = STYLEGAN2_STEPS
    config.train.log_every, config.train.sample_every = 50, 100
  elif variant:
    raise ValueError(f"configs/lfw_demo.py has no variant {variant!r}; use 'test', 'best', "
                     "'stylegan2' or none.")
  return config
