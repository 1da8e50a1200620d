"""DCGAN-64 on CelebA, the defaults of the DCGAN paper (Adam 2e-4, beta1 0.5, batch 128, z 100).

  python -m facegan_jax.main --config=configs/celeba.py --workdir=/tmp/celeba

About 8,000 steps (6 epochs of the 162,770 faces of the train split; `--config.data.split=all`
takes all 202,599, as the DCGAN code did); recognisable faces appear after the first epoch.
Other configs start from this one and override a few fields. The first run decodes, crops and
resizes the faces once into a cache under the TFDS data dir (a few minutes); later runs read the
cache. The `test` variant trains a tiny model for a few steps (the end-to-end test runs it on
`tfds.testing.mock_data`).
"""

import ml_collections


VARIANTS = ('test', 'best', 'best_3k', 'stylegan2', 'stylegan2_128')


def get_config(variant=None):
  """The DCGAN-faithful defaults. Variants: 'test' (seconds on a CPU), 'best' (EMA generator),
  'best_3k' (the first 3,000 faces, with DiffAugment and the EMA generator), 'stylegan2' and
  'stylegan2_128' (NVIDIA's StyleGAN2 at 64x64 and 128x128, stylegan2-ada-pytorch's 'auto'
  settings for one GPU: batch 32, 2 mapping layers, R1 gamma 0.0002 * res^2 / 32, EMA 10 kimg
  with ramp-up 0.05; about 6.4M images, where NVIDIA trains 25M)."""
  if variant not in (None, '') + VARIANTS:
    raise ValueError(f'configs/celeba.py has no variant {variant!r}; use one of {VARIANTS} '
                     'or none.')
  config = ml_collections.ConfigDict()
  config.seed = 0
  # Bit-identical reruns on GPU too: main sets XLA's deterministic-ops flag (a little slower).
  config.deterministic = True

  config.data = ml_collections.ConfigDict()
  config.data.source = 'celeb_a'  # or 'folder' (config.data.path), 'lfw_subset', 'toy2x2'
  config.data.split = 'train'  # of celeb_a: 'train', 'validation', 'test', 'all', 'train+test'...
  config.data.path = ''  # 'folder' source: every .jpg/.jpeg/.png under it, recursively
  config.data.data_dir = ''  # TFDS data dir; '' = $TFDS_DATA_DIR or ~/tensorflow_datasets
  config.data.cache_dir = ''  # prepared-image caches; '' = <data_dir>/facegan_jax_cache
  config.data.crop = 140  # side of the centered square crop, source pixels (0: min(H, W))
  config.data.max_examples = 0  # train on the first N examples only (0: all)
  config.data.threads = 0  # threads that decode and resize into the cache (0: one per core)
  config.data.prefetch = 2  # batches made ready ahead of the step by a background thread
  config.data.random_flip = True

  config.model = ml_collections.ConfigDict()
  config.model.name = 'dcgan'
  config.model.resolution = 64
  config.model.channels = 3
  config.model.latent_dim = 100
  config.model.g_width = 64  # ngf: generator channels at full resolution / 2
  config.model.d_width = 64  # ndf: discriminator channels of its first layer
  config.model.g_norm = 'batch'
  config.model.d_norm = 'batch'  # or 'none', 'spectral' (spectral normalisation)
  config.model.hidden = 0  # width of the dense layers of the 'mlp' models; unused by DCGAN

  config.loss = ml_collections.ConfigDict()
  config.loss.discriminator = 'logistic'  # J_D of the GAN paper, or 'hinge'
  config.loss.generator = 'non_saturating'  # or 'minimax' (the paper's), 'hinge'
  config.loss.r1_gamma = 0.0  # R1 penalty on real images: D's loss += gamma / 2 * R1; 0: off
  # Lazy R1: every k > 1 steps, weighted by k, in an Adam step of its own with the learning
  # rate and betas adjusted (StyleGAN2 uses 16); k = 1: in D's loss at every step.
  config.loss.r1_every = 1
  # StyleGAN2's path-length regulariser: every pl_every steps, an Adam step of G's own on
  # pl_every * pl_weight * penalty of batch / pl_batch_shrink latents; 0: off.
  config.loss.pl_weight = 0.0
  config.loss.pl_every = 4
  config.loss.pl_batch_shrink = 2
  config.loss.pl_decay = 0.01  # of the running mean of the path lengths

  config.augment = ml_collections.ConfigDict()
  config.augment.policy = ''  # DiffAugment ops for D's inputs: e.g. 'color,translation,cutout'
  config.augment.strength = 1.0  # scales every op's magnitude; 0: identity

  config.ema = ml_collections.ConfigDict()
  config.ema.halflife_images = 0.0  # EMA generator whose weight halves every N images; 0: off
  config.ema.rampup = 0.0  # half-life at most rampup * images seen so far (StyleGAN2-ADA); 0: off

  config.optim = ml_collections.ConfigDict()
  config.optim.g_learning_rate = 2e-4
  config.optim.d_learning_rate = 2e-4
  config.optim.b1 = 0.5
  config.optim.b2 = 0.999

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 128  # global, over all devices and hosts
  config.train.num_steps = 8000
  config.train.d_steps = 1  # discriminator updates per generator update
  # 'bfloat16': convolutions and dense layers compute in bfloat16 (the usual choice on TPU and
  # recent GPUs); params, Adam state, BatchNorm statistics and losses stay float32.
  config.train.compute_dtype = 'float32'
  config.train.log_every = 100
  config.train.sample_every = 1000
  config.train.num_samples = 64  # images in each sample grid, from fixed latents

  config.checkpoint = ml_collections.ConfigDict()
  config.checkpoint.every = 1000  # steps between saves (and one at the end)
  config.checkpoint.keep = 3  # newest checkpoints kept in workdir/checkpoints
  # FID/KID with the FID Inception (README, "Evaluation and TensorBoard"). Off by default: the
  # Inception weights are a separate download; with them, e.g. --config.eval.eval_every=1000.
  config.eval = ml_collections.ConfigDict()
  config.eval.eval_every = 0  # steps between evaluations during training (and at the end); 0: off
  config.eval.num_samples = 10_000  # generated images, and real ones at most; papers use 50_000
  config.eval.batch_size = 128  # images per Inception batch, global over devices
  config.eval.inception_weights = '~/.cache/facegan_jax/inception-2015-12-05.npz'
  config.eval.inception_width_multiplier = 1.0  # < 1: smaller random nets for tests only
  config.eval.stats_dir = '~/.cache/facegan_jax/inception_stats'  # cached real features
  config.eval.kid_subsets = 100  # KID: mean unbiased MMD^2 over this many random subsets
  config.eval.kid_subset_size = 1000  # of this many images each (as clean-fid and StyleGAN)
  if variant == 'test':
    config.data.max_examples = 32
    config.model.resolution = 16
    shrink_for_tests(config)
  elif variant == 'best':
    use_best(config, small_data=False)
  elif variant == 'best_3k':
    config.data.max_examples = 3000  # the 3,000-face subsets of low-budget papers and demos
    use_best(config, small_data=True)
  elif variant in ('stylegan2', 'stylegan2_128'):
    resolution = 128 if variant == 'stylegan2_128' else 64
    use_stylegan2(config, stylegan2_model(resolution), batch_size=32, learning_rate=0.0025,
                  r1_gamma=0.0002 * resolution**2 / 32, ema_kimg=10, ema_rampup=0.05)
    config.train.num_steps = 200_000
    config.train.log_every = 500
    config.train.sample_every = config.checkpoint.every = 5000
  return config


