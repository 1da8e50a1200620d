"""NVIDIA's adaptive discriminator augmentation pipe (StyleGAN2-ADA, Karras et al. 2020), equal
to `training/augment.py` of stylegan2-ada-pytorch @ d72cc7d fed the same random draws.

Design:
* Randomness is separate from computation. `draw_randomness` makes every uniform / normal array
  the reference draws, in its shapes (the noise field excepted: NHWC like the images), as a dict
  keyed by `draw_names`; `augment(images, draws, p, settings)` is a deterministic function of
  them, so the tests feed it the reference's recorded draws. Draws are made whatever p is; p only
  gates them, so p may be a traced float32 scalar of the train state.
* Everything is vectorised over the batch and has static shapes for one jit. The reference pads
  the images of the geometric stage by a margin that depends on the draws of the whole batch; here
  they are reflect-padded by the worst case (the margin is clamped to W - 1 and H - 1), zeroed
  outside the reference's margin before upsampling, and sampled at the reference's coordinates
  shifted by whole pixels, with neighbours outside the reference's upsampled image counting as 0:
  the numbers of the reference's padding at a static shape (`geometric_transform`'s `padding`).
* Scalar arithmetic follows the reference's float32 operations and their order (the margins are
  ceil()ed from float32 values, so one ulp can add a pixel); small matrix products are written as
  elementwise sums, exact float32 on every backend (no reduced-precision matmul), in the order
  of the reference's small-matrix kernel.
* Bilinear sampling names its 4 neighbours by index parity and weighs them by distance: XLA
  recomputes the sample positions in each fusion, not always to the same bits, and a floor taken
  from one copy with a weight from another misread pixels by up to 0.1 under jit (caught on the
  fixture's 64x64 case).
* p = 0 is not an exact identity, as in the reference: the geometric stage resamples (error ~4e-6)
  whenever one of its transforms is enabled, and x-flips and 90-degree turns pass through the
  asymmetric sym6 filter (a ~0.1 px shift), like every other geometric transform.

Images are [N, H, W, C] float32 in [-1, 1] (C = 1 or 3 for the colour transforms; H, W >= 22 for
the image-space filter). The result is differentiable with respect to the images (affine in them
for fixed draws); no gradient reaches p or the draws.
"""

import dataclasses
import functools
import operator

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from facegan_jax.system.errors import UserError

# Low-pass decomposition filters of the Daubechies symlets of orders 6 and 2 (PyWavelets' dec_lo).
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)
SYM2 = (-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025)
FILTER_PAD = 21  # half the length of the image-space filter bank's taps
EXPECTED_BAND_POWER = (10 / 13, 1 / 13, 1 / 13, 1 / 13)  # a 1/f spectrum over the 4 bands


@dataclasses.dataclass(frozen=True)
class AugmentSettings:
  """Probability multipliers (0 disables a transform and its draws) and strengths, with NVIDIA's
  defaults: every transform off. A multiplier m applies its transform to each image with
  probability m * p. Hashable, for jit's static arguments."""
  # Pixel blitting: x-flip, 90-degree turns, integer translation up to xint_max of the side.
  xflip: float = 0.0
  rotate90: float = 0.0
  xint: float = 0.0
  xint_max: float = 0.125
  # General geometric transforms (std of log2 scale, rotation range as a fraction of a turn, ...).
  scale: float = 0.0
  rotate: float = 0.0
  aniso: float = 0.0
  xfrac: float = 0.0
  scale_std: float = 0.2
  rotate_max: float = 1.0
  aniso_std: float = 0.2
  xfrac_std: float = 0.125
  # Colour transforms.
  brightness: float = 0.0
  contrast: float = 0.0
  lumaflip: float = 0.0
  hue: float = 0.0
  saturation: float = 0.0
  brightness_std: float = 0.2
  contrast_std: float = 0.5
  hue_max: float = 1.0
  saturation_std: float = 1.0
  # Image-space filtering: 4 frequency bands with their own multipliers.
  imgfilter: float = 0.0
  imgfilter_bands: tuple = (1.0, 1.0, 1.0, 1.0)
  imgfilter_std: float = 1.0
  # Corruptions: additive RGB noise and a cutout rectangle of cutout_size of each side.
  noise: float = 0.0
  cutout: float = 0.0
  noise_std: float = 0.1
  cutout_size: float = 0.5

  def geometric(self):
    return any((self.xflip, self.rotate90, self.xint, self.scale, self.rotate, self.aniso,
                self.xfrac))

  def color(self, channels):
    """Whether the colour stage runs: hue and saturation draw nothing for 1 channel."""
    chroma = (self.hue, self.saturation) if channels > 1 else ()
    return any((self.brightness, self.contrast, self.lumaflip) + chroma)


