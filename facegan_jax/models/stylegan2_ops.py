"""The operations of StyleGAN2 (Karras et al., 2020) in NHWC, equal to NVIDIA's reference ops.

FIR resampling (`upfirdn2d`), convolutions with FIR up/down-sampling (`conv2d_resample`), the
modulated convolution in its two lowerings, bias + activation with gain and clamp, the
minibatch standard deviation and the 2nd-moment normalisation of latents. All images and
feature maps are [N, H, W, C]; convolution kernels are [kh, kw, C_in, C_out] (HWIO) and
FIR filters [fh, fw]. Everything computes in the dtype of its inputs.
"""

import functools
import math

import jax.numpy as jnp
import numpy as np
from jax import lax

from facegan_jax.models import layers

_DIMENSIONS = ('NHWC', 'HWIO', 'NHWC')
LRELU_SLOPE = 0.2
DEMODULATION_EPSILON = 1e-8
MODCONV_LOWERINGS = ('grouped', 'scaled')


def setup_filter(taps=(1, 3, 3, 1)) -> np.ndarray:
  """The separable FIR filter outer(taps, taps) normalised to sum 1: [len, len] float32."""
  taps = np.asarray(taps, np.float32)
  kernel = np.outer(taps, taps)
  return kernel / kernel.sum()


def separable_taps(fir) -> np.ndarray:
  """The 1D taps t with fir = outer(t, t), for a separable filter [n, n] that sums to 1."""
  fir = np.asarray(fir, np.float64)
  taps = fir.sum(axis=1)
  if not np.allclose(np.outer(taps, fir.sum(axis=0)), fir) or not np.allclose(taps,
                                                                             fir.sum(axis=0)):
    raise ValueError('the FIR filter must be symmetric-separable and sum to 1.')
  return taps


def _fir_along(x, taps, axis, down):
  """The true convolution of x with `taps` along `axis` ('valid' part), every `down`-th output,
  as a sum of shifted slices: cheap elementwise work on every backend, unlike a depthwise
  convolution's gradient on XLA:CPU."""
  count = (x.shape[axis] - len(taps)) // down + 1
  span = (count - 1) * down + 1
  terms = [float(tap) * lax.slice_in_dim(x, offset, offset + span, down, axis)
           for offset, tap in enumerate(taps[::-1])]
  return functools.reduce(lambda a, b: a + b, terms)


def upfirdn2d(x, fir, up=1, down=1, padding=(0, 0), gain=1.0):
  """Zero-insertion upsampling by `up`, padding, FIR convolution, then every `down`-th pixel.

  Args:
    x: [N, H, W, C]. fir: [n, n] numpy, separable and summing to 1 (e.g. `setup_filter()`),
      applied as a true convolution, times `gain`.
    up, down: integer factors. padding: (before, after) on both spatial axes, after the zero
      insertion; negative values crop.

  Returns:
    [N, (H*up + before + after - n) // down + 1, ..., C].
  """
  before, after = padding
  spatial = (before, after + up - 1, up - 1)
  x = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), spatial, spatial, (0, 0, 0)))
  taps = separable_taps(fir)
  x = _fir_along(_fir_along(x, taps, 1, down), taps, 2, down)
  return x if gain == 1 else x * jnp.asarray(gain, x.dtype)


