"""StyleGAN2 (Karras et al., 2020): NVIDIA's config-F networks, equal to their reference code.

The generator maps a latent z [N, latent_dim] through the mapping network (2nd-moment
normalisation, equalised-learning-rate dense layers with a learning-rate multiplier) to w, and
the synthesis network ('skip' architecture) turns w, broadcast to one style per layer, into an
image: a learned 4x4 constant, two modulated and demodulated 3x3 convolutions per resolution
(the first upsampling with the [1,3,3,1] FIR filter), per-pixel noise with a learned strength,
and a to-RGB layer per resolution whose outputs are upsampled and summed. The discriminator is
the 'resnet' one, with the minibatch standard deviation in its 4x4 epilogue.

Parameters carry the reference's names and equalised-learning-rate storage (the runtime weight
gain is applied in the forward pass); the weights are laid out for NHWC (convolutions HWIO,
dense layers [in, out]), so that `facegan_jax.pretrained.convert_stylegan2` maps a reference state_dict
onto them. The generator's 'batch_stats' collection holds its non-trainable state: the tracked
average w (updated in training mode) and the fixed noise maps of noise mode 'const'.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from facegan_jax.models import stylegan2_ops as ops
from facegan_jax.system.errors import UserError
from facegan_jax.system.errors import check_power_of_two

MIN_RESOLUTION, MAX_RESOLUTION = 16, 1024
# Layers and learning-rate multiplier of a conditional discriminator's label mapping: NVIDIA's
# MappingNetwork defaults, which their train.py never changes.
D_MAPPING_LAYERS, D_MAPPING_LR_MULTIPLIER = 8, 0.01
NOISE_MODES = ('random', 'const', 'none')
LOWERINGS = ('auto',) + ops.MODCONV_LOWERINGS
# The faster lowering of the modulated convolution per backend (benchmarks/README.md).
AUTO_LOWERING = {'cpu': 'scaled'}  # GPU and TPU not measured yet: 'scaled' too
SQRT_HALF = math.sqrt(0.5)


def block_resolutions(resolution):
  """4, 8, ..., resolution."""
  return tuple(2**i for i in range(2, int(math.log2(resolution)) + 1))


def num_ws(resolution):
  """Styles the synthesis network takes: one per convolution, plus the last to-RGB's."""
  return 2 * len(block_resolutions(resolution))


