"""DCGAN-64 on CelebA, the defaults of the DCGAN paper (configs/default.py).

  python -m facegan_jax.main --config=configs/celeba.py --workdir=/tmp/celeba

About 8,000 steps (6 epochs of the 162,770 faces of the train split; `--config.data.split=all`
takes all 202,599, as the DCGAN code did); recognisable faces appear after the first epoch.
The first run decodes, crops and resizes the faces once into a cache under the TFDS data dir (a
few minutes); later runs read the cache. The `test` variant trains a tiny model for a few steps
(the end-to-end test runs it on `tfds.testing.mock_data`).
"""

from configs import default
from facegan_jax.models import r3gan
from facegan_jax.training import r3gan_schedules

VARIANTS = ('test', 'best', 'best_3k', 'sngan', 'sngan128', 'stylegan2', 'stylegan2_128',
            'stylegan2_ada_3k', 'stylegan2_attributes', 'r3gan')


def get_config(variant=None):
  """The defaults: CelebA's faces, cropped to 140 pixels. Variants: 'test' (seconds on a CPU),
  'best' (EMA generator), 'best_3k' (the first 3,000 faces, with DiffAugment and the EMA
  generator), 'sngan' and 'sngan128' (Mimicry's SNGAN recipe at 64 and 128), 'stylegan2' and
  'stylegan2_128' (NVIDIA's StyleGAN2 at 64x64 and 128x128, stylegan2-ada-pytorch's 'auto'
  settings for one GPU: batch 32, 2 mapping layers, R1 gamma 0.0002 * res^2 / 32, EMA 10 kimg
  with ramp-up 0.05; about 6.4M images, where NVIDIA trains 25M), 'stylegan2_ada_3k' (that
  StyleGAN2 at 64x64 on the first 3,000 faces with ADA, `use_ada`), 'stylegan2_attributes' (that
  StyleGAN2 conditioned on all 40 CelebA attributes, a 0/1 vector per face), 'r3gan' (R3GAN at
  64x64 with its FFHQ-64 preset: `use_r3gan`)."""
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
  elif variant in ('sngan', 'sngan128'):
    config.data.update(split='all', crop=178, random_flip=False)  # Mimicry's CelebA
    use_sngan(config, 128 if variant == 'sngan128' else 64)
  elif variant in ('stylegan2', 'stylegan2_128', 'stylegan2_ada_3k', 'stylegan2_attributes'):
    resolution = 128 if variant == 'stylegan2_128' else 64
    use_stylegan2(config, resolution, batch_size=32, learning_rate=0.0025,
                  r1_gamma=0.0002 * resolution**2 / 32, ema_kimg=10, ema_rampup=0.05)
    config.train.num_steps = 200_000
    config.train.log_every = 500
    config.samples.every = config.checkpoint.every = 5000
    if variant == 'stylegan2_ada_3k':
      config.data.max_examples = 3000  # the 3,000-face subsets of low-budget papers and demos
      use_ada(config)
    if variant == 'stylegan2_attributes':
      config.data.update(labels='celeba_attributes', attributes='')  # all 40
      config.model.c_dim = 40
  elif variant == 'r3gan':
    use_r3gan(config, 'FFHQ-64')
    config.train.log_every = 500
    config.samples.every = config.checkpoint.every = 5000
  return config


def use_ada(config):
  """StyleGAN2-ADA's adaptive discriminator augmentation with NVIDIA's --aug=ada defaults: the
  'bgc' pipe on everything D sees, p from 0 adjusted every 4 steps towards a mean sign of D's
  real logits of 0.6, by batch * 4 / 500,000 a time."""
  config.augment.update(policy='', pipe='bgc', p_mode='adaptive', p=0.0, ada_target=0.6,
                        ada_interval=4, ada_kimg=500.0)


# R3GAN's --aug=1: NVIDIA's augment pipe with its 'bgc' transforms, the colour ones at multiplier
# 0.5, and cutout (no image-space filter, no noise).
R3GAN_PIPE_SETTINGS = 'brightness=0.5,contrast=0.5,lumaflip=0.5,hue=0.5,saturation=0.5,cutout=1'


