"""R3GAN (Huang et al., 2024): the generator and discriminator of brownvc/R3GAN, equal to them.

Both networks are stages of residual blocks without normalisation: a 1x1 convolution to
`expansion` x the width, lrelu(x + bias), a grouped 3x3 convolution (`cardinality` groups),
lrelu(x + bias), a 1x1 convolution back, added to the input. Stages change resolution with the
[1,3,3,1] FIR filter and width with a 1x1 convolution. The generator starts from a learned 4x4
basis scaled per channel by a linear map of z (and of a label embedding if conditional) and ends
with a 1x1 aggregation convolution to unbounded images; the discriminator starts with a 1x1
extraction convolution and ends with a depthwise 4x4 basis and a linear map to one logit (or, if
conditional, to an embedding whose dot product with the label's embedding is the logit).

Initialisation is the reference's 'MSR' one: N(0, (gain / sqrt(fan_in))^2) with gain
sqrt(2 / (1 + 0.2^2)) V^(-1/4) on the first two convolutions of each block (V = the network's
number of blocks), zero weights on the last, so that every block starts as the identity.
At run time nothing is rescaled. The generator's last and the discriminator's first
`bf16_stages` stages compute in bfloat16, as the reference's FP16Stages: each stage casts its
input to its dtype, and its weights, biases and filters at use (parameters stay float32); the
generator's aggregation convolution computes in its last stage's dtype, and the discriminator
casts the images to its first stage's dtype before its extraction convolution. Images and
features are NHWC, convolution kernels HWIO ([kh, kw, C_in / groups, C_out]), dense kernels
[in, out]; `params_from_reference` maps the reference's state_dict names
(Model.MainLayers.s.Layers.j...) onto our parameters.
"""

import math
import re
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from facegan_jax.models import stylegan2_ops as ops
from facegan_jax.system.errors import UserError
from facegan_jax.system.errors import check_power_of_two

MIN_RESOLUTION, MAX_RESOLUTION = 8, 1024
LRELU_SLOPE = 0.2
# The activation gain that enters the initialisation only (the forward pass uses gain 1).
ACTIVATION_GAIN = math.sqrt(2 / (1 + LRELU_SLOPE**2))
_DIMENSIONS = ('NHWC', 'HWIO', 'NHWC')

# config.model fields of the reference's presets (train.py's --preset), for `build`;
# bf16_stages is their FP16Stages: G's last 4 stages and D's first 4.
PRESET_FIELDS = {
    'FFHQ-64': dict(resolution=64, latent_dim=64, channel_base=24576, channel_max=768,
                    group_width=16, blocks_per_stage=2, expansion=2, bf16_stages=4),
    'FFHQ-256': dict(resolution=256, latent_dim=64, channel_base=24576, channel_max=768,
                     group_width=16, blocks_per_stage=2, expansion=2, bf16_stages=4),
}


def msr_init(gain, fan_in):
  """N(0, (gain / sqrt(fan_in))^2); exact zeros for gain 0."""
  if gain == 0:
    return nn.initializers.zeros
  return nn.initializers.normal(gain / math.sqrt(fan_in))


def block_gain(num_blocks):
  """Initialisation gain of a block's first two convolutions in a network of `num_blocks`:
  the activation gain times num_blocks^(-1 / (2L - 2)) with L = 3 layers per block."""
  return ACTIVATION_GAIN * num_blocks ** (-1 / 4)


def generator_stage_dtypes(stages, bf16_stages, dtype):
  """The compute dtype of each of the generator's `stages` stages: bfloat16 for the last
  `bf16_stages`, `dtype` for the others. The discriminator's are these reversed."""
  return tuple(jnp.bfloat16 if stage >= stages - bf16_stages else dtype
               for stage in range(stages))