def channels_at(resolution, channel_base, channel_max):
  """Feature channels of the blocks at `resolution`: min(channel_base / resolution, max)."""
  return min(channel_base // resolution, channel_max)


def resolve_lowering(name, platform=None):
  """The modulated-convolution lowering of config.model.modconv_lowering on `platform`."""
  if name == 'auto':
    return AUTO_LOWERING.get(platform or jax.default_backend(), 'scaled')
  return name


def _torch_lerp(start, end, weight):
  """torch.lerp's formula, which the reference's w-average update and truncation use."""
  if abs(weight) < 0.5:
    return start + weight * (end - start)
  return end - (end - start) * (1.0 - weight)


class Dense(nn.Module):
  """Equalised-learning-rate dense layer: weight [in, out] stored as N(0, 1) / lr_multiplier and
  scaled by lr_multiplier / sqrt(in) at run time; bias scaled by lr_multiplier."""
  features: int
  activation: str = 'linear'
  lr_multiplier: float = 1.0
  bias_init: float = 0.0

  @nn.compact
  def __call__(self, x):
    fan_in = x.shape[-1]
    weight = self.param(
        'weight', lambda key, shape: jax.random.normal(key, shape) / self.lr_multiplier,
        (fan_in, self.features))
    bias = self.param('bias', nn.initializers.constant(self.bias_init), (self.features,))
    x = x @ (weight * (self.lr_multiplier / math.sqrt(fan_in)))
    return ops.bias_act(x, bias * self.lr_multiplier, self.activation)


class Conv(nn.Module):
  """Equalised-learning-rate convolution of the discriminator (weight / sqrt(fan_in) at run
  time), optionally downsampling by 2 with the FIR filter, then bias + activation."""
  features: int
  kernel_size: int
  activation: str = 'lrelu'
  down: int = 1
  use_bias: bool = True
  conv_clamp: float | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, fir, gain=1.0):
    size, fan_in = self.kernel_size, x.shape[-1] * self.kernel_size**2
    weight = self.param('weight', nn.initializers.normal(1.0),
                        (size, size, x.shape[-1], self.features))
    bias = (self.param('bias', nn.initializers.zeros, (self.features,)) if self.use_bias
            else None)
    x = ops.conv2d_resample(x.astype(self.dtype), (weight / math.sqrt(fan_in)).astype(self.dtype),
                            fir, down=self.down, padding=size // 2)
    clamp = None if self.conv_clamp is None else self.conv_clamp * gain
    return ops.bias_act(x, bias, self.activation, ops.ACTIVATIONS[self.activation][1] * gain,
                        clamp)


class SynthesisLayer(nn.Module):
  """Modulated, demodulated 3x3 convolution (upsampling by `up`), noise, bias, lrelu."""
  features: int
  resolution: int
  up: int = 1
  conv_clamp: float | None = None
  lowering: str = 'scaled'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, w, fir, noise_mode):
    styles = Dense(x.shape[-1], bias_init=1.0, name='affine')(w)
    weight = self.param('weight', nn.initializers.normal(1.0),
                        (3, 3, x.shape[-1], self.features))
    strength = self.param('noise_strength', nn.initializers.zeros, ())
    noise_const = self.variable(
        'batch_stats', 'noise_const',
        lambda: jax.random.normal(self.make_rng('params'), (self.resolution, self.resolution)))
    noise = None
    if noise_mode == 'random':
      shape = (x.shape[0], self.resolution, self.resolution, 1)
      noise = jax.random.normal(self.make_rng('noise'), shape) * strength
    elif noise_mode == 'const':
      noise = noise_const.value[None, :, :, None] * strength
    x = ops.modulated_conv2d(x.astype(self.dtype), weight, styles, fir,
                             None if noise is None else noise.astype(self.dtype), up=self.up,
                             padding=1, lowering=self.lowering)
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    return ops.bias_act(x, bias, 'lrelu', clamp=self.conv_clamp).astype(jnp.float32)


class ToRGB(nn.Module):
  """1x1 modulated convolution without demodulation (styles / sqrt(C_in)), plus bias."""
  channels: int
  conv_clamp: float | None = None
  lowering: str = 'scaled'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, w, fir):
    fan_in = x.shape[-1]
    styles = Dense(fan_in, bias_init=1.0, name='affine')(w) / math.sqrt(fan_in)
    weight = self.param('weight', nn.initializers.normal(1.0), (1, 1, fan_in, self.channels))
    x = ops.modulated_conv2d(x.astype(self.dtype), weight, styles, fir, demodulate=False,
                             lowering=self.lowering)
    bias = self.param('bias', nn.initializers.zeros, (self.channels,))
    return ops.bias_act(x, bias, clamp=self.conv_clamp).astype(jnp.float32)


class SynthesisBlock(nn.Module):
  """One resolution of the 'skip' generator: (const or up-conv) + conv + to-RGB."""
  features: int
  resolution: int
  channels: int
  conv_clamp: float | None = None
  lowering: str = 'scaled'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, img, ws, fir, noise_mode):
    """x: [N, R/2, R/2, C'] or None (first block); img: [N, R/2, R/2, channels] or None;
    ws: [N, 3 (2 for the first block), w_dim]. Returns (x, img) at resolution R."""
    layer = lambda name, **kwargs: SynthesisLayer(
        self.features, self.resolution, conv_clamp=self.conv_clamp, lowering=self.lowering,
        dtype=self.dtype, name=name, **kwargs)
    if x is None:
      const = self.param('const', nn.initializers.normal(1.0),
                         (self.resolution, self.resolution, self.features))
      x = jnp.broadcast_to(const, (ws.shape[0],) + const.shape)
      convs = [layer('conv1')]
    else:
      convs = [layer('conv0', up=2), layer('conv1')]
    for index, conv in enumerate(convs):
      x = conv(x, ws[:, index], fir, noise_mode)
    if img is not None:
      img = ops.upsample2d(img, fir)
    y = ToRGB(self.channels, self.conv_clamp, self.lowering, self.dtype, name='torgb')(
        x, ws[:, len(convs)], fir)
    return x, (y if img is None else img + y)


