"""StyleGAN2 on FFHQ from a folder of PNGs: NVIDIA's 'paper256' configuration at 256x256;
NVIDIA's other FFHQ configurations and R3GAN's FFHQ presets as variants.

  python -m facegan_jax.main --config=configs/ffhq.py --config.data.path=/data/ffhq256 \
      --workdir=/tmp/ffhq

stylegan2-ada-pytorch's `cfg_specs['paper256']`: batch 64, minibatch-std groups of 8,
channel_base 16384 (fmaps 0.5), channel_max 512, 8 mapping layers, Adam(0.0025, 0, 0.99), R1
gamma 1 every 16 steps, path length weight 2 every 4 steps, EMA 20 kimg, 25,000 kimg
(390,625 steps). The variants, all with channel_base 32768 (fmaps 1) and 8 mapping layers:
- 'stylegan2': `cfg_specs['stylegan2']` (= stylegan3's --cfg=stylegan2) at 256: batch 32,
  groups of 4, Adam(0.002), gamma 10, EMA 10 kimg;
- 'stylegan2_1024': the same at 1024x1024: config F, which trained the published `ffhq.pkl`;
- 'paper512': `cfg_specs['paper512']` at 512: batch 64, groups of 8, Adam(0.0025), gamma 0.5,
  EMA 20 kimg;
- 'paper1024': `cfg_specs['paper1024']` at 1024: batch 32, groups of 4, Adam(0.002), gamma 2,
  EMA 10 kimg.
'r3gan64' and 'r3gan256' are R3GAN's FFHQ-64 and FFHQ-256 presets (configs/celeba.py,
use_r3gan): batch 256, Adam(2e-4 -> 5e-5, 0, 0.9 -> 0.99), gamma 2 -> 0.2 and 150 -> 15, EMA
half-life 0 -> 500k images, NVIDIA's augment pipe with p 0 -> 0.3, cosine schedules over 20M
images, G's last 4 and D's first 4 stages in bfloat16.
The folder holds the aligned FFHQ images at the resolution (every .png under it); they are
mirrored at random.
The 'ada' variant is paper256 with StyleGAN2-ADA's adaptive discriminator augmentation (the
'bgc' pipe, target 0.6, p adjusted every 4 steps by up to 500 kimg per unit, NVIDIA's --aug=ada
defaults); 'ada_1k', 'ada_2k', 'ada_5k' and 'ada_10k' train it on the first 1,000 to 10,000
faces (data.max_examples), the training-set sweep of the ADA paper (Karras et al. 2020,
figures 1 and 7).
"""

from configs import celeba
from configs import default

SPECS = {
    # variant: (resolution, batch, mbstd group, channel_base, learning rate, R1 gamma, EMA kimg)
    None: (256, 64, 8, 16384, 0.0025, 1.0, 20),
    'stylegan2': (256, 32, 4, 32768, 0.002, 10.0, 10),
    'stylegan2_1024': (1024, 32, 4, 32768, 0.002, 10.0, 10),
    'paper512': (512, 64, 8, 32768, 0.0025, 0.5, 20),
    'paper1024': (1024, 32, 4, 32768, 0.002, 2.0, 10),
}
# ADA variants of paper256: the number of faces they train on (0: all).
ADA_SUBSETS = {'ada': 0, 'ada_1k': 1000, 'ada_2k': 2000, 'ada_5k': 5000, 'ada_10k': 10_000}
TRAINING_IMAGES = 25_000_000
R3GAN_PRESETS = {'r3gan64': 'FFHQ-64', 'r3gan256': 'FFHQ-256'}


def get_config(variant=None):
  variant = variant or None
  default.check_variant('configs/ffhq.py', variant,
                        tuple(name for name in SPECS if name) + tuple(R3GAN_PRESETS)
                        + tuple(ADA_SUBSETS))
  config = default.get_config()
  config.data.source = 'folder'
  config.data.crop = 0  # FFHQ is aligned and square
  if variant in R3GAN_PRESETS:
    celeba.use_r3gan(config, R3GAN_PRESETS[variant])
  else:
    resolution, batch, group, channel_base, learning_rate, gamma, ema_kimg = SPECS[
        None if variant in ADA_SUBSETS else variant]
    config.model.update(channel_base=channel_base, mapping_layers=8, mbstd_group_size=group)
    celeba.use_stylegan2(config, resolution, batch_size=batch, learning_rate=learning_rate,
                         r1_gamma=gamma, ema_kimg=ema_kimg)
    config.train.num_steps = TRAINING_IMAGES // batch
  config.train.log_every = 1000
  config.samples.every = config.checkpoint.every = 10_000
  config.eval.batch_size = 64
  if variant in ADA_SUBSETS:
    config.data.max_examples = ADA_SUBSETS[variant]
    celeba.use_ada(config)
  return config
