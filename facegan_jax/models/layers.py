"""A strided convolution and its exact transpose, each with a VJP made of the other.

`flax.linen.ConvTranspose` differentiates through an input-dilated convolution; on XLA's CPU
backend the weight gradient of that convolution runs at a few GFLOP/s. Here the transposed
convolution is the `jax.linear_transpose` of the strided convolution it inverts, with a custom
VJP: its input gradient *is* that strided convolution and its weight gradient is the strided
convolution's ordinary weight gradient. The strided convolution (the discriminator's) gets the
mirror VJP, so that its input gradient is this transposed convolution too.

The transposed convolution has two exact lowerings. The direct one is an input-dilated
convolution, which XLA:CPU runs at a fraction of its usual speed once the output is 16x16 or
larger. The space-to-depth one views the strided convolution as a stride-1 convolution of the
input's `stride x stride` blocks (no zero taps) and transposes that: a stride-1 convolution, then
depth-to-space; it computes a one-block border that is cropped, (H+1)(W+1)/HW of the work. On
the CPU each layer takes the faster one (measured per DCGAN layer in benchmarks/README.md); on
GPUs and TPUs every layer takes the direct one, which XLA hands to cuDNN's backward-data
convolution and to the TPU's own convolution unit.

Outputs equal PyTorch's `Conv2d` / `ConvTranspose2d(k, s, p)` with the same kernel.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

_DIMENSIONS = ('NHWC', 'HWIO', 'NHWC')
# The space-to-depth lowering pays when the border it crops is small (input over 4x4) and its
# stride-1 convolution has stride^2 x C_out >= 32 output channels to vectorise over.
_SPACE_TO_DEPTH_MIN_SIZE = 8
_SPACE_TO_DEPTH_MIN_FEATURES = 8


def strided_conv(big, kernel, stride, padding):
  """The convolution that a transposed convolution inverts (PyTorch's `Conv2d`, no bias).

  Args:
    big: [B, H', W', C_out] the transposed convolution's output space.
    kernel: [k, k, C_out, C_in].
    stride: int. padding: int, symmetric on both spatial axes.

  Returns:
    [B, H, W, C_in] with H = (H' + 2 * padding - k) // stride + 1.
  """
  pads = ((padding, padding), (padding, padding))
  return lax.conv_general_dilated(big, kernel, (stride, stride), pads,
                                  dimension_numbers=_DIMENSIONS)


def _space_to_depth(x, block):
  """[B, H*block, W*block, C] -> [B, H, W, block*block*C], channels ordered (row, col, C)."""
  batch, height, width, channels = x.shape
  x = x.reshape(batch, height // block, block, width // block, block, channels)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(batch, height // block, width // block, -1)


def space_to_depth_conv(big, kernel, stride, padding):
  """`strided_conv` as a stride-1 convolution of `stride x stride` blocks: the same function.

  The kernel is zero-padded to a multiple of the stride and the padded input cropped or extended
  to whole blocks, so that block (i, j) of the output's window is block (i, j) of the kernel.
  """
  size, stride_blocks = kernel.shape[0], -(-kernel.shape[0] // stride)
  kernel = jnp.pad(kernel, ((0, stride_blocks * stride - size),) * 2 + ((0, 0),) * 2)
  height, width = big.shape[1:3]
  out_height = (height + 2 * padding - size) // stride + 1
  out_width = (width + 2 * padding - size) // stride + 1
  span = lambda n: stride * (n + stride_blocks - 1)
  pads = ((0, 0, 0), (padding, span(out_height) - height - padding, 0),
          (padding, span(out_width) - width - padding, 0), (0, 0, 0))
  blocks = _space_to_depth(lax.pad(big, jnp.zeros((), big.dtype), pads), stride)
  c_out, c_in = kernel.shape[2:]
  kernel = kernel.reshape(stride_blocks, stride, stride_blocks, stride, c_out, c_in)
  kernel = kernel.transpose(0, 2, 1, 3, 4, 5).reshape(stride_blocks, stride_blocks, -1, c_in)
  return lax.conv_general_dilated(blocks, kernel, (1, 1), 'VALID', dimension_numbers=_DIMENSIONS)


def _output_shape(x, kernel, stride, padding):
  batch, height, width, _ = x.shape
  size = kernel.shape[0]
  grow = lambda n: (n - 1) * stride - 2 * padding + size
  return (batch, grow(height), grow(width), kernel.shape[2])


def transpose_lowering(x, kernel, platform=None):
  """The strided convolution whose transpose lowers faster for this input and kernel on
  `platform` (default: JAX's default backend, 'cpu', 'gpu' or 'tpu')."""
  platform = platform or jax.default_backend()
  if (platform == 'cpu' and min(x.shape[1:3]) >= _SPACE_TO_DEPTH_MIN_SIZE
      and kernel.shape[2] >= _SPACE_TO_DEPTH_MIN_FEATURES):
    return space_to_depth_conv
  return strided_conv


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_transpose(x, kernel, stride, padding):
  """Transposed convolution: [B, H, W, C_in] -> [B, (H-1)s - 2p + k, ..., C_out].

  The same function as PyTorch's `ConvTranspose2d(C_in, C_out, k, stride=s, padding=p)` whose
  weight, permuted to [k, k, C_out, C_in], is `kernel`.
  """
  forward = transpose_lowering(x, kernel)
  target = jax.ShapeDtypeStruct(_output_shape(x, kernel, stride, padding), x.dtype)
  (y,) = jax.linear_transpose(lambda big: forward(big, kernel, stride, padding), target)(x)
  return y


def _kernel_gradient(big, grad_small, kernel, stride, padding):
  _, kernel_vjp = jax.vjp(lambda k: strided_conv(big, k, stride, padding), kernel)
  (grad_kernel,) = kernel_vjp(grad_small)
  return grad_kernel


def _forward_saving_inputs(op):
  """The forward rule of a custom VJP whose backward pass needs only (x, kernel)."""
  def forward(x, kernel, stride, padding):
    return op(x, kernel, stride, padding), (x, kernel)
  return forward


def _conv_transpose_bwd(stride, padding, residuals, grad_y):
  x, kernel = residuals
  return (strided_conv(grad_y, kernel, stride, padding),
          _kernel_gradient(grad_y, x, kernel, stride, padding))


conv_transpose.defvjp(_forward_saving_inputs(conv_transpose), _conv_transpose_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv(x, kernel, stride, padding):
  """`strided_conv` ([B, H, W, C_in], kernel [k, k, C_in, C_out]) whose input gradient is
  `conv_transpose`."""
  return strided_conv(x, kernel, stride, padding)


def _conv_bwd(stride, padding, residuals, grad_y):
  x, kernel = residuals
  return (conv_transpose(grad_y, kernel, stride, padding),
          _kernel_gradient(x, grad_y, kernel, stride, padding))


conv.defvjp(_forward_saving_inputs(conv), _conv_bwd)


class _ConvLayer(nn.Module):
  """A Flax layer for `conv` or `conv_transpose` (float32 kernel and bias, computes in dtype)."""
  features: int
  kernel_size: int = 4
  stride: int = 2
  padding: int = 1
  use_bias: bool = False
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  dtype: Any = jnp.float32
  transposed = False  # class constant of the subclasses, not a field

  @nn.compact
  def __call__(self, x):
    size, channels = self.kernel_size, x.shape[-1]
    shape = ((size, size, self.features, channels) if self.transposed
             else (size, size, channels, self.features))
    kernel = self.param('kernel', self.kernel_init, shape)
    op = conv_transpose if self.transposed else conv
    y = op(x.astype(self.dtype), kernel.astype(self.dtype), self.stride, self.padding)
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros, (self.features,)).astype(self.dtype)
    return y


class Conv(_ConvLayer):
  """`conv`: kernel [k, k, C_in, features] and bias as `flax.linen.Conv`'s, PyTorch's symmetric
  padding."""


class ConvTranspose(_ConvLayer):
  """`conv_transpose`: kernel [k, k, features, C_in], PyTorch's padding rule."""
  transposed = True