def _labels(c, batch, c_dim):
  """Labels [batch, c_dim] float32: `c`, or all zeros when it is None (initialisation, and the
  training step, which does not pass labels yet)."""
  return jnp.zeros((batch, c_dim), jnp.float32) if c is None else c.astype(jnp.float32)


class MappingNetwork(nn.Module):
  """(z [N, latent_dim] or None, labels c [N, c_dim]) -> ws [N, num_ws, w_dim], tracking the
  average w ('batch_stats'); with num_ws None (the discriminator's label mapping) w [N, w_dim],
  untracked.

  Conditional networks (c_dim > 0) embed c with a dense layer ('embed', w_dim features),
  normalise its 2nd moment and concatenate it to the normalised z, as NVIDIA's.
  """
  w_dim: int
  num_ws: int | None
  num_layers: int
  lr_multiplier: float
  w_avg_beta: float = 0.0
  c_dim: int = 0

  @nn.compact
  def __call__(self, z, c=None, truncation_psi=1.0, update_w_avg=False):
    parts = [] if z is None else [ops.normalize_2nd_moment(z.astype(jnp.float32))]
    if self.c_dim:
      labels = _labels(c, (z if z is not None else c).shape[0], self.c_dim)
      parts.append(ops.normalize_2nd_moment(Dense(self.w_dim, name='embed')(labels)))
    x = jnp.concatenate(parts, axis=1)
    for index in range(self.num_layers):
      x = Dense(self.w_dim, 'lrelu', self.lr_multiplier, name=f'fc{index}')(x)
    if self.num_ws is None:
      return x
    w_avg = self.variable('batch_stats', 'w_avg', jnp.zeros, (self.w_dim,))
    if update_w_avg:
      batch_mean = jax.lax.stop_gradient(x).mean(axis=0)
      w_avg.value = _torch_lerp(batch_mean, w_avg.value, self.w_avg_beta)
    ws = jnp.broadcast_to(x[:, None, :], (x.shape[0], self.num_ws, self.w_dim))
    if truncation_psi != 1:
      ws = _torch_lerp(w_avg.value, ws, truncation_psi)
    return ws


class SynthesisNetwork(nn.Module):
  """ws [N, num_ws, w_dim] -> images [N, resolution, resolution, channels] float32."""
  resolution: int
  channels: int
  channel_base: int
  channel_max: int
  conv_clamp: float | None = None
  lowering: str = 'scaled'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, ws, noise_mode='const'):
    fir = ops.setup_filter()
    x = img = None
    first_w = 0
    for resolution in block_resolutions(self.resolution):
      num_conv = 1 if x is None else 2
      block = SynthesisBlock(channels_at(resolution, self.channel_base, self.channel_max),
                             resolution, self.channels, self.conv_clamp, self.lowering,
                             self.dtype, name=f'b{resolution}')
      # Each to-RGB shares its style with the next block's first convolution.
      x, img = block(x, img, ws[:, first_w:first_w + num_conv + 1], fir, noise_mode)
      first_w += num_conv
    return img


