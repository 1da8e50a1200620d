"""The hand FLOP count of benchmarks/train_step.py against DCGAN-64's layers counted by hand."""

import jax.numpy as jnp
import pytest

from benchmarks import train_step
from configs import celeba
from configs import lfw_demo
from facegan_jax.training import trainer as trainer_lib


def test_dcgan64_layer_flops_and_step_count_match_the_hand_count():
  trainer = trainer_lib.make_trainer(celeba.get_config())
  g = train_step.layer_flops(trainer.generator, jnp.zeros((1, 100)))
  d = train_step.layer_flops(trainer.discriminator, jnp.zeros((1, 64, 64, 3)))
  # 2 x multiply-adds: dense 100 -> 4x4x512; transposed convs scatter each input pixel's 4x4 taps.
  assert g == [2 * 100 * 8192, 2 * 16 * 16 * 512 * 256, 2 * 64 * 16 * 256 * 128,
               2 * 256 * 16 * 128 * 64, 2 * 1024 * 16 * 64 * 3]
  # Convs: output pixels x 4x4 taps; the last layer is a dense 4x4x512 -> 1.
  assert d == [2 * 1024 * 16 * 3 * 64, 2 * 256 * 16 * 64 * 128, 2 * 64 * 16 * 128 * 256,
               2 * 16 * 16 * 256 * 512, 2 * 8192]
  per_image = train_step.hand_flops_per_step(trainer, (64, 64, 3), batch_size=1, d_steps=1)
  assert per_image == 3 * sum(g) + 9 * sum(d) - 2 * d[0] - g[0]
  assert round(per_image / 1e9, 2) == 2.48  # the PyTorch reference's step, as in the issue


def test_sngan32_layer_flops_count_every_convolution_at_its_resolution():
  config = lfw_demo.get_config('sngan_test')
  config.model.update(channels=3, g_width=8, d_width=8)
  trainer = trainer_lib.make_trainer(config)
  g = train_step.layer_flops(trainer.generator, jnp.zeros((1, 128)))
  d = train_step.layer_flops(trainer.discriminator, jnp.zeros((1, 32, 32, 3)))
  block = lambda size: [2 * size**2 * 9 * 64, 2 * size**2 * 9 * 64, 2 * size**2 * 64]
  # Dense 128 -> 4x4x8, three blocks to 8, 16, 32 (3x3 c1, c2 and the 1x1 shortcut), head 8 -> 3.
  assert g == [2 * 128 * 128] + block(8) + block(16) + block(32) + [2 * 32**2 * 9 * 8 * 3]
  # Optimised block at 32 (shortcut after pooling), a pooling block at 16, two at 8 without
  # shortcut convolutions, the dense logit.
  assert d == ([2 * 32**2 * 9 * 3 * 8, 2 * 32**2 * 9 * 64, 2 * 16**2 * 3 * 8] + block(16)
               + block(8)[:2] + block(8)[:2] + [2 * 8])
  per_image = train_step.hand_flops_per_step(trainer, (32, 32, 3), batch_size=1, d_steps=2)
  # Mimicry's step: the G update runs a G forward of its own.
  assert per_image == 2 * (sum(g) + 6 * sum(d) - 2 * d[0]) + 3 * sum(d) + 3 * sum(g) - g[0]


def test_stylegan2_layer_flops_and_step_count_match_the_hand_count():
  trainer = trainer_lib.make_trainer(lfw_demo.get_config('stylegan2_test'))  # 16x16, 16 to 8 channels
  z = jnp.zeros((1, 16))
  g = train_step.layer_flops(trainer.generator, z)
  mapping = train_step.layer_flops(trainer.generator, z, within='mapping')
  d = train_step.layer_flops(trainer.discriminator, jnp.zeros((1, 16, 16, 1)))
  affine = lambda c_in: 2 * 16 * c_in  # w (16) -> the styles of a layer with c_in inputs
  conv3 = lambda pixels, c_in, c_out: 2 * pixels * 9 * c_in * c_out  # transposed: input pixels
  # Two mapping passes of two 16 -> 16 layers (style mixing), then per block: the modulated
  # convolutions (4x4 on the constant; 4 -> 8 and 8 -> 16 upsampling) and the 1x1 to-RGB.
  assert mapping == [2 * 16 * 16] * 4
  assert g == mapping + [
      affine(16), conv3(16, 16, 16), affine(16), 2 * 16 * 16,
      affine(16), conv3(16, 16, 16), affine(16), conv3(64, 16, 16), affine(16), 2 * 64 * 16,
      affine(16), conv3(64, 16, 8), affine(8), conv3(256, 8, 8), affine(8), 2 * 256 * 8]
  # From-RGB, the 1x1 downsampling skip, conv0, the downsampling conv1 (outputs at half size);
  # the epilogue's conv sees the minibatch-std channel (17 inputs), then fc and the logit.
  assert d == [2 * 256 * 8, 2 * 64 * 8 * 16, conv3(256, 8, 8), conv3(64, 8, 16),
               2 * 16 * 16 * 16, conv3(64, 16, 16), conv3(16, 16, 16),
               conv3(16, 17, 16), 2 * 256 * 16, 2 * 16]
  g_all, d_all, synthesis = sum(g), sum(d), sum(g) - sum(mapping)
  g_main = 3 * g_all - 2 * mapping[0] + 2 * d_all
  d_main = g_all + 2 * (3 * d_all - d[0])
  path_length = (3 * sum(mapping) - 2 * mapping[0] + 6 * synthesis) / 2 / 2  # batch / 2, every 2
  r1 = 6 * d_all / 2  # every 2
  assert train_step.stylegan2_flops_per_image(trainer, (16, 16, 1)) == pytest.approx(
      g_main + d_main + path_length + r1, rel=1e-12)


def test_r3gan_layer_flops_count_grouped_convolutions_and_the_step_by_hand():
  trainer = trainer_lib.make_trainer(lfw_demo.get_config('r3gan_test'))  # 8x8, widths 16 and 8
  g = train_step.layer_flops(trainer.generator, jnp.zeros((1, 16)))
  d = train_step.layer_flops(trainer.discriminator, jnp.zeros((1, 8, 8, 1)))
  conv = lambda pixels, c_in, c_out, k=1, groups=1: 2 * pixels * k * k * c_in // groups * c_out
  # A block: 1x1 to twice the width, the 3x3 in groups of 8 channels, 1x1 back.
  block = lambda pixels, width: [conv(pixels, width, 2 * width),
                                 conv(pixels, 2 * width, 2 * width, 3, 2 * width // 8),
                                 conv(pixels, 2 * width, width)]
  # The basis (z 16 -> 16 scales), a block at 4x4 (width 16), the 1x1 to 8 before upsampling, a
  # block at 8x8 (width 8), the aggregation 8 -> 1.
  assert g == [2 * 16 * 16] + block(16, 16) + [conv(16, 16, 8)] + block(64, 8) + [conv(64, 8, 1)]
  # The extraction 1 -> 8, a block at 8x8, the 1x1 to 16 after downsampling, a block at 4x4, the
  # basis: the depthwise 4x4 over 16 channels, then 16 -> 1.
  assert d == ([conv(64, 1, 8)] + block(64, 8) + [conv(16, 8, 16)] + block(16, 16)
               + [2 * 16 * 16 + 2 * 16])
  assert train_step.r3gan_flops_per_image(trainer, (8, 8, 1)) == (
      4 * sum(g) - g[0] + 15 * sum(d))
