"""A transposed convolution defined as the exact transpose of the strided convolution it inverts.

`flax.linen.ConvTranspose` differentiates through an input-dilated convolution; on XLA's CPU
backend the weight gradient of that convolution runs at a few GFLOP/s. Here the transposed
convolution is written as `jax.linear_transpose` of a strided convolution and given a custom VJP:
its input gradient *is* that strided convolution and its weight gradient is the strided
convolution's ordinary weight gradient. Outputs equal PyTorch's `ConvTranspose2d(k, s, p)` with
the same kernel, and the backward pass lowers to the fast kernels on CPU, GPU and TPU.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

_DIMENSIONS = ('NHWC', 'HWIO', 'NHWC')


def strided_conv(big, kernel, stride, padding):
  """The convolution that a transposed convolution inverts.

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


def _output_shape(x, kernel, stride, padding):
  batch, height, width, _ = x.shape
  size = kernel.shape[0]
  grow = lambda n: (n - 1) * stride - 2 * padding + size
  return (batch, grow(height), grow(width), kernel.shape[2])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_transpose(x, kernel, stride, padding):
  """Transposed convolution: [B, H, W, C_in] -> [B, (H-1)s - 2p + k, ..., C_out].

  The same function as PyTorch's `ConvTranspose2d(C_in, C_out, k, stride=s, padding=p)` whose
  weight, permuted to [k, k, C_out, C_in], is `kernel`.
  """
  target = jax.ShapeDtypeStruct(_output_shape(x, kernel, stride, padding), x.dtype)
  (y,) = jax.linear_transpose(lambda big: strided_conv(big, kernel, stride, padding), target)(x)
  return y


def _conv_transpose_fwd(x, kernel, stride, padding):
  return conv_transpose(x, kernel, stride, padding), (x, kernel)


def _conv_transpose_bwd(stride, padding, residuals, grad_y):
  x, kernel = residuals
  grad_x = strided_conv(grad_y, kernel, stride, padding)
  _, kernel_vjp = jax.vjp(lambda k: strided_conv(grad_y, k, stride, padding), kernel)
  (grad_kernel,) = kernel_vjp(x)
  return grad_x, grad_kernel


conv_transpose.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


class ConvTranspose(nn.Module):
  """Flax layer for `conv_transpose`; kernel [k, k, features, C_in] float32, PyTorch's padding
  rule; computes in `dtype`."""
  features: int
  kernel_size: int = 4
  stride: int = 2
  padding: int = 1
  use_bias: bool = False
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    shape = (self.kernel_size, self.kernel_size, self.features, x.shape[-1])
    kernel = self.param('kernel', self.kernel_init, shape)
    y = conv_transpose(x.astype(self.dtype), kernel.astype(self.dtype), self.stride,
                       self.padding)
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros, (self.features,)).astype(self.dtype)
    return y
