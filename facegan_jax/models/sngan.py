"""SNGAN-ResNet (Miyato et al., 2018) as Mimicry's `sngan_32`, `sngan_64` and `sngan_128` compute
it (kwotsin/mimicry; tests/test_sngan.py checks it against Mimicry's own numbers).

Generator: a dense layer to 4x4 features, residual blocks (BatchNorm, ReLU, bilinear x2
upsampling, 3x3 convolutions; upsampling and a 1x1 convolution as shortcut), BatchNorm, ReLU, a
3x3 convolution and tanh. Discriminator: the 'optimised' first block, residual blocks that
average-pool by 2, ReLU, global sum pooling and one linear logit; every layer spectrally
normalised. Where Mimicry's code and the paper differ, this follows the code:

* Upsampling is bilinear with half-pixel centres (PyTorch's `align_corners=False`), not nearest.
* The discriminator blocks after the first apply an in-place ReLU to their input, so their
  shortcut (1x1 convolution, or identity) sees relu(x), not x.
* Spectral normalisation is `torch.nn.utils.spectral_norm`: before every training-mode call one
  power iteration `v = n(W^T u)`, `u = n(W v)` with `n(a) = a / max(|a|, 1e-12)`, then
  `W / (u . W v)` with no gradient through u and v. u and v live in the 'batch_stats'
  collection (so they are part of the train state); inference mode uses them unchanged.
* BatchNorm's running variance is updated with the unbiased batch variance (PyTorch's).
* Weights: Xavier-uniform with gain sqrt(2) in the residual 3x3 convolutions, gain 1 elsewhere;
  biases U(+-1/sqrt(fan_in)) as PyTorch's defaults; BatchNorm scale 1, offset 0.

With c_dim > 0 (labels c [B, c_dim]) both are conditional as Mimicry's `cgan_pd` networks
(`conditional`): every generator BatchNorm is a conditional BatchNorm, and the discriminator adds
the projection of its pooled features onto the labels' spectrally normalised embedding `l_y`
(no bias, Xavier-uniform).

Parameter names follow Mimicry's modules (block2/c1/kernel is `block2.c1.weight`); W of a
spectrally normalised layer is its kernel flattened to [kh * kw * C_in, C_out].
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from facegan_jax.models import conditional
from facegan_jax.system.errors import UserError

BOTTOM_WIDTH = 4  # the generator's first feature map is 4x4
SN_EPSILON = 1e-12
BN_EPSILON, BN_MOMENTUM = 1e-5, 0.1
# Mimicry's layouts per resolution. Generator: the channels of the 4x4 map and after each block,
# as right shifts of g_width (ngf >> s). Discriminator: (right shift of d_width, halves the
# resolution) of the first (optimised) block and of each block after it.
G_SHIFTS = {32: (0, 0, 0, 0), 64: (0, 1, 2, 3, 4), 128: (0, 0, 1, 2, 3, 4)}
D_BLOCKS = {
    32: ((0, True), (0, True), (0, False), (0, False)),
    64: ((4, True), (3, True), (2, True), (1, True), (0, True)),
    128: ((4, True), (3, True), (2, True), (1, True), (0, True), (0, False)),
}


def _xavier_uniform(gain):
  return nn.initializers.variance_scaling(gain * gain, 'fan_avg', 'uniform')


def _torch_bias_init(fan_in):
  bound = 1.0 / math.sqrt(fan_in)
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound,
                                                                  bound)


def _unit(a):
  return a / jnp.maximum(jnp.linalg.norm(a), SN_EPSILON)


def _spectral_normalize(module, kernel, update):
  """kernel / sigma, sigma = u . (W v) with W = kernel as [fan_in, C_out]; one power iteration
  of u and v first when `update`. Float32."""
  matrix = kernel.reshape(-1, kernel.shape[-1])  # W transposed
  u = module.variable('batch_stats', 'u',
                      lambda: _unit(jax.random.normal(module.make_rng('params'),
                                                      matrix.shape[1:])))
  v = module.variable('batch_stats', 'v',
                      lambda: _unit(jax.random.normal(module.make_rng('params'),
                                                      matrix.shape[:1])))
  if update and not module.is_initializing():
    fixed = lax.stop_gradient(matrix)
    v.value = _unit(fixed @ u.value)
    u.value = _unit(v.value @ fixed)
  sigma = jnp.dot(u.value, v.value @ matrix)
  return kernel / sigma


class Conv(nn.Module):
  """Stride-1 'same' convolution with bias, optionally spectrally normalised (float32 weights,
  computes in dtype)."""
  features: int
  kernel_size: int = 3
  gain: float = 1.0
  spectral: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train):
    fan_in = self.kernel_size * self.kernel_size * x.shape[-1]
    kernel = self.param('kernel', _xavier_uniform(self.gain),
                        (self.kernel_size, self.kernel_size, x.shape[-1], self.features))
    bias = self.param('bias', _torch_bias_init(fan_in), (self.features,))
    if self.spectral:
      kernel = _spectral_normalize(self, kernel, train)
    pad = self.kernel_size // 2
    y = lax.conv_general_dilated(x.astype(self.dtype), kernel.astype(self.dtype), (1, 1),
                                 ((pad, pad), (pad, pad)),
                                 dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    return y + bias.astype(self.dtype)


class Dense(nn.Module):
  """Dense layer (Xavier-uniform gain 1) with bias unless not `use_bias`, optionally spectrally
  normalised."""
  features: int
  spectral: bool = False
  dtype: Any = jnp.float32
  use_bias: bool = True

  @nn.compact
  def __call__(self, x, train):
    kernel = self.param('kernel', _xavier_uniform(1.0), (x.shape[-1], self.features))
    bias = (self.param('bias', _torch_bias_init(x.shape[-1]), (self.features,)) if self.use_bias
            else None)  # before u and v: the order of the initialisers' keys
    if self.spectral:
      kernel = _spectral_normalize(self, kernel, train)
    y = x.astype(self.dtype) @ kernel.astype(self.dtype)
    return y if bias is None else y + bias.astype(self.dtype)


class _BatchNorm(nn.Module):
  """PyTorch's BatchNorm2d: batch statistics over (N, H, W) in training mode (running variance
  from the unbiased batch variance), running statistics otherwise; float32 statistics. With
  labels `c` [B, c_dim] its affine is the per-label one (`conditional.LabelAffine`)."""
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train, c=None):
    channels = x.shape[-1]
    if c is None:
      scale = self.param('scale', nn.initializers.ones, (channels,))
      offset = self.param('bias', nn.initializers.zeros, (channels,))
    mean = self.variable('batch_stats', 'mean', jnp.zeros, (channels,))
    var = self.variable('batch_stats', 'var', jnp.ones, (channels,))
    x = x.astype(jnp.float32)
    if train and not self.is_initializing():
      batch_mean = x.mean(axis=(0, 1, 2))
      batch_var = jnp.square(x - batch_mean).mean(axis=(0, 1, 2))
      count = x.size // channels
      mean.value = (1 - BN_MOMENTUM) * mean.value + BN_MOMENTUM * batch_mean
      var.value = (1 - BN_MOMENTUM) * var.value + BN_MOMENTUM * batch_var * count / (count - 1)
    else:
      batch_mean, batch_var = mean.value, var.value
    y = (x - batch_mean) * lax.rsqrt(batch_var + BN_EPSILON)
    y = conditional.LabelAffine(name='label_affine')(y, c) if c is not None else y * scale + offset
    return y.astype(self.dtype)


def upsample_bilinear(x):
  """x2 bilinear upsampling of [B, H, W, C], PyTorch's `interpolate(scale_factor=2,
  mode='bilinear', align_corners=False)`: output 2i mixes inputs i-1 and i as 1:3, output 2i+1
  inputs i and i+1 as 3:1, edges repeated."""
  for axis in (1, 2):
    size = x.shape[axis]
    edge = jnp.concatenate([lax.slice_in_dim(x, 0, 1, axis=axis), x,
                            lax.slice_in_dim(x, size - 1, size, axis=axis)], axis=axis)
    before = lax.slice_in_dim(edge, 0, size, axis=axis)
    after = lax.slice_in_dim(edge, 2, size + 2, axis=axis)
    even, odd = 0.25 * before + 0.75 * x, 0.75 * x + 0.25 * after
    x = jnp.stack([even, odd], axis=axis + 1)
    x = x.reshape(x.shape[:axis] + (2 * size,) + x.shape[axis + 2:])
  return x


def _avg_pool2(x):
  batch, height, width, channels = x.shape
  return x.reshape(batch, height // 2, 2, width // 2, 2, channels).mean(axis=(2, 4))


class GeneratorBlock(nn.Module):
  """Mimicry's GBlock with upsampling: [B, H, W, C_in] -> [B, 2H, 2W, features]."""
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train, c=None):
    conv = lambda name, size, gain: Conv(self.features, size, gain, dtype=self.dtype, name=name)
    h = nn.relu(_BatchNorm(self.dtype, name='b1')(x, train, c))
    h = conv('c1', 3, math.sqrt(2))(upsample_bilinear(h), train)
    h = nn.relu(_BatchNorm(self.dtype, name='b2')(h, train, c))
    h = conv('c2', 3, math.sqrt(2))(h, train)
    return h + conv('c_sc', 1, 1.0)(upsample_bilinear(x), train)


class DiscriminatorBlock(nn.Module):
  """Mimicry's DBlock (hidden width = input width) or, `first`, DBlockOptimized, spectrally
  normalised: [B, H, W, C_in] -> [B, H/2, W/2, features] (or H, W unless `downsample`)."""
  features: int
  downsample: bool
  first: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train):
    conv = lambda name, width, size, gain: Conv(width, size, gain, spectral=True,
                                                 dtype=self.dtype, name=name)
    pool = _avg_pool2 if self.downsample else lambda h: h
    if self.first:
      h = conv('c2', self.features, 3, math.sqrt(2))(
          nn.relu(conv('c1', self.features, 3, math.sqrt(2))(x, train)), train)
      return pool(h) + conv('c_sc', self.features, 1, 1.0)(pool(x), train)
    x = nn.relu(x)  # Mimicry's in-place ReLU: the shortcut sees it too
    h = conv('c1', x.shape[-1], 3, math.sqrt(2))(x, train)
    h = conv('c2', self.features, 3, math.sqrt(2))(nn.relu(h), train)
    if self.downsample or x.shape[-1] != self.features:
      x = pool(conv('c_sc', self.features, 1, 1.0)(x, train))
    return pool(h) + x


class SNGANGenerator(nn.Module):
  """z: [B, latent_dim] (and labels c [B, c_dim] if c_dim > 0) -> images: [B, resolution,
  resolution, channels] float32 in [-1, 1]."""
  resolution: int
  channels: int
  width: int  # Mimicry's ngf
  dtype: Any = jnp.float32
  c_dim: int = 0

  @nn.compact
  def __call__(self, z, train, c=None):
    conditional.check_labels(c, self.c_dim)
    widths = [self.width >> shift for shift in G_SHIFTS[self.resolution]]
    x = Dense(BOTTOM_WIDTH * BOTTOM_WIDTH * widths[0], dtype=self.dtype, name='l1')(z, train)
    x = x.reshape(z.shape[0], BOTTOM_WIDTH, BOTTOM_WIDTH, widths[0])
    for index, width in enumerate(widths[1:]):
      x = GeneratorBlock(width, self.dtype, name=f'block{index + 2}')(x, train, c)
    head = len(widths) + 1
    x = nn.relu(_BatchNorm(self.dtype, name=f'b{head}')(x, train, c))
    x = Conv(self.channels, 3, dtype=self.dtype, name=f'c{head}')(x, train)
    return jnp.tanh(x).astype(jnp.float32)


class SNGANDiscriminator(nn.Module):
  """images: [B, resolution, resolution, channels] in [-1, 1] (and labels c [B, c_dim] if
  c_dim > 0) -> logits: [B] float32."""
  resolution: int
  width: int  # Mimicry's ndf
  dtype: Any = jnp.float32
  c_dim: int = 0

  @nn.compact
  def __call__(self, images, train, c=None):
    conditional.check_labels(c, self.c_dim)
    x = images
    for index, (shift, downsample) in enumerate(D_BLOCKS[self.resolution]):
      x = DiscriminatorBlock(self.width >> shift, downsample, first=index == 0, dtype=self.dtype,
                             name=f'block{index + 1}')(x, train)
    x = jnp.sum(nn.relu(x), axis=(1, 2))  # global sum pooling
    head = f'l{len(D_BLOCKS[self.resolution]) + 1}'
    logits = Dense(1, spectral=True, dtype=self.dtype, name=head)(x, train)[:, 0]
    logits = logits.astype(jnp.float32)
    if self.c_dim:
      embedded = Dense(x.shape[-1], spectral=True, dtype=self.dtype, use_bias=False,
                       name='l_y')(c, train)
      logits = logits + conditional.project(x, embedded)
    return logits


def check_config(model):
  """Raises UserError naming the bad field of an SNGAN `config.model`."""
  if model.resolution not in G_SHIFTS:
    raise UserError(f'config.model.resolution={model.resolution!r} is not supported by sngan; '
                    f'use one of {tuple(G_SHIFTS)}.')
  for field, shifts in (('g_width', G_SHIFTS[model.resolution]),
                        ('d_width', [s for s, _ in D_BLOCKS[model.resolution]])):
    smallest = 2**max(shifts)
    if not isinstance(model[field], int) or model[field] < smallest:
      raise UserError(f'config.model.{field}={model[field]!r} is too small for sngan at '
                      f'{model.resolution}x{model.resolution}; use an integer >= {smallest} '
                      f'(Mimicry: 256/128 at 32, 1024 at 64 and 128).')


def build(model, dtype):
  """(generator, discriminator) of an SNGAN `config.model`, computing in `dtype`."""
  c_dim = model.get('c_dim', 0)  # 0 in a model config without the field
  return (SNGANGenerator(model.resolution, model.channels, model.g_width, dtype, c_dim),
          SNGANDiscriminator(model.resolution, model.d_width, dtype, c_dim))