def use_r3gan(config, preset):
  """R3GAN's paper preset `preset` ('FFHQ-64' or 'FFHQ-256', brownvc/R3GAN's train.py --preset
  with the README's --batch=256 --mirror=1 --aug=1): its networks (models/r3gan.py,
  PRESET_FIELDS) with G's last 4 and D's first 4 stages in bfloat16 (model.bf16_stages, the
  reference's FP16Stages; G's images bfloat16), and its
  recipe with the schedules of r3gan_schedules.PRESETS over 20M images, for 20M images (the
  reference trains until stopped, at the schedules' end values after 20M): NVIDIA's augment pipe
  on everything D sees with the reference's settings (R3GAN_PIPE_SETTINGS), p following the
  preset's cosine (0 -> 0.3 for both FFHQ presets)."""
  schedules = r3gan_schedules.PRESETS[preset]
  total = schedules.learning_rate.total_nimg
  config.model.update(name='r3gan', **r3gan.PRESET_FIELDS[preset])
  config.optim.update(g_learning_rate=schedules.learning_rate.base,
                      d_learning_rate=schedules.learning_rate.base, b1=0.0,
                      b2=schedules.beta2.base)
  config.loss.r1_gamma = schedules.gamma.base
  config.ema.halflife_images = schedules.ema_nimg.final
  config.r3gan.update(schedule_images=total, final_learning_rate=schedules.learning_rate.final,
                      final_b2=schedules.beta2.final, final_gamma=schedules.gamma.final)
  config.augment.update(pipe='bgc', pipe_settings=R3GAN_PIPE_SETTINGS, p_mode='cosine',
                        p=float(schedules.augment_p.base), final_p=schedules.augment_p.final,
                        cosine_images=schedules.augment_p.total_nimg)
  config.data.random_flip = True
  config.train.batch_size = 256
  config.train.num_steps = int(total) // config.train.batch_size


def stylegan2_model(resolution, channel_base=16384, **fields):
  """config.model of a StyleGAN2 at `resolution`: configs/default.py's StyleGAN2 fields (z and w
  of 512) with `channel_base` and `fields` changed."""
  model = default.get_config().model
  model.update({'name': 'stylegan2', 'resolution': resolution, 'latent_dim': 512,
                'channel_base': channel_base, **fields})
  return model


def use_stylegan2(config, resolution, batch_size, learning_rate, r1_gamma, ema_kimg,
                  ema_rampup=0.0):
  """NVIDIA's StyleGAN2 at `resolution` (config.model's StyleGAN2 fields as they are) with its
  recipe: the non-saturating logistic loss, lazy R1 every 16 steps, path-length
  regularisation (weight 2) every 4 steps, Adam(learning_rate, 0, 0.99), the EMA generator
  with half-life ema_kimg * 1000 images, and its training loop's phase order (G's update,
  then D's on fakes of the updated G, each on latents of its own)."""
  config.model.update(name='stylegan2', resolution=resolution, latent_dim=512)
  config.loss.discriminator, config.loss.generator = 'logistic', 'non_saturating'
  config.loss.r1_gamma, config.loss.r1_every = r1_gamma, 16
  config.loss.pl_weight, config.loss.pl_every = 2.0, 4
  config.optim.g_learning_rate = config.optim.d_learning_rate = learning_rate
  config.optim.b1, config.optim.b2 = 0.0, 0.99
  config.ema.halflife_images, config.ema.rampup = ema_kimg * 1000.0, ema_rampup
  config.train.batch_size = batch_size
  config.train.generator_first = True


def use_sngan(config, resolution):
  """Mimicry's SNGAN recipe (its CelebA study: FID 5.71 at 64, 12.93 at 128, with all 202,599
  faces centre-cropped to 178 and not flipped, set by the variants): the ResNet G and D at its
  default widths (ngf = ndf = 1024 at 64 and 128; 256 and 128 at 32), latent 128, hinge loss,
  batch 64, 5 D updates (on 5 real batches) per G update, whose pass draws its own latents,
  Adam(2e-4, 0, 0.9) decaying linearly to 0 over 100,000 G updates. That is 32M real images
  seen by D (158 epochs) and 6.4M fakes seen by G."""
  default_widths = {32: (256, 128), 64: (1024, 1024), 128: (1024, 1024)}
  config.model.update(name='sngan', resolution=resolution, latent_dim=128)
  config.model.g_width, config.model.d_width = default_widths[resolution]
  config.loss.discriminator = config.loss.generator = 'hinge'
  config.train.update(batch_size=64, num_steps=100_000, d_steps=5, fresh_generator_pass=True)
  config.optim.update(g_learning_rate=2e-4, d_learning_rate=2e-4, b1=0.0, b2=0.9,
                      schedule='linear', decay_steps=config.train.num_steps)


def use_best(config, small_data):
  """The switches that trained best here (README, 'Better faces'): the EMA generator, and on
  small data DiffAugment so that D cannot memorise the real images."""
  config.ema.halflife_images = 10_000.0
  if small_data:
    config.augment.policy = 'color,translation,cutout'
