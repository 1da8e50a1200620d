"""Offline demo: DCGAN-32 on the 100 real LFW faces that scikit-image ships (grayscale).

  python -m facegan_jax.main --config=configs/lfw_demo.py --workdir=/tmp/lfw_demo

About 1.5 minutes on a 2-core CPU (benchmarks/README.md). Writes an 8x8 sample grid to
/tmp/lfw_demo/samples/ every 500 steps: by step 2000 they are recognisable grayscale faces (eyes,
nose, mouth, hairline, varied pose and lighting), blurry at 32x32 and with some smeared ones; D wins
the game on 100 images. The `test` variant shrinks it to seconds; `best` adds DiffAugment and the
EMA generator (README, 'Better faces'): D stops memorising the faces and samples are smoother.
`sngan` trains SNGAN-32 (Mimicry's networks at widths 16, hinge loss) with a recipe for the CPU
budget: one D update per G update, D learning 4x faster than G, the EMA generator, 2,000 steps of
batch 32 (about 3 CPU-minutes): varied grey faces, some distorted (benchmarks/README.md, 'Every demo
variant, one hour'). `sngan_test` is Mimicry's own recipe (5 D updates, Adam(2e-4, 0, 0.9) decaying
linearly) shrunk to seconds. `stylegan2` trains a small StyleGAN2 (32 channels at every resolution,
z = w = 64, 2 mapping layers) with NVIDIA's recipe in its 'cifar' configuration for 32x32 images
(lazy R1, no path-length regularisation and no style mixing, the EMA generator with ramp-up,
Adam(0.0025, 0, 0.99), G's phase first) at batch 8 for STYLEGAN2_STEPS steps (about 2.5
CPU-minutes): grey faces (benchmarks/README.md, 'Every demo variant, one hour'); `stylegan2_test`
shrinks it to seconds, with the path length and style mixing on. `r3gan` trains a small R3GAN (width
16, one group per convolution) with R3GAN's loss and loop (D's phase with R1 and R2 at every step,
then G's, cosine schedules) at the demo's settings (batch 8, 10x the paper's learning rates, the
gamma of R3GAN's CIFAR-10 preset, no augmentation) for R3GAN_STEPS steps (about 2 CPU-minutes):
recognisable grey faces, some distorted (benchmarks/README.md, 'R3GAN draws faces'); `r3gan_test`
shrinks it to seconds, with R3GAN's augment pipe on. `ada` and `stylegan2_ada` add ADA (NVIDIA's
'bgc' augment pipe with its adaptive p, target 0.6) to DCGAN and StyleGAN2, with p moving fast
enough for the demo's few images seen (ada_kimg 50 and 10, NVIDIA's is 500), DCGAN's for
DCGAN_ADA_STEPS steps (the pipe's cost leaves fewer); `ada_test` and `stylegan2_ada_test` shrink
them to seconds, with p moving by 0.01 every 2 steps.
`faces_or_not` is the demo conditional on a label: scikit-image's 100 LFW faces (class 0) and its
100 non-face patches (class 1) in the dataset zip that `python benchmarks/conditional_demo.py`
writes to FACES_OR_NOT_ZIP; sample a class with `python -m facegan_jax.sample --class=K`.
"""

from configs import celeba
from configs import default

VARIANTS = ('test', 'best', 'sngan', 'sngan_test', 'stylegan2', 'stylegan2_test', 'r3gan',
            'r3gan_test', 'ada', 'ada_test', 'stylegan2_ada', 'stylegan2_ada_test', 'faces_or_not')
# The labelled zip of `faces_or_not`, written by benchmarks/conditional_demo.py.
FACES_OR_NOT_ZIP = '/tmp/faces_or_not.zip'
# What fits 5 CPU-minutes here, compilation included (benchmarks/README.md, 'Every demo variant,
# one hour').
STYLEGAN2_STEPS = 2800  # of batch 8, with or without ADA ('Every demo variant, one hour')
DCGAN_ADA_STEPS = 1500  # of the DCGAN demo's 2,000: the augment pipe's cost leaves fewer
R3GAN_STEPS = 2400  # of batch 8 ('R3GAN draws faces')


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
  if variant in ('test', 'ada_test'):
    default.shrink_for_tests(config)
  elif variant == 'best':
    celeba.use_best(config, small_data=True)
  elif variant == 'sngan':
    use_sngan_demo(config)
  elif variant == 'sngan_test':  # seconds: widths 16, batch 8, 2 D updates per step, 4 steps
    celeba.use_sngan(config, 32)
    default.shrink_for_tests(config)
    config.optim.decay_steps = config.train.num_steps
    config.model.g_width = config.model.d_width = 16
    config.train.d_steps = 2
  elif variant in ('stylegan2', 'stylegan2_test', 'stylegan2_ada', 'stylegan2_ada_test'):
    config.model.update(channel_base=1024, channel_max=32, w_dim=64)
    # Batch 8: faces in fewer images than at batch 32, at more images/s here (benchmarks/
    # README.md, 'Every demo variant, one hour'); R1's gamma is NVIDIA's formula at batch 32.
    celeba.use_stylegan2(config, 32, batch_size=8, learning_rate=0.0025,
                         r1_gamma=0.0002 * 32**2 / 32, ema_kimg=10, ema_rampup=0.05)
    # NVIDIA's 'cifar' configuration for 32x32 images: no path-length regularisation and no
    # style mixing (benchmarks/README.md: with them the demo drew no faces in its budget).
    config.loss.pl_weight = 0.0
    config.model.update(latent_dim=64, channels=1, style_mixing_prob=0.0)
    config.train.num_steps = STYLEGAN2_STEPS
    config.train.log_every, config.samples.every = 200, 400
    if variant.endswith('_test'):
      shrink_stylegan2_for_tests(config)
  elif variant in ('r3gan', 'r3gan_test'):
    use_r3gan_demo(config)
    if variant == 'r3gan_test':
      shrink_r3gan_for_tests(config)
  if 'ada' in (variant or '').split('_'):
    celeba.use_ada(config)
    config.augment.ada_kimg = 10.0 if config.model.name == 'stylegan2' else 50.0
  if variant == 'ada':
    config.train.num_steps = DCGAN_ADA_STEPS
  if (variant or '').endswith('ada_test'):  # p moves by 0.01 every 2 steps of 8 images
    config.augment.update(ada_interval=2, ada_kimg=1.6)
  if variant == 'faces_or_not':
    config.data.update(source='zip', path=FACES_OR_NOT_ZIP, crop=0, labels='dataset_json')
    config.model.c_dim = 2
  return config