class Conv(nn.Module):
  """'Same' convolution without bias, optionally grouped; kernel [k, k, C_in / groups, features]
  float32, computed in `dtype`."""
  features: int
  kernel_size: int = 1
  groups: int = 1
  gain: float = 1.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    size, group_inputs = self.kernel_size, x.shape[-1] // self.groups
    kernel = self.param('kernel', msr_init(self.gain, group_inputs * size * size),
                        (size, size, group_inputs, self.features))
    pad = (size - 1) // 2
    return lax.conv_general_dilated(x.astype(self.dtype), kernel.astype(self.dtype), (1, 1),
                                    ((pad, pad), (pad, pad)), dimension_numbers=_DIMENSIONS,
                                    feature_group_count=self.groups)


class BiasedActivation(nn.Module):
  """lrelu_0.2(x + bias) with a per-channel bias (last axis) that starts at 0; gain 1."""

  @nn.compact
  def __call__(self, x):
    bias = self.param('bias', nn.initializers.zeros, (x.shape[-1],))
    return ops.bias_act(x, bias, 'lrelu', gain=1.0)


class ResidualBlock(nn.Module):
  """x + conv3(act2(conv2(act1(conv1(x))))): 1x1 to expansion x width, grouped 3x3, 1x1 back."""
  cardinality: int
  expansion: int
  num_blocks: int  # in the whole network, for the initialisation gain
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    width = x.shape[-1]
    hidden = width * self.expansion
    gain = block_gain(self.num_blocks)
    y = Conv(hidden, 1, gain=gain, dtype=self.dtype, name='conv1')(x)
    y = BiasedActivation(name='act1')(y)
    y = Conv(hidden, 3, self.cardinality, gain, self.dtype, name='conv2')(y)
    y = BiasedActivation(name='act2')(y)
    return x + Conv(width, 1, gain=0.0, dtype=self.dtype, name='conv3')(y)


class Upsample(nn.Module):
  """A 1x1 convolution to `features` (only if the width changes), then x2 FIR upsampling."""
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    if x.shape[-1] != self.features:
      x = Conv(self.features, dtype=self.dtype, name='conv')(x)
    return ops.upsample2d(x.astype(self.dtype), ops.setup_filter())


class Downsample(nn.Module):
  """/2 FIR downsampling, then a 1x1 convolution to `features` (only if the width changes)."""
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = ops.downsample2d(x.astype(self.dtype), ops.setup_filter())
    if x.shape[-1] != self.features:
      x = Conv(self.features, dtype=self.dtype, name='conv')(x)
    return x


class GenerativeBasis(nn.Module):
  """[N, D_in] -> [N, 4, 4, features]: a learned basis [4, 4, features] ~ N(0, 1) scaled per
  channel by a linear map of the input (no bias)."""
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    basis = self.param('basis', nn.initializers.normal(1.0), (4, 4, self.features))
    kernel = self.param('kernel', msr_init(1.0, x.shape[-1]), (x.shape[-1], self.features))
    scales = x.astype(self.dtype) @ kernel.astype(self.dtype)
    return basis.astype(self.dtype)[None] * scales[:, None, None, :]


class DiscriminativeBasis(nn.Module):
  """[N, 4, 4, C] -> [N, features]: a depthwise 4x4 'valid' convolution (weights [4, 4, C]),
  then a linear map (no bias)."""
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    channels = x.shape[-1]
    depthwise = self.param('depthwise', msr_init(1.0, 16), (4, 4, channels))
    kernel = self.param('kernel', msr_init(1.0, channels), (channels, self.features))
    pooled = jnp.einsum('nhwc,hwc->nc', x.astype(self.dtype), depthwise.astype(self.dtype))
    self.sow('intermediates', 'depthwise', pooled)
    return pooled @ kernel.astype(self.dtype)


class Embedding(nn.Module):
  """Labels [N, c_dim] -> [N, features], a linear map without bias, std gain / sqrt(c_dim)."""
  features: int
  gain: float = 1.0

  @nn.compact
  def __call__(self, c):
    kernel = self.param('kernel', msr_init(self.gain, c.shape[-1]), (c.shape[-1], self.features))
    return c.astype(jnp.float32) @ kernel


def _check_labels(c, c_dim):
  if c_dim and (c is None or c.shape[-1] != c_dim):
    raise ValueError(f'this network is conditional: pass labels c of shape [N, {c_dim}].')


