"""The custom transposed convolution against the DCGAN (PyTorch) definition and autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from facegan_jax import layers


def reference_conv_transpose(x, kernel, stride, padding):
  """PyTorch ConvTranspose2d by definition: each input pixel scatters kernel * value."""
  batch, height, width, _ = x.shape
  size, _, c_out, _ = kernel.shape
  full = np.zeros((batch, (height - 1) * stride + size, (width - 1) * stride + size, c_out))
  for i in range(height):
    for j in range(width):
      patch = np.einsum('bc,hwoc->bhwo', x[:, i, j], kernel)
      full[:, i * stride:i * stride + size, j * stride:j * stride + size] += patch
  end_h, end_w = full.shape[1] - padding, full.shape[2] - padding
  return full[:, padding:end_h, padding:end_w]


def autodiff_conv_transpose(x, kernel, stride, padding):
  """The same function through lax.conv_transpose, differentiated by JAX itself."""
  pad = kernel.shape[0] - 1 - padding
  return lax.conv_transpose(x, kernel[::-1, ::-1].swapaxes(2, 3), (stride, stride),
                            ((pad, pad), (pad, pad)), dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def random_inputs(seed=0, shape=(2, 5, 5, 3), c_out=4, size=4):
  kx, kk = jax.random.split(jax.random.key(seed))
  x = jax.random.normal(kx, shape)
  kernel = jax.random.normal(kk, (size, size, c_out, shape[-1]))
  return x, kernel


def test_matches_pytorch_definition():
  x, kernel = random_inputs()
  y = layers.conv_transpose(x, kernel, 2, 1)
  assert y.shape == (2, 10, 10, 4)
  expected = reference_conv_transpose(np.asarray(x, np.float64), np.asarray(kernel, np.float64),
                                      2, 1)
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_other_geometry_matches_definition():
  x, kernel = random_inputs(seed=1, shape=(1, 3, 4, 2), c_out=3, size=3)
  y = layers.conv_transpose(x, kernel, 2, 0)
  expected = reference_conv_transpose(np.asarray(x, np.float64), np.asarray(kernel, np.float64),
                                      2, 0)
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_gradients_equal_autodiff_reference():
  x, kernel = random_inputs(seed=2)
  np.testing.assert_allclose(layers.conv_transpose(x, kernel, 2, 1),
                             autodiff_conv_transpose(x, kernel, 2, 1), rtol=1e-5, atol=1e-5)
  cotangent = jax.random.normal(jax.random.key(3), (2, 10, 10, 4))

  def loss(fn):
    return lambda x, k: jnp.sum(fn(x, k, 2, 1) * cotangent)

  ours = jax.grad(loss(layers.conv_transpose), argnums=(0, 1))(x, kernel)
  theirs = jax.grad(loss(autodiff_conv_transpose), argnums=(0, 1))(x, kernel)
  for a, b in zip(ours, theirs):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_flax_layer_shapes_and_bias():
  layer = layers.ConvTranspose(features=6, use_bias=True)
  variables = layer.init(jax.random.key(0), jnp.zeros((1, 4, 4, 3)))
  assert variables['params']['kernel'].shape == (4, 4, 6, 3)
  assert variables['params']['bias'].shape == (6,)
  assert layer.apply(variables, jnp.ones((2, 4, 4, 3))).shape == (2, 8, 8, 6)