class StyleGAN2Generator(nn.Module):
  """z [N, latent_dim] (and labels c [N, c_dim] when c_dim > 0, e.g. one-hot; None: zeros) ->
  images [N, resolution, resolution, channels] float32 (about [-1, 1]).

  Training mode (`train=True`) updates the tracked w average, mixes styles with probability
  `style_mixing_prob` and draws random noise; these draw from the 'noise' RNG stream. Inference
  mode uses the constant noise maps and needs no RNG.
  """
  resolution: int
  channels: int
  w_dim: int
  channel_base: int
  channel_max: int
  mapping_layers: int
  mapping_lr_multiplier: float = 0.01
  w_avg_beta: float = 0.998
  style_mixing_prob: float = 0.0
  conv_clamp: float | None = None
  lowering: str = 'scaled'
  dtype: Any = jnp.float32
  c_dim: int = 0

  def setup(self):
    self.mapping = MappingNetwork(self.w_dim, num_ws(self.resolution), self.mapping_layers,
                                  self.mapping_lr_multiplier, self.w_avg_beta, self.c_dim)
    self.synthesis = SynthesisNetwork(self.resolution, self.channels, self.channel_base,
                                      self.channel_max, self.conv_clamp, self.lowering,
                                      self.dtype)

  def __call__(self, z, train, truncation_psi=1.0, noise_mode=None, c=None):
    ws = self.mapping(z, c, truncation_psi, update_w_avg=train)
    if train and self.style_mixing_prob:
      ws = self._mix_styles(z, ws, c)
    return self.synthesis(ws, noise_mode or ('random' if train else 'const'))

  def styles(self, z, c=None):
    """The training-mode ws of z (style-mixed; the w average is not updated), as the
    path-length regulariser differentiates with respect to them."""
    ws = self.mapping(z, c)
    return self._mix_styles(z, ws, c) if self.style_mixing_prob else ws

  def map(self, z, truncation_psi=1.0, c=None):
    """ws [N, num_ws, w_dim] of z (and labels c), truncated towards the tracked average by
    `truncation_psi`."""
    return self.mapping(z, c, truncation_psi)

  def synthesize(self, ws, noise_mode='const'):
    """Images of ws [N, num_ws, w_dim]; noise_mode 'random' draws from the 'noise' stream."""
    return self.synthesis(ws, noise_mode)

  def _mix_styles(self, z, ws, c):
    """With probability style_mixing_prob, the styles from a random layer on (the same for the
    whole batch, as the reference) come from other latents with the same labels."""
    cutoff_key, coin_key, z_key = jax.random.split(self.make_rng('noise'), 3)
    count = ws.shape[1]
    cutoff = jax.random.randint(cutoff_key, (), 1, count)
    cutoff = jnp.where(jax.random.uniform(coin_key) < self.style_mixing_prob, cutoff, count)
    other = self.mapping(jax.random.normal(z_key, z.shape), c)
    return jnp.where(jnp.arange(count)[None, :, None] < cutoff, ws, other)


class DiscriminatorBlock(nn.Module):
  """'resnet' block: (from-RGB,) conv0, downsampling conv1, plus a downsampling 1x1 skip."""
  tmp_features: int
  features: int
  first: bool
  conv_clamp: float | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, fir):
    conv = lambda features, size, name, **kwargs: Conv(
        features, size, conv_clamp=self.conv_clamp, dtype=self.dtype, name=name, **kwargs)
    if self.first:
      x = conv(self.tmp_features, 1, 'fromrgb')(x, fir)
    y = conv(self.features, 1, 'skip', activation='linear', down=2, use_bias=False)(
        x, fir, gain=SQRT_HALF)
    x = conv(self.tmp_features, 3, 'conv0')(x, fir)
    x = conv(self.features, 3, 'conv1', down=2)(x, fir, gain=SQRT_HALF)
    return y + x