def use_best(config, small_data):
  """The switches that trained best here (README, 'Better faces'): the EMA generator, and on
  small data DiffAugment so that D cannot memorise the real images."""
  config.ema.halflife_images = 10_000.0
  if small_data:
    config.augment.policy = 'color,translation,cutout'


def shrink_for_tests(config):
  """Seconds on a CPU: widths 8, batch 8, 4 steps, logs and sample grids of 4 every 2 steps."""
  config.model.g_width = config.model.d_width = 8
  config.train.batch_size = 8
  config.train.num_steps = 4
  config.train.log_every = config.train.sample_every = 2
  config.train.num_samples = 4


def stylegan2_model(resolution, channel_base=16384, channel_max=512, mapping_layers=2,
                    mbstd_group_size=4, latent_dim=512, w_dim=512):
  """config.model of NVIDIA's StyleGAN2 (generator 'skip', discriminator 'resnet'); the defaults
  are stylegan2-ada-pytorch's 'auto' configuration below 512x512."""
  model = ml_collections.ConfigDict()
  model.name = 'stylegan2'
  model.resolution = resolution
  model.channels = 3
  model.latent_dim = latent_dim  # z_dim
  model.w_dim = w_dim
  model.channel_base = channel_base  # channels at resolution r: min(channel_base / r, max)
  model.channel_max = channel_max
  model.mapping_layers = mapping_layers
  model.mapping_lr_multiplier = 0.01
  model.w_avg_beta = 0.998  # decay of the tracked average w (for truncation), per step
  model.style_mixing_prob = 0.9  # in training, per batch
  model.mbstd_group_size = mbstd_group_size  # must divide the batch size
  model.mbstd_num_channels = 1
  model.conv_clamp = 0.0  # clip activations to +-conv_clamp (reference: 256 with fp16); 0: off
  # 'grouped' (per-sample weights) or 'scaled' (activations scaled): the same function; 'auto'
  # takes the faster one on this backend (benchmarks/README.md).
  model.modconv_lowering = 'auto'
  return model


def use_stylegan2(config, model, batch_size, learning_rate, r1_gamma, ema_kimg, ema_rampup=0.0):
  """NVIDIA's StyleGAN2 recipe around `model` (stylegan2_model): the non-saturating logistic
  loss, lazy R1 every 16 steps, path-length regularisation (weight 2) every 4 steps,
  Adam(learning_rate, 0, 0.99), the EMA generator with half-life ema_kimg * 1000 images."""
  config.model = model
  config.loss.discriminator, config.loss.generator = 'logistic', 'non_saturating'
  config.loss.r1_gamma, config.loss.r1_every = r1_gamma, 16
  config.loss.pl_weight, config.loss.pl_every = 2.0, 4
  config.optim.g_learning_rate = config.optim.d_learning_rate = learning_rate
  config.optim.b1, config.optim.b2 = 0.0, 0.99
  config.ema.halflife_images, config.ema.rampup = ema_kimg * 1000.0, ema_rampup
  config.train.batch_size = batch_size