_BLIT = dict(xflip=1, rotate90=1, xint=1)
_GEOM = dict(scale=1, rotate=1, aniso=1, xfrac=1)
_COLOR = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
PRESETS = {  # stylegan2-ada-pytorch's train.py --augpipe
    'blit': _BLIT, 'geom': _GEOM, 'color': _COLOR, 'filter': dict(imgfilter=1),
    'noise': dict(noise=1), 'cutout': dict(cutout=1), 'bg': {**_BLIT, **_GEOM},
    'bgc': {**_BLIT, **_GEOM, **_COLOR}, 'bgcf': {**_BLIT, **_GEOM, **_COLOR, 'imgfilter': 1},
    'bgcfn': {**_BLIT, **_GEOM, **_COLOR, 'imgfilter': 1, 'noise': 1},
    'bgcfnc': {**_BLIT, **_GEOM, **_COLOR, 'imgfilter': 1, 'noise': 1, 'cutout': 1},
}


def preset(name: str) -> AugmentSettings:
  """The settings of an --augpipe preset of NVIDIA's train.py; UserError for other names."""
  if name not in PRESETS:
    raise UserError(f'augment pipe preset {name!r} is unknown; use one of {list(PRESETS)}.')
  return AugmentSettings(**{key: float(value) for key, value in PRESETS[name].items()})


# ------------------------------------------------------------------------------------------------
# Randomness.


def draw_shapes(settings: AugmentSettings, image_shape):
  """[(name, 'uniform' | 'normal', shape)] of every draw in the reference's call order, for
  images of image_shape [N, H, W, C]. A transform draws its value, then its gate ('<name>_gate'),
  except cutout (gate, then centre); hue and saturation draw nothing for 1 channel."""
  batch, height, width, channels = image_shape
  spec = []

  def add(name, value_kind, value_shape=(batch,), gate_shape=None):
    spec.append((name, value_kind, value_shape))
    spec.append((name + '_gate', 'uniform', gate_shape or value_shape))

  s = settings
  if s.xflip:
    add('xflip', 'uniform')
  if s.rotate90:
    add('rotate90', 'uniform')
  if s.xint:
    add('xint', 'uniform', (batch, 2), (batch, 1))
  if s.scale:
    add('scale', 'normal')
  if s.rotate:
    add('rotate_pre', 'uniform')
  if s.aniso:
    add('aniso', 'normal')
  if s.rotate:
    add('rotate_post', 'uniform')
  if s.xfrac:
    add('xfrac', 'normal', (batch, 2), (batch, 1))
  if s.brightness:
    add('brightness', 'normal')
  if s.contrast:
    add('contrast', 'normal')
  if s.lumaflip:
    add('lumaflip', 'uniform', (batch, 1, 1))
  if s.hue and channels > 1:
    add('hue', 'uniform')
  if s.saturation and channels > 1:
    add('saturation', 'normal', (batch, 1, 1))
  if s.imgfilter:
    for band in range(len(s.imgfilter_bands)):
      add(f'imgfilter_band{band}', 'normal')
  if s.noise:
    add('noise', 'normal', (batch, 1, 1, 1))
    spec.append(('noise_field', 'normal', (batch, height, width, channels)))  # always drawn
  if s.cutout:
    spec.append(('cutout_gate', 'uniform', (batch, 1, 1, 1, 1)))
    spec.append(('cutout_center', 'uniform', (batch, 2, 1, 1, 1)))
  return spec


def draw_randomness(key, image_shape, settings: AugmentSettings):
  """{name: float32 array} of U[0, 1) and N(0, 1) draws as `draw_shapes` lists them."""
  spec = draw_shapes(settings, image_shape)
  draws = {}
  for (name, kind, shape), draw_key in zip(spec, jax.random.split(key, max(len(spec), 1))):
    sample = jax.random.uniform if kind == 'uniform' else jax.random.normal
    draws[name] = sample(draw_key, shape, jnp.float32)
  return draws