def upsample2d(x, fir):
  """[N, H, W, C] -> [N, 2H, 2W, C]: zero insertion and the FIR filter, gain 4 (reference's)."""
  size = fir.shape[0]
  return upfirdn2d(x, fir, up=2, padding=((size + 1) // 2, (size - 2) // 2), gain=4.0)


def downsample2d(x, fir):
  """[N, H, W, C] -> [N, H/2, W/2, C]: the FIR filter, then every second pixel."""
  size = fir.shape[0]
  return upfirdn2d(x, fir, down=2, padding=((size - 1) // 2, (size - 2) // 2))


def _conv(x, kernel, stride=1, padding=0, groups=1):
  pads = ((padding, padding), (padding, padding))
  return lax.conv_general_dilated(x, kernel, (stride, stride), pads,
                                  dimension_numbers=_DIMENSIONS, feature_group_count=groups)


def conv2d_resample(x, kernel, fir, up=1, down=1, padding=0, groups=1):
  """A 2D convolution with FIR upsampling before or downsampling after, as the reference.

  Args:
    x: [N, H, W, groups * C_in]. kernel: [k, k, C_in, groups * C_out]. fir: [fh, fw].
    up, down: 1 or 2, not both 2. padding: symmetric, of the convolution at the resolution it
      runs at.

  Returns:
    [N, H * up / down + 2 * padding - k + 1 (for up = down = 1), ..., groups * C_out].

  With `up` = 2 the kernel is applied as a true (flipped) convolution of the zero-inserted input
  (the reference's `flip_weight=False`, what its synthesis layers use); otherwise as a
  cross-correlation (`flip_weight=True`, as PyTorch's `conv2d`).
  """
  size, fir_size = kernel.shape[0], fir.shape[0]
  if up > 1:
    # A transposed convolution (2H + k - 2 pixels), then the FIR filter crops to 2H.
    before = padding + (fir_size + up - 1) // 2 - (size - 1)
    after = padding + (fir_size - up) // 2 - (size - up)
    crop = max(min(-before, -after), 0)
    if groups == 1:
      # The project's transposed convolution: its lowering and gradients are the fast ones.
      x = layers.conv_transpose(x, kernel.swapaxes(2, 3), up, crop)
    else:
      pad = size - 1 - crop
      x = lax.conv_general_dilated(x, jnp.flip(kernel, (0, 1)), (1, 1), ((pad, pad), (pad, pad)),
                                   lhs_dilation=(up, up), dimension_numbers=_DIMENSIONS,
                                   feature_group_count=groups)
    return upfirdn2d(x, fir, padding=(before + crop, after + crop), gain=up * up)
  if down > 1:
    before = padding + (fir_size - down + 1) // 2
    after = padding + (fir_size - down) // 2
    if size == 1:
      return _conv(upfirdn2d(x, fir, down=down, padding=(before, after)), kernel, groups=groups)
    return _conv(upfirdn2d(x, fir, padding=(before, after)), kernel, stride=down, groups=groups)
  return _conv(x, kernel, padding=padding, groups=groups)


def modulated_conv2d(x, weight, styles, fir, noise=None, up=1, padding=0, demodulate=True,
                     lowering='grouped'):
  """StyleGAN2's modulated (and demodulated) convolution, noise added before any bias.

  Args:
    x: [N, H, W, C_in]. weight: [k, k, C_in, C_out]. styles: [N, C_in] per-sample input scales.
    fir: [fh, fw] for `up` = 2. noise: None or broadcastable to the output [N, H', W', C_out].
    demodulate: divide each sample's output channel by the L2 norm of its scaled weights.
    lowering: 'grouped' (per-sample weights, one convolution with N groups) or 'scaled' (the
      shared weight, activations scaled by the styles before and by the demodulation
      coefficients after): the same function up to float round-off.

  Returns:
    [N, H', W', C_out].
  """
  batch, height, width, c_in = x.shape
  size, c_out = weight.shape[0], weight.shape[-1]
  scaled_weights = weight[None] * styles[:, None, None, :, None]  # [N, k, k, C_in, C_out]
  if demodulate:
    coefficients = lax.rsqrt(jnp.sum(jnp.square(scaled_weights), axis=(1, 2, 3))
                             + DEMODULATION_EPSILON)  # [N, C_out]
  if lowering == 'scaled':
    y = conv2d_resample(x * styles[:, None, None, :].astype(x.dtype), weight.astype(x.dtype),
                        fir, up=up, padding=padding)
    if demodulate:
      y = y * coefficients[:, None, None, :].astype(y.dtype)
    return y if noise is None else y + noise
  if lowering != 'grouped':
    raise ValueError(f'lowering={lowering!r}; use one of {MODCONV_LOWERINGS}.')
  if demodulate:
    scaled_weights = scaled_weights * coefficients[:, None, None, None, :]
  kernel = scaled_weights.transpose(1, 2, 3, 0, 4).reshape(size, size, c_in, batch * c_out)
  x = x.transpose(1, 2, 0, 3).reshape(1, height, width, batch * c_in)
  y = conv2d_resample(x, kernel.astype(x.dtype), fir, up=up, padding=padding, groups=batch)
  y = y.reshape(y.shape[1], y.shape[2], batch, c_out).transpose(2, 0, 1, 3)
  return y if noise is None else y + noise


ACTIVATIONS = {
    'linear': (lambda x: x, 1.0),
    'lrelu': (lambda x: jnp.where(x >= 0, x, x * LRELU_SLOPE), math.sqrt(2.0)),
}


def bias_act(x, bias=None, activation='linear', gain=None, clamp=None):
  """act(x + bias) * gain, then clipped to [-clamp, clamp] when `clamp` is not None.

  `bias` ([C]) is added along the last axis; `gain` defaults to the activation's own (sqrt 2 for
  'lrelu', 1 for 'linear').
  """
  function, default_gain = ACTIVATIONS[activation]
  if bias is not None:
    x = x + bias.astype(x.dtype)
  x = function(x)
  gain = default_gain if gain is None else gain
  if gain != 1:
    x = x * gain
  if clamp is not None:
    x = jnp.clip(x, -clamp, clamp)
  return x


def minibatch_stddev(x, group_size, num_channels=1):
  """Appends `num_channels` feature maps of the standard deviation over groups of samples.

  x: [N, H, W, C] -> [N, H, W, C + num_channels]. Sample n is in the group of the samples
  n mod (N / G), G = min(group_size, N), as the reference's reshape; N must be divisible by G.
  """
  batch, height, width, channels = x.shape
  group = min(group_size, batch)
  y = x.astype(jnp.float32).reshape(group, batch // group, height, width, num_channels,
                                    channels // num_channels)
  y = y - y.mean(axis=0)
  y = jnp.sqrt(jnp.square(y).mean(axis=0) + 1e-8)
  y = y.mean(axis=(1, 2, 4))  # [N / G, num_channels]
  y = jnp.tile(y, (group, 1))[:, None, None, :]
  y = jnp.broadcast_to(y, (batch, height, width, num_channels)).astype(x.dtype)
  return jnp.concatenate([x, y], axis=-1)


def normalize_2nd_moment(z, epsilon=1e-8):
  """z [N, D] scaled so that each row's mean square is 1."""
  return z * lax.rsqrt(jnp.mean(jnp.square(z), axis=1, keepdims=True) + epsilon)