class GeneratorStage(nn.Module):
  """Stage s of the generator: the basis (s = 0) or the upsampling, then `blocks` blocks."""
  width: int
  cardinality: int
  blocks: int
  expansion: int
  num_blocks: int
  first: bool
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = x.astype(self.dtype)
    if self.first:
      x = GenerativeBasis(self.width, self.dtype, name='basis')(x)
    else:
      x = Upsample(self.width, self.dtype, name='upsample')(x)
    for index in range(self.blocks):
      x = ResidualBlock(self.cardinality, self.expansion, self.num_blocks, self.dtype,
                        name=f'block{index}')(x)
    return x


class R3GANGenerator(nn.Module):
  """z [N, latent_dim] (and labels c [N, c_dim] if c_dim > 0) -> images [N, R, R, channels],
  unbounded (about [-1, 1] once trained), R = 4 * 2^(stages - 1): float32, or bfloat16 with
  bf16_stages > 0 (the reference's, whose aggregation computes in its last stage's dtype).

  Per stage, from 4x4 on: `widths`, `cardinalities` (groups of the 3x3 convolutions), `blocks`.
  The last `bf16_stages` stages compute in bfloat16, the others in `dtype`
  (`generator_stage_dtypes`). The label embedding has `embedding_dim` features (the reference:
  latent_dim) and is concatenated after z. The networks have no training-mode behaviour.
  """
  widths: tuple[int, ...]
  cardinalities: tuple[int, ...]
  blocks: tuple[int, ...]
  expansion: int = 2
  latent_dim: int = 64
  c_dim: int = 0
  embedding_dim: int = 64
  channels: int = 3
  dtype: Any = jnp.float32
  bf16_stages: int = 0

  @nn.compact
  def __call__(self, z, train=False, c=None):
    del train  # no training-mode behaviour
    _check_labels(c, self.c_dim)
    x = z.astype(jnp.float32)
    if self.c_dim:
      x = jnp.concatenate([x, Embedding(self.embedding_dim, name='embedding')(c)], axis=-1)
    dtypes = generator_stage_dtypes(len(self.widths), self.bf16_stages, self.dtype)
    for stage, (width, cardinality, blocks, dtype) in enumerate(
        zip(self.widths, self.cardinalities, self.blocks, dtypes)):
      x = GeneratorStage(width, cardinality, blocks, self.expansion, sum(self.blocks),
                         stage == 0, dtype, name=f'stage{stage}')(x)
    images = Conv(self.channels, dtype=dtypes[-1], name='aggregation')(x)
    return images if self.bf16_stages else images.astype(jnp.float32)


class DiscriminatorStage(nn.Module):
  """Stage s of the discriminator: `blocks` blocks, then the downsampling to `next_width` or,
  in the last stage (next_width None), the basis to `basis_features`."""
  cardinality: int
  blocks: int
  expansion: int
  num_blocks: int
  next_width: int | None
  basis_features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = x.astype(self.dtype)
    for index in range(self.blocks):
      x = ResidualBlock(self.cardinality, self.expansion, self.num_blocks, self.dtype,
                        name=f'block{index}')(x)
    if self.next_width is None:
      return DiscriminativeBasis(self.basis_features, self.dtype, name='basis')(x)
    return Downsample(self.next_width, self.dtype, name='downsample')(x)