def _gated(draws, name, value, threshold, identity):
  """`value` where the image's gate draw is below threshold (= multiplier * p), else identity."""
  return jnp.where(draws[name + '_gate'] < threshold, value, identity)


# ------------------------------------------------------------------------------------------------
# Small matrices, [N, r, c] float32, in the reference's float32 operations.


def _matmul(a, b):
  """a @ b, summed over the inner index in increasing order (exact float32 on any backend)."""
  terms = [a[..., :, k, None] * b[..., None, k, :] for k in range(a.shape[-1])]
  return functools.reduce(operator.add, terms)


def _matrix(rows, batch):
  """[batch, len(rows), len(rows[0])] from rows of [batch] arrays and Python numbers."""
  entries = [jnp.broadcast_to(jnp.asarray(x, jnp.float32), (batch,)) for row in rows for x in row]
  return jnp.stack(entries, -1).reshape(batch, len(rows), len(rows[0]))


def _translate(tx, ty, batch):
  return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], batch)


def _scale(sx, sy, batch):
  return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], batch)


def _rotate(theta, batch):
  return _matrix([[jnp.cos(theta), jnp.sin(-theta), 0], [jnp.sin(theta), jnp.cos(theta), 0],
                  [0, 0, 1]], batch)


def geometric_matrix(draws, p, settings: AugmentSettings, image_shape):
  """G_inv [N, 3, 3]: output pixel -> input pixel (pixels from the image centre, y down), the
  product flip . rot90 . int-shift . scale . rotation . aniso . rotation . frac-shift of the
  transforms whose gates pass (the others are the identity)."""
  s = settings
  batch, height, width, _ = image_shape
  p = jnp.asarray(p, jnp.float32)
  factors = []
  if s.xflip:
    flip = _gated(draws, 'xflip', jnp.floor(draws['xflip'] * 2), s.xflip * p, 0.0)
    factors.append(_scale(1 / (1 - 2 * flip), 1, batch))
  if s.rotate90:
    quarters = _gated(draws, 'rotate90', jnp.floor(draws['rotate90'] * 4), s.rotate90 * p, 0.0)
    factors.append(_rotate(-(-np.pi / 2 * quarters), batch))
  if s.xint:
    shift = _gated(draws, 'xint', (draws['xint'] * 2 - 1) * s.xint_max, s.xint * p, 0.0)
    factors.append(_translate(-jnp.round(shift[:, 0] * width), -jnp.round(shift[:, 1] * height),
                              batch))
  if s.scale:
    zoom = _gated(draws, 'scale', jnp.exp2(draws['scale'] * s.scale_std), s.scale * p, 1.0)
    factors.append(_scale(1 / zoom, 1 / zoom, batch))
  # Each of the two rotations with probability p_rot, so that one or both happen with rotate * p.
  p_rot = 1 - jnp.sqrt(jnp.clip(1 - s.rotate * p, 0, 1))

  def rotation(name):
    theta = (draws[name] * 2 - 1) * np.pi * s.rotate_max
    return _rotate(_gated(draws, name, theta, p_rot, 0.0), batch)

  if s.rotate:
    factors.append(rotation('rotate_pre'))
  if s.aniso:
    stretch = _gated(draws, 'aniso', jnp.exp2(draws['aniso'] * s.aniso_std), s.aniso * p, 1.0)
    factors.append(_scale(1 / stretch, 1 / (1 / stretch), batch))
  if s.rotate:
    factors.append(rotation('rotate_post'))
  if s.xfrac:
    shift = _gated(draws, 'xfrac', draws['xfrac'] * s.xfrac_std, s.xfrac * p, 0.0)
    factors.append(_translate(-(shift[:, 0] * width), -(shift[:, 1] * height), batch))
  return functools.reduce(_matmul, factors, jnp.broadcast_to(jnp.eye(3), (batch, 3, 3)))


def _sym6_taps():
  taps = np.asarray(SYM6, np.float32)
  return taps / taps.sum(dtype=np.float32)