class DiscriminatorEpilogue(nn.Module):
  """4x4 features -> logits [N]: minibatch std, 3x3 conv, dense, dense to one logit; or, given
  the label map cmap [N, cmap_dim], to cmap_dim features projected on it (NVIDIA's projection:
  sum(out * cmap) / sqrt(cmap_dim))."""
  features: int
  mbstd_group_size: int
  mbstd_num_channels: int
  conv_clamp: float | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, fir, cmap=None):
    if self.mbstd_num_channels:
      x = ops.minibatch_stddev(x, self.mbstd_group_size, self.mbstd_num_channels)
    x = Conv(self.features, 3, conv_clamp=self.conv_clamp, dtype=self.dtype, name='conv')(x, fir)
    x = Dense(self.features, 'lrelu', name='fc')(x.astype(jnp.float32).reshape(x.shape[0], -1))
    if cmap is None:
      return Dense(1, name='out')(x)[:, 0]
    x = Dense(cmap.shape[-1], name='out')(x)
    return (x * cmap).sum(axis=1) / math.sqrt(cmap.shape[-1])


class StyleGAN2Discriminator(nn.Module):
  """images [N, resolution, resolution, C] (and labels c [N, c_dim] when c_dim > 0; None:
  zeros) -> logits [N] float32 ('resnet' architecture). A conditional one maps c to the 4x4
  channels with D_MAPPING_LAYERS layers ('mapping') and projects its features on them."""
  resolution: int
  channel_base: int
  channel_max: int
  mbstd_group_size: int = 4
  mbstd_num_channels: int = 1
  conv_clamp: float | None = None
  dtype: Any = jnp.float32
  c_dim: int = 0

  @nn.compact
  def __call__(self, images, train=False, c=None):
    del train  # the discriminator has no training-mode behaviour
    fir = ops.setup_filter()
    channels = lambda resolution: channels_at(resolution, self.channel_base, self.channel_max)
    x = images
    for resolution in reversed(block_resolutions(self.resolution)[1:]):
      x = DiscriminatorBlock(channels(resolution), channels(resolution // 2),
                             resolution == self.resolution, self.conv_clamp, self.dtype,
                             name=f'b{resolution}')(x, fir)
    cmap = None
    if self.c_dim:
      cmap = MappingNetwork(channels(4), None, D_MAPPING_LAYERS, D_MAPPING_LR_MULTIPLIER,
                            c_dim=self.c_dim, name='mapping')(None, _labels(c, x.shape[0],
                                                                          self.c_dim))
    return DiscriminatorEpilogue(channels(4), self.mbstd_group_size, self.mbstd_num_channels,
                                 self.conv_clamp, self.dtype, name='b4')(x, fir, cmap)


def check_config(model):
  """Raises UserError naming the bad field of a StyleGAN2 `config.model`."""
  check_power_of_two('model.resolution', model.resolution, MIN_RESOLUTION, MAX_RESOLUTION)
  for field in ('latent_dim', 'w_dim', 'channel_base', 'channel_max', 'mapping_layers',
                'mbstd_group_size'):
    if not isinstance(model[field], int) or model[field] < 1:
      raise UserError(f'config.model.{field}={model[field]!r} must be a positive integer.')
  if model.modconv_lowering not in LOWERINGS:
    raise UserError(f'config.model.modconv_lowering={model.modconv_lowering!r} is unknown; '
                    f'use one of {LOWERINGS}.')
  if not 0 <= model.style_mixing_prob <= 1:
    raise UserError(f'config.model.style_mixing_prob={model.style_mixing_prob} must be in '
                    '[0, 1].')


def build(model, dtype):
  """(generator, discriminator) of a StyleGAN2 `config.model`, computing in `dtype`."""
  clamp = model.conv_clamp or None
  generator = StyleGAN2Generator(
      model.resolution, model.channels, model.w_dim, model.channel_base, model.channel_max,
      model.mapping_layers, model.mapping_lr_multiplier, model.w_avg_beta,
      model.style_mixing_prob, clamp, resolve_lowering(model.modconv_lowering), dtype,
      model.c_dim)
  discriminator = StyleGAN2Discriminator(model.resolution, model.channel_base, model.channel_max,
                                         model.mbstd_group_size, model.mbstd_num_channels, clamp,
                                         dtype, model.c_dim)
  return generator, discriminator