class R3GANDiscriminator(nn.Module):
  """images [N, R, R, channels] (and labels c [N, c_dim] if c_dim > 0) -> logits [N] float32.

  Per stage, from R x R down to 4x4: `widths`, `cardinalities`, `blocks` (the generator's
  reversed, as the reference builds it). If conditional, the logit is the dot product of the
  basis output ([N, embedding_dim]; the reference: the generator's 4x4 width) with an embedding
  of c whose initial std is 1 / sqrt(embedding_dim * c_dim). The first `bf16_stages` stages
  compute in bfloat16, the others in `dtype`; the images are cast to the first stage's dtype.
  """
  widths: tuple[int, ...]
  cardinalities: tuple[int, ...]
  blocks: tuple[int, ...]
  expansion: int = 2
  c_dim: int = 0
  embedding_dim: int = 768
  dtype: Any = jnp.float32
  bf16_stages: int = 0

  @nn.compact
  def __call__(self, images, train=False, c=None):
    del train  # no training-mode behaviour
    _check_labels(c, self.c_dim)
    dtypes = generator_stage_dtypes(len(self.widths), self.bf16_stages, self.dtype)[::-1]
    x = Conv(self.widths[0], dtype=dtypes[0], name='extraction')(images)
    last = len(self.widths) - 1
    for stage, (cardinality, blocks, dtype) in enumerate(
        zip(self.cardinalities, self.blocks, dtypes)):
      x = DiscriminatorStage(
          cardinality, blocks, self.expansion, sum(self.blocks),
          self.widths[stage + 1] if stage < last else None,
          self.embedding_dim if self.c_dim else 1, dtype, name=f'stage{stage}')(x)
    x = x.astype(jnp.float32)
    if not self.c_dim:
      return x[:, 0]
    embedded = Embedding(self.embedding_dim, 1 / math.sqrt(self.embedding_dim),
                         name='embedding')(c)
    return jnp.sum(x * embedded, axis=-1)