def padding_margins(g_inv, height, width):
  """The reference's reflect-padding margins [left, top, right, bottom] int32: how far the
  batch's transformed corners reach beyond the image, plus the filter's reach, clamped to
  [0, side - 1] and ceil()ed in float32, the maximum over the whole batch."""
  cx, cy = (width - 1) / 2, (height - 1) / 2
  corners = np.asarray([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], np.float32).T
  reach = _matmul(g_inv, jnp.asarray(corners))[:, :2, :]  # [N, xy, corner]
  reach = jnp.concatenate([(-reach).max(axis=(0, 2)), reach.max(axis=(0, 2))])
  pad = 2 * (len(SYM6) // 4)
  margin = reach + np.asarray([pad - cx, pad - cy] * 2, np.float32)
  margin = jnp.minimum(jnp.maximum(margin, 0), np.asarray([width - 1, height - 1] * 2, np.float32))
  return jnp.ceil(margin).astype(jnp.int32)


# ------------------------------------------------------------------------------------------------
# The geometric stage.


def _upsample_along(x, taps, axis):
  """2x upsampling along `axis` as the reference's upfirdn2d (zero insertion, pads (6, 5), true
  convolution with `taps`, gain 2 per axis), computed per output phase to skip the zeros:
  out[2m + r] = 2 sum_d taps[5 + r + 2d] x[m - d]."""
  length = x.shape[axis]
  half = len(taps) // 4  # d runs over -half..half (phase 1) or -half+1..half (phase 0)
  padding = [(0, 0)] * x.ndim
  padding[axis] = (half, half)
  padded = jnp.pad(x, padding)

  def phase(r):
    terms = []
    for d in range(-half, half + 1):
      index = 5 + r + 2 * d
      if 0 <= index < len(taps):
        start = half - d
        terms.append(float(2 * taps[index]) * lax.slice_in_dim(padded, start, start + length,
                                                                axis=axis))
    return functools.reduce(operator.add, terms)

  both = jnp.stack([phase(0), phase(1)], axis + 1)
  shape = list(x.shape)
  shape[axis] = 2 * length
  return both.reshape(shape)


def _downsample_along(x, taps, axis):
  """y[m] = sum_k taps[k] x[2m + 1 + k], m < (len - 12) / 2 (the reference's downsample2d with
  padding -6 and flip_filter: crop 1, correlate, keep every second sample)."""
  count = (x.shape[axis] - len(taps)) // 2
  terms = [float(tap) * lax.slice_in_dim(x, 1 + k, 1 + k + 2 * (count - 1) + 1, 2, axis)
           for k, tap in enumerate(taps)]
  return functools.reduce(operator.add, terms)


def _base_grid(size):
  """affine_grid's normalised pixel centres (align_corners=False) as torch computes them in
  float32: linspace(-1, 1, size) (from both ends with a float32 step, each value a fused
  multiply-add, exact in float64 here) * (size - 1) / size."""
  step = np.float64(np.float32(2 / (size - 1)))
  index = np.arange(size)
  line = np.where(index < size // 2, -1 + step * index, 1 - step * (size - 1 - index))
  return line.astype(np.float32) * np.float32(size - 1) / np.float32(size)


def geometric_transform(images, g_inv, margins, padding=None):
  """Applies G_inv [N, 3, 3] to images [N, H, W, C] as the reference: reflect padding by
  `margins` (left, top, right, bottom; int32, shared by the batch), 2x sym6 upsampling, bilinear
  sampling with zeros outside, sym6 downsampling.

  The arrays are padded by the static `padding` (left, top, right, bottom; default the largest
  margins, (W - 1, H - 1) * 2), which must be >= margins; the values equal the reference's with
  padding = margins.
  """
  batch, height, width, channels = images.shape
  left, top, right, bottom = padding or (width - 1, height - 1) * 2
  mx0, my0, mx1, my1 = (margins[i] for i in range(4))
  taps = _sym6_taps()
  pad = 2 * (len(taps) // 4)

  # Reflect padding is the same index map whatever its width: the reference's padded image is a
  # window of ours, and zeros outside it keep the upsampled values equal inside.
  padded = jnp.pad(images, ((0, 0), (top, bottom), (left, right), (0, 0)), mode='reflect')
  rows = jnp.arange(padded.shape[1])[:, None]
  cols = jnp.arange(padded.shape[2])[None, :]
  window = ((rows >= top - my0) & (rows < top + height + my1) & (cols >= left - mx0)
            & (cols < left + width + mx1))
  padded = jnp.where(window[None, :, :, None], padded, 0)
  upsampled = _upsample_along(_upsample_along(padded, taps, 2), taps, 1)

  # The reference's matrix, from output pixels to its upsampled image's normalised coordinates.
  g_inv = _matmul(_translate((mx0 - mx1) / 2, (my0 - my1) / 2, batch), g_inv)
  g_inv = _matmul(_matmul(_scale(2, 2, batch), g_inv), _scale(0.5, 0.5, batch))
  g_inv = _matmul(_matmul(_translate(-0.5, -0.5, batch), g_inv), _translate(0.5, 0.5, batch))
  out_height, out_width = (height + pad) * 2, (width + pad) * 2
  up_width, up_height = 2 * (width + mx0 + mx1), 2 * (height + my0 + my1)
  # 2 / size as the reference's float64 division rounded to float32, tabulated by size.
  two_over = jnp.asarray(np.float32([2 / size if size else 0
                                      for size in range(6 * max(height, width))]))
  g_inv = _matmul(_scale(two_over[up_width], two_over[up_height], batch), g_inv)
  g_inv = _matmul(g_inv, _scale(np.float32(1 / (2 / out_width)),
                                np.float32(1 / (2 / out_height)), batch))

  # affine_grid and grid_sample (bilinear, zeros, align_corners=False) in the reference's
  # upsampled pixel indices, then shifted by whole pixels into our larger array.
  xs = jnp.asarray(_base_grid(out_width))[None, None, :]
  ys = jnp.asarray(_base_grid(out_height))[None, :, None]
  theta = g_inv[:, :2, :, None, None]
  grid_x = xs * theta[:, 0, 0] + ys * theta[:, 0, 1] + theta[:, 0, 2]
  grid_y = xs * theta[:, 1, 0] + ys * theta[:, 1, 1] + theta[:, 1, 2]
  x = ((grid_x + 1) * up_width.astype(jnp.float32) - 1) / 2
  y = ((grid_y + 1) * up_height.astype(jnp.float32) - 1) / 2
  big_height, big_width = upsampled.shape[1:3]
  flat = upsampled.reshape(batch * big_height * big_width, channels)  # one gather for the batch
  image_start = (jnp.arange(batch) * (big_height * big_width))[:, None, None]

  def neighbour(parity_y, parity_x):
    # The bilinear neighbour (floor or floor + 1) whose index has the given parity, with the tent
    # weight 1 - |position - index| (torch's 1 - w and w). XLA recomputes the positions in every
    # fusion that uses them, not always to the same bits: with neighbours named by parity and
    # weights by distance, a position on one side of an integer in one copy and on the other
    # side in another still reads each pixel once with its right weight.
    yi, xi = (low + ((parity - low) & 1) for low, parity in
              ((jnp.floor(y).astype(jnp.int32), parity_y), (jnp.floor(x).astype(jnp.int32),
                                                             parity_x)))
    weight_y = jnp.maximum(1 - jnp.abs(y - yi.astype(jnp.float32)), 0)
    weight_x = jnp.maximum(1 - jnp.abs(x - xi.astype(jnp.float32)), 0)
    inside = (yi >= 0) & (yi < up_height) & (xi >= 0) & (xi < up_width)
    yi = jnp.clip(yi + 2 * (top - my0), 0, big_height - 1)
    xi = jnp.clip(xi + 2 * (left - mx0), 0, big_width - 1)
    values = jnp.take(flat, image_start + yi * big_width + xi, axis=0, mode='clip')
    return values * jnp.where(inside, weight_y * weight_x, 0)[..., None]

  sampled = neighbour(0, 0) + neighbour(0, 1) + neighbour(1, 0) + neighbour(1, 1)
  return _downsample_along(_downsample_along(sampled, taps, 2), taps, 1)


# ------------------------------------------------------------------------------------------------
# Colour, image-space filter, noise, cutout.


def color_matrix(draws, p, settings: AugmentSettings, batch):
  """C [N, 4, 4] acting on (r, g, b, 1): saturation . hue . lumaflip . contrast . brightness.
  Its [3, 3] entry is the saturation factor, as in the reference (it does not matter)."""
  s = settings
  p = jnp.asarray(p, jnp.float32)
  luma = np.asarray(np.asarray([1, 1, 1, 0]) / np.sqrt(3), np.float32)
  luma_projection = np.outer(luma, luma)
  identity = np.eye(4, dtype=np.float32)
  factors = []  # applied left to right
  if s.brightness:
    offset = _gated(draws, 'brightness', draws['brightness'] * s.brightness_std,
                    s.brightness * p, 0.0)
    factors.append(_matrix([[1, 0, 0, offset], [0, 1, 0, offset], [0, 0, 1, offset],
                            [0, 0, 0, 1]], batch))
  if s.contrast:
    gain = _gated(draws, 'contrast', jnp.exp2(draws['contrast'] * s.contrast_std),
                  s.contrast * p, 1.0)
    factors.append(_matrix([[gain, 0, 0, 0], [0, gain, 0, 0], [0, 0, gain, 0], [0, 0, 0, 1]],
                           batch))
  if s.lumaflip:
    flip = _gated(draws, 'lumaflip', jnp.floor(draws['lumaflip'] * 2), s.lumaflip * p, 0.0)
    factors.append(identity - 2 * luma_projection * flip)  # Householder reflection of the luma
  if 'hue' in draws:
    theta = _gated(draws, 'hue', (draws['hue'] * 2 - 1) * np.pi * s.hue_max, s.hue * p, 0.0)
    factors.append(_rotation_about(luma, theta, batch))
  if 'saturation' in draws:
    gain = _gated(draws, 'saturation', jnp.exp2(draws['saturation'] * s.saturation_std),
                  s.saturation * p, 1.0)
    factors.append(luma_projection + (identity - luma_projection) * gain)
  matrix = jnp.broadcast_to(jnp.asarray(identity), (batch, 4, 4))
  for factor in factors:
    matrix = _matmul(jnp.broadcast_to(factor, (batch, 4, 4)), matrix)
  return matrix


def _rotation_about(axis, theta, batch):
  """Rodrigues' rotation by theta [N] about the unit axis[:3], homogeneous 4x4."""
  sin, cos = jnp.sin(theta), jnp.cos(theta)
  one_minus_cos = 1 - cos
  cross = [[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]]  # [axis]x
  rows = [[axis[i] * axis[j] * one_minus_cos + (cos if i == j else cross[i][j] * sin)
           for j in range(3)] + [0] for i in range(3)]
  return _matrix(rows + [[0, 0, 0, 1]], batch)


def _apply_color(images, matrix):
  channels = images.shape[-1]
  if channels == 3:
    rows = [functools.reduce(operator.add, [matrix[:, None, None, c, k] * images[..., k]
                                             for k in range(3)]) + matrix[:, None, None, c, 3]
            for c in range(3)]
    return jnp.stack(rows, -1)
  mean_row = matrix[:, :3, :].mean(axis=1)  # one channel: the average of the rgb rows
  gain = mean_row[:, 0] + mean_row[:, 1] + mean_row[:, 2]
  return images * gain[:, None, None, None] + mean_row[:, None, None, 3:]


def filter_bank():
  """[4, 43] float32: frequency bands of the sym2 wavelet, row 0 the low-pass (sums to 1), rows
  1-3 higher bands (sum to 0); the 4 rows sum to a unit impulse."""
  low = np.asarray(SYM2)
  high = low * (-1.0) ** np.arange(low.size)
  low2, high2 = np.convolve(low, low[::-1]) / 2, np.convolve(high, high[::-1]) / 2
  bank = np.eye(4, 1)
  for band in range(1, 4):
    spread = np.zeros((4, 2 * bank.shape[1] - 1))
    spread[:, ::2] = bank
    bank = np.stack([np.convolve(row, low2) for row in spread])
    start = (bank.shape[1] - high2.size) // 2
    bank[band, start:start + high2.size] += high2
  return bank.astype(np.float32)


def filter_gains(draws, p, settings: AugmentSettings, batch):
  """g [N, 4]: per band in turn, a gain 2^(z * std) where its gate passes, each time
  renormalised to the expected power of a 1/f spectrum."""
  s = settings
  p = jnp.asarray(p, jnp.float32)
  power = np.asarray(EXPECTED_BAND_POWER, np.float32)
  gains = jnp.ones((batch, len(power)), jnp.float32)
  for band, band_strength in enumerate(s.imgfilter_bands):
    name = f'imgfilter_band{band}'
    value = jnp.exp2(draws[name] * s.imgfilter_std)
    value = _gated(draws, name, value, s.imgfilter * p * band_strength, 1.0)
    step = jnp.ones_like(gains).at[:, band].set(value)
    norm = functools.reduce(operator.add, [power[k] * step[:, k] ** 2 for k in range(len(power))])
    gains = gains * (step / jnp.sqrt(norm)[:, None])
  return gains


def _filter_images(images, gains):
  """Each image correlated along x, then y, with its 43 taps gains @ filter_bank() after reflect
  padding by 21 (the reference's imgfilter)."""
  bank = filter_bank()
  taps = functools.reduce(operator.add, [gains[:, k, None] * bank[k] for k in range(len(bank))])
  padded = jnp.pad(images, ((0, 0), (FILTER_PAD,) * 2, (FILTER_PAD,) * 2, (0, 0)), mode='reflect')

  def along(x, axis, length):
    return functools.reduce(operator.add, [
        taps[:, k, None, None, None] * lax.slice_in_dim(x, k, k + length, axis=axis)
        for k in range(taps.shape[1])])

  return along(along(padded, 2, images.shape[2]), 1, images.shape[1])


def _cutout_mask(draws, p, settings, height, width):
  """[N, H, W, 1] float32, 0 inside each image's cutout rectangle (empty where its gate fails)."""
  size = _gated(draws, 'cutout', jnp.float32(settings.cutout_size), settings.cutout * p, 0.0)
  center = draws['cutout_center'][:, :, 0, 0, 0]  # [N, xy] fractions of the side
  half = (size[:, 0, 0, 0, 0] / 2)[:, None]
  cols = (np.arange(width, dtype=np.float32) + np.float32(0.5)) / np.float32(width)
  rows = (np.arange(height, dtype=np.float32) + np.float32(0.5)) / np.float32(height)
  keep_x = jnp.abs(cols[None, :] - center[:, 0:1]) >= half  # [N, W]
  keep_y = jnp.abs(rows[None, :] - center[:, 1:2]) >= half  # [N, H]
  return (keep_y[:, :, None] | keep_x[:, None, :]).astype(jnp.float32)[..., None]


# ------------------------------------------------------------------------------------------------
# The pipe.


def check_images(image_shape, settings: AugmentSettings):
  """UserError where the pipe cannot take images of image_shape [N, H, W, C]."""
  _, height, width, channels = image_shape
  if settings.color(channels) and channels not in (1, 3):
    raise UserError(f'the augment pipe\'s colour transforms take 1 or 3 channels, not {channels};'
                    ' disable brightness, contrast, lumaflip, hue and saturation.')
  if settings.imgfilter and min(height, width) <= FILTER_PAD:
    raise UserError(f'the augment pipe\'s image-space filter needs images of at least '
                    f'{FILTER_PAD + 1}x{FILTER_PAD + 1}, not {height}x{width}; set imgfilter=0.')


def augment(images, draws, p, settings: AugmentSettings):
  """NVIDIA's AugmentPipe on images [N, H, W, C] float32 with the draws of `draw_randomness` and
  the probability multiplier p (a float32 scalar, may be traced): geometric transforms, colour
  transforms, image-space filter, additive noise, cutout, each stage only where enabled."""
  check_images(images.shape, settings)
  batch, height, width, _ = images.shape
  p = jnp.asarray(p, jnp.float32)
  if settings.geometric():
    g_inv = geometric_matrix(draws, p, settings, images.shape)
    images = geometric_transform(images, g_inv, padding_margins(g_inv, height, width))
  if settings.color(images.shape[-1]):
    images = _apply_color(images, color_matrix(draws, p, settings, batch))
  if settings.imgfilter:
    images = _filter_images(images, filter_gains(draws, p, settings, batch))
  if settings.noise:
    sigma = _gated(draws, 'noise', jnp.abs(draws['noise']) * settings.noise_std,
                   settings.noise * p, 0.0)
    images = images + draws['noise_field'] * sigma
  if settings.cutout:
    images = images * _cutout_mask(draws, p, settings, height, width)
  return images


def augment_with_key(key, images, p, settings: AugmentSettings):
  """`augment` with draws from `key`: the same key gives the same images."""
  check_images(images.shape, settings)
  return augment(images, draw_randomness(key, images.shape, settings), p, settings)
