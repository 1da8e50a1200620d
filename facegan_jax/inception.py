"""The FID Inception-v3 in Flax: pool3 features of the 2015-12-05 TensorFlow graph.

FID and KID are only comparable across papers when computed with one network: the Inception-v3
graph `inception-2015-12-05.tgz` that the original TTUR FID code froze, and that pytorch-fid,
clean-fid and StyleGAN load. It differs from torchvision's ImageNet Inception-v3 in four places,
reproduced here: the average pools of blocks A, C and the first E block ignore the padding when
averaging (`count_include_pad=False`); the last E block pools with a max instead of an average;
the BatchNorm epsilon is 1e-3; inputs in [0, 255] are scaled by (x - 128) / 128.

Weights: pytorch-fid publishes the graph's weights converted to PyTorch,
`pt_inception-2015-12-05-6726825d.pth` (URL in WEIGHTS_HELP). `python -m
facegan_jax.convert_inception` turns that file into the .npz this module reads: every parameter
under its path in the Flax tree ('params/Mixed_5b/branch1x1/conv/kernel', ...), with
convolution kernels transposed from PyTorch's [out, in, h, w] to Flax's [h, w, in, out]. The
submodules carry torchvision's names, so the mapping is the path itself (see `from_torch`).
Checked once against pytorch-fid 0.3.0's network (torch 2.13, CPU) with random weights and
BatchNorm statistics, converted by `from_torch`: pool3 features agree to 9e-8 (mean 0.065),
while torchvision's plain Inception-v3 with the same weights differs by 0.04.

Resizing: images go to 299x299 inside the jitted feature function with bicubic interpolation
(Keys a = -0.5, half-pixel centres) and antialiasing when shrinking, which is what PIL's
`Image.resize(..., BICUBIC)` computes on float images and what clean-fid recommends over the
aliasing bilinear resize of the TensorFlow graph and pytorch-fid.
"""

import hashlib
import os
from typing import Any, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from facegan_jax.errors import UserError

INPUT_SIZE = 299
FEATURE_DIM = 2048  # pool3 width of the full network (width_multiplier 1)
WEIGHTS_URL = ('https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/'
               'pt_inception-2015-12-05-6726825d.pth')
WEIGHTS_HELP = (f'download {WEIGHTS_URL} and convert it with: python -m '
                'facegan_jax.convert_inception --pth=pt_inception-2015-12-05-6726825d.pth '
                '--out=PATH (needs torch)')


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


def preprocess(images: jax.Array) -> jax.Array:
  """[B, H, W, C] uint8 (C = 1 or 3) -> [B, 299, 299, 3] float32 network input.

  Bicubic with antialiasing (as PIL's BICUBIC on float images); grayscale is repeated to RGB.
  The bicubic overshoot is not clipped, as in clean-fid.
  """
  x = images.astype(jnp.float32)
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  x = jax.image.resize(x, (x.shape[0], INPUT_SIZE, INPUT_SIZE, 3), method='bicubic',
                       antialias=True)
  return (x - 128.0) / 128.0


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


def from_torch(state_dict) -> dict:
  """pytorch-fid's state dict {name: array} -> Flax variables {'params', 'batch_stats'}.

  Names map by path: 'Mixed_5b.branch1x1.conv.weight' -> params/Mixed_5b/branch1x1/conv/kernel
  ([out, in, h, w] -> [h, w, in, out]); bn.weight/bias -> params .../bn/scale, bias;
  bn.running_mean/var -> batch_stats .../bn/mean, var. The classifier (fc.*) and
  num_batches_tracked are not part of the feature network and are dropped.
  """
  renames = {'weight': ('params', 'scale'), 'bias': ('params', 'bias'),
             'running_mean': ('batch_stats', 'mean'), 'running_var': ('batch_stats', 'var')}
  flat = {}
  for name, value in state_dict.items():
    *path, leaf = name.split('.')
    if path[0] == 'fc' or leaf == 'num_batches_tracked':
      continue
    value = np.asarray(value, np.float32)
    if path[-1] == 'conv':
      flat[('params', *path, 'kernel')] = value.transpose(2, 3, 1, 0)
    else:
      collection, flax_leaf = renames[leaf]
      flat[(collection, *path, flax_leaf)] = value
  return flax.traverse_util.unflatten_dict(flat)


def save(path: str, variables):
  """Writes variables as an .npz of float32 arrays keyed by 'collection/module/.../leaf'."""
  flat = flax.traverse_util.flatten_dict(jax.device_get(variables), sep='/')
  with open(path, 'wb') as f:
    np.savez(f, **{key: np.asarray(value, np.float32) for key, value in flat.items()})


def load(path: str, width_multiplier: float = 1.0):
  """Reads `save`'s .npz, checks it against the network; returns (numpy variables, fingerprint).

  The fingerprint (a hash of the file's bytes) keys cached reference statistics, so statistics
  of one network are never compared with features of another. UserError when the file is
  missing or does not fit the network.
  """
  path = os.path.expanduser(path)
  if not path or not os.path.isfile(path):
    raise UserError(f'config.eval.inception_weights={path!r} is not a file; {WEIGHTS_HELP}, '
                    'then set --config.eval.inception_weights=PATH (or leave '
                    'config.eval.every=0 to train without FID).')
  with open(path, 'rb') as f:
    data = f.read()
  with np.load(path) as arrays:
    flat = {tuple(key.split('/')): arrays[key] for key in arrays.files}
  expected = flax.traverse_util.flatten_dict(variable_shapes(width_multiplier))
  for key in sorted(set(expected) | set(flat)):
    got = flat[key].shape if key in flat else 'missing'
    want = expected[key].shape if key in expected else 'not in the network'
    if got != want:
      raise UserError(f'config.eval.inception_weights={path!r} does not fit the FID Inception '
                      f'with config.eval.inception_width_multiplier={width_multiplier}: '
                      f'{"/".join(key)} is {got}, expected {want}; {WEIGHTS_HELP}.')
  return flax.traverse_util.unflatten_dict(flat), hashlib.sha256(data).hexdigest()[:16]