def stage_widths(resolution, channel_base, channel_max):
  """Generator widths at 4, 8, ..., resolution: min(channel_base / r, channel_max)."""
  count = int(math.log2(resolution)) - 1
  return tuple(min(channel_base // (4 * 2**s), channel_max) for s in range(count))


# config.model's per-stage fields (the reference's WidthPerStage, CardinalityPerStage and
# BlocksPerStage of the generator, from 4x4 up), comma-separated; '' derives them.
PER_STAGE_FIELDS = ('stage_widths', 'stage_cardinalities', 'stage_blocks')


def stage_layout(model):
  """(widths, cardinalities, blocks) of the generator's stages from 4x4 up: those of
  model.stage_widths, stage_cardinalities and stage_blocks where set, else
  min(channel_base / r, channel_max), width x expansion / group_width and blocks_per_stage.
  The discriminator's are these reversed. UserError for a per-stage field that is not one
  positive integer per stage."""
  count = int(math.log2(model.resolution)) - 1
  widths = (_per_stage(model, 'stage_widths', count)
            or stage_widths(model.resolution, model.channel_base, model.channel_max))
  cardinalities = (_per_stage(model, 'stage_cardinalities', count)
                   or tuple(width * model.expansion // model.group_width for width in widths))
  blocks = _per_stage(model, 'stage_blocks', count) or (model.blocks_per_stage,) * count
  return widths, cardinalities, blocks


def _per_stage(model, field, count):
  """The integers of the per-stage `field` of `model`, or () if it is unset."""
  text = model.get(field, '')  # '' in a model config without the field
  if not text:
    return ()
  values = tuple(int(value) for value in text.split(',') if value.strip().isdigit())
  if len(values) != len(text.split(',')) or len(values) != count or min(values) < 1:
    raise UserError(f'config.model.{field}={text!r} is not {count} positive integers, one per '
                    f'stage from 4x4 to {model.resolution}x{model.resolution}; give them '
                    "comma-separated (e.g. '" + ','.join(['2'] * count) + "'), or '' to derive "
                    'them.')
  return values


def check_config(model):
  """Raises UserError naming the bad field of an R3GAN `config.model`."""
  check_power_of_two('model.resolution', model.resolution, MIN_RESOLUTION, MAX_RESOLUTION)
  for field in ('latent_dim', 'channel_base', 'channel_max', 'group_width', 'blocks_per_stage',
                'expansion'):
    if not isinstance(model[field], int) or model[field] < 1:
      raise UserError(f'config.model.{field}={model[field]!r} must be a positive integer.')
  widths, cardinalities, _ = stage_layout(model)
  bf16_stages = model.get('bf16_stages', 0)  # 0 in a model config without the field
  if bf16_stages > len(widths):
    raise UserError(f'config.model.bf16_stages={bf16_stages} exceeds the {len(widths)} stages '
                    f'of resolution {model.resolution}; use 0 to {len(widths)}.')
  per_stage = bool(model.get('stage_cardinalities', ''))
  for width, cardinality in zip(widths, cardinalities):
    if per_stage and (width * model.expansion) % cardinality:
      raise UserError(
          f'config.model.stage_cardinalities={model.stage_cardinalities!r} does not divide '
          f'the {width} x {model.expansion} channels of a stage into equal groups; give '
          'each stage a divisor of its width x expansion.')
    if not per_stage and (width < 1 or (width * model.expansion) % model.group_width):
      raise UserError(
          f'config.model.group_width={model.group_width} does not divide the {width} x '
          f'{model.expansion} channels of a stage (widths min(channel_base / r, channel_max)); '
          'use a divisor of every stage width x expansion (the presets: 16).')


def build(model, dtype):
  """(generator, discriminator) of an R3GAN `config.model`: the stages of `stage_layout`
  (widths min(channel_base / r, channel_max), cardinalities width x expansion / group_width
  and blocks_per_stage blocks per stage, as the reference's presets, unless the per-stage
  fields say otherwise); conditional on labels of model.c_dim values if it is > 0, with the
  reference's embedding widths (G: latent_dim, D: G's 4x4 width). G's last and D's first
  model.bf16_stages stages compute in bfloat16 whatever `dtype` (config.train.compute_dtype),
  the others in `dtype`: with 'bfloat16' every stage does. G's images are bfloat16 if
  model.bf16_stages > 0, else float32."""
  widths, cardinalities, blocks = stage_layout(model)
  c_dim = model.get('c_dim', 0)  # 0 in a model config without the field
  bf16_stages = model.get('bf16_stages', 0)  # likewise
  generator = R3GANGenerator(widths, cardinalities, blocks, model.expansion, model.latent_dim,
                             c_dim=c_dim, embedding_dim=model.latent_dim, channels=model.channels,
                             dtype=dtype, bf16_stages=bf16_stages)
  discriminator = R3GANDiscriminator(widths[::-1], cardinalities[::-1], blocks[::-1],
                                     model.expansion, c_dim=c_dim, embedding_dim=widths[0],
                                     dtype=dtype, bf16_stages=bf16_stages)
  return generator, discriminator


def resolution_of(network):
  """Image side of an R3GAN generator or discriminator."""
  return 4 * 2 ** (len(network.widths) - 1)


def abstract_params(network, channels=3):
  """The shapes of `network`'s params (jax.ShapeDtypeStruct leaves), without materialising;
  `channels` of the discriminator's images."""
  if isinstance(network, R3GANGenerator):
    inputs = (jax.ShapeDtypeStruct((1, network.latent_dim), jnp.float32),)
  else:
    side = resolution_of(network)
    inputs = (jax.ShapeDtypeStruct((1, side, side, channels), jnp.float32),)
  if network.c_dim:
    inputs += (jax.ShapeDtypeStruct((1, network.c_dim), jnp.float32),)
  init = lambda *args: network.init(jax.random.key(0), args[0], False, *args[1:])
  return jax.eval_shape(init, *inputs)['params']


_LAYER = re.compile(r'MainLayers\.(\d+)\.Layers\.(\d+)(?:\.(\w+))?$')
_TOP_LEVEL = {'AggregationLayer': 'aggregation', 'ExtractionLayer': 'extraction',
              'EmbeddingLayer': 'embedding'}
_BLOCK_PARTS = {'LinearLayer1': 'conv1', 'LinearLayer2': 'conv2', 'LinearLayer3': 'conv3',
                'NonLinearity1': 'act1', 'NonLinearity2': 'act2'}
_TRANSITION_PARTS = {'LinearLayer': 'conv', 'Basis': 'depthwise'}


def module_path(network, reference_path):
  """Our module path (a tuple) of a reference module path (after 'Model.'), e.g.
  'MainLayers.1.Layers.2.LinearLayer1' -> ('stage1', 'block1', 'conv1') in the generator, whose
  layer 0 of each stage is the basis or upsampling; in the discriminator the layer after a
  stage's blocks is the downsampling or basis. KeyError for names of no module of ours."""
  if reference_path in _TOP_LEVEL:
    return (_TOP_LEVEL[reference_path],)
  stage = re.fullmatch(r'MainLayers\.(\d+)', reference_path)
  if stage:
    return (f'stage{stage[1]}',)
  match = _LAYER.match(reference_path)
  if not match:
    raise KeyError(reference_path)
  stage, layer, part = int(match[1]), int(match[2]), match[3]
  last = len(network.blocks) - 1
  if isinstance(network, R3GANGenerator):
    block = layer - 1 if layer else None
    transition = 'basis' if stage == 0 else 'upsample'
  else:
    block = layer if layer < network.blocks[stage] else None
    transition = 'basis' if stage == last else 'downsample'
  if block is not None:
    return (f'stage{stage}', f'block{block}') + ((_BLOCK_PARTS[part],) if part else ())
  return (f'stage{stage}', transition) + ((_TRANSITION_PARTS[part],) if part else ())


def convert_reference_entry(network, name, value):
  """(our param path, value in our layout) of one reference entry `name` (after 'Model.'), or
  None for a resampling filter (checked to be the [1,3,3,1] one)."""
  owner, leaf = name.rsplit('.', 1) if '.' in name else ('', name)
  if leaf == 'Kernel':
    if not np.allclose(value, ops.setup_filter(), rtol=0, atol=1e-7):
      raise UserError(f'{name} is not the [1,3,3,1] filter that this port uses; convert a '
                      'network built with the default ResamplingFilter.')
    return None
  if leaf == 'Bias':  # ...NonLinearity{k}.Bias [C]
    return module_path(network, owner) + ('bias',), value
  if leaf == 'Basis':  # the generative basis [C, 4, 4]
    return module_path(network, owner) + ('basis',), value.transpose(1, 2, 0)
  if name.endswith('.Basis.weight'):  # the depthwise 4x4 [C, 1, 4, 4]
    return (module_path(network, owner.rsplit('.', 1)[0]) + ('depthwise',),
            value[:, 0].transpose(1, 2, 0))
  if name.endswith('.Layer.weight'):  # a convolution [out, in / groups, kh, kw]
    return module_path(network, owner.rsplit('.', 1)[0]) + ('kernel',), value.transpose(2, 3, 1, 0)
  if name.endswith('LinearLayer.weight'):  # the basis' linear layer [out, in]
    return module_path(network, owner.rsplit('.', 1)[0]) + ('kernel',), value.T
  if name == 'EmbeddingLayer.weight':
    return ('embedding', 'kernel'), value.T
  raise KeyError(name)


def params_from_reference(arrays, network, prefix):
  """Our params of `network` from the reference's state_dict entries `arrays` ({name: array})
  whose names start with `prefix` + 'Model.' (e.g. 'G/Model.MainLayers.0.Layers.0.Basis').

  Raises UserError naming the first entry that is not one of `network`'s parameters, has
  another shape, or is missing.
  """
  expected = flax.traverse_util.flatten_dict(abstract_params(network))
  params = {}
  for name, value in arrays.items():
    if not name.startswith(prefix):
      continue
    value = np.asarray(value, np.float32)
    try:
      converted = convert_reference_entry(network, name[len(prefix):].removeprefix('Model.'),
                                          value)
    except KeyError:
      converted = (name,), None
    if converted is None:
      continue
    path, value = converted
    if path not in expected:
      raise UserError(f'{name} is not a parameter of this network; convert weights of the '
                      'configuration that the model is built with.')
    if value.shape != expected[path].shape:
      raise UserError(f'{name} has shape {value.shape} in our layout; this network expects '
                      f'{expected[path].shape}: build the model with the weights\' configuration.')
    params[path] = value
  missing = sorted(set(expected) - set(params))
  if missing:
    raise UserError(f'no {prefix} entry for our parameter {"/".join(missing[0])}; pass the whole '
                    'state_dict of the network.')
  return flax.traverse_util.unflatten_dict(params)