def use_r3gan_demo(config):
  """A small R3GAN-32 (width 16 in every stage, one block per stage, z of 64) with R3GAN's loss
  and loop (configs/celeba.py, use_r3gan) at settings that draw faces on the CPU budget
  (benchmarks/README.md, 'R3GAN draws faces'): R3GAN_STEPS steps of batch 8 (fewer images to
  faces than batch 16 or 32, and more images/s here), learning rates 2e-3 -> 5e-4 (10x the
  paper's), the gamma of R3GAN's CIFAR-10 preset, 0.05 -> 0.005 (ImageNet-32's 0.5 drew faces a
  little later), the schedules ending with the run, and no augmentation: R3GAN's pipe (p 0 ->
  0.3) halved the faces at step 600 and cost 35% of the speed. One group per convolution:
  XLA:CPU differentiates grouped convolutions with respect to their weights about 15x slower than
  an ungrouped one of 8x the work. Float32 throughout (model.bf16_stages 0): the reference's 3
  bfloat16 stages of a 32x32 network made the step about 1.2x slower on this CPU."""
  celeba.use_r3gan(config, 'FFHQ-64')
  config.model.update(resolution=32, channels=1, channel_base=512, channel_max=16,
                      group_width=32, blocks_per_stage=1, bf16_stages=0)
  config.train.update(batch_size=8, num_steps=R3GAN_STEPS, log_every=100)
  config.optim.g_learning_rate = config.optim.d_learning_rate = 2e-3
  config.r3gan.final_learning_rate = 5e-4
  config.loss.r1_gamma, config.r3gan.final_gamma = 0.05, 0.005
  config.r3gan.schedule_images = config.augment.cosine_images = float(
      R3GAN_STEPS * config.train.batch_size)
  config.augment.update(pipe='', pipe_settings='')
  config.ema.halflife_images = 500.0
  config.samples.every = 400


def shrink_r3gan_for_tests(config):
  """The `r3gan` demo shrunk to seconds: 8x8 with widths 16 and 8 in groups of 8, z of 16,
  batch 8, 2 steps whose schedules end after 16 images (the two steps see different values),
  with R3GAN's augment pipe back on, so that the tests cover all of its recipe (p is 0, then
  0.15)."""
  config.model.update(resolution=8, channel_base=64, channel_max=16, group_width=8,
                      latent_dim=16)
  config.train.update(batch_size=8, num_steps=2, log_every=1)
  config.augment.update(pipe='bgc', pipe_settings=celeba.R3GAN_PIPE_SETTINGS)
  config.r3gan.schedule_images = config.augment.cosine_images = 16.0
  config.ema.halflife_images = 16.0
  config.samples.update(every=2, count=4)
  config.checkpoint.every = 2


def shrink_stylegan2_for_tests(config):
  """The `stylegan2` demo shrunk to seconds: 16x16 with 8 to 16 channels, z = w = 16, batch 8,
  4 steps, and NVIDIA's whole recipe, so that the tests cover all of it: style mixing and both
  lazy regularisers (R1 and the path length), on every second step (compiling the step takes
  most of the time)."""
  config.model.update(resolution=16, channel_base=128, channel_max=16, latent_dim=16, w_dim=16,
                      style_mixing_prob=0.9)
  config.loss.pl_weight = 2.0
  config.loss.r1_every = config.loss.pl_every = 2
  config.train.update(batch_size=8, num_steps=4, log_every=2)
  config.samples.update(every=2, count=4)
  config.checkpoint.every = 2


def use_sngan_demo(config):
  """SNGAN-32 (configs/celeba.py, use_sngan: Mimicry's networks, hinge loss, betas (0, 0.9))
  with a recipe that trains within 5 CPU-minutes here: widths 16, one D update per G update
  with D's learning rate 4x G's (the two-time-scale rule: Mimicry's 5 D updates cost 3x the
  CPU and learned slower per CPU-second here), both 2.5x Mimicry's and constant, G's update
  reusing the D update's fakes (as DCGAN's: one generator pass less), the EMA generator, 2,000
  steps of batch 32 (benchmarks/README.md, 'Every demo variant, one hour': at batch 64 the faces
  were warped, with smeared mouths)."""
  celeba.use_sngan(config, 32)
  config.model.g_width = config.model.d_width = 16
  config.train.update(batch_size=32, num_steps=2000, d_steps=1, fresh_generator_pass=False)
  config.optim.update(g_learning_rate=5e-4, d_learning_rate=2e-3, schedule='constant')
  config.ema.halflife_images = 5000.0
  config.samples.every = 250
