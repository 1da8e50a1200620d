"""The custom transposed convolution against the DCGAN (PyTorch) definition and autodiff."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from facegan_jax.models import layers


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


# (input shape, C_out, kernel size, stride, padding, the lowering conv_transpose takes)
GEOMETRIES = [
    ((2, 5, 5, 3), 4, 4, 2, 1, layers.strided_conv),  # DCGAN's, small: input-dilated conv
    ((2, 8, 8, 3), 8, 4, 2, 1, layers.space_to_depth_conv),  # DCGAN's, 8x8 and up
    ((1, 3, 4, 2), 3, 3, 2, 0, layers.strided_conv),
    ((1, 9, 8, 2), 8, 3, 2, 0, layers.space_to_depth_conv),  # kernel not a multiple of s
    ((1, 8, 10, 2), 8, 6, 3, 2, layers.space_to_depth_conv),
]


@pytest.mark.parametrize('shape, c_out, size, stride, padding, lowering', GEOMETRIES)
def test_matches_pytorch_definition_with_either_lowering(shape, c_out, size, stride, padding,
                                                         lowering):
  x, kernel = random_inputs(shape=shape, c_out=c_out, size=size)
  assert layers.transpose_lowering(x, kernel) is lowering
  y = layers.conv_transpose(x, kernel, stride, padding)
  expected = reference_conv_transpose(np.asarray(x, np.float64), np.asarray(kernel, np.float64),
                                      stride, padding)
  assert y.shape == expected.shape
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize('platform', ['gpu', 'tpu'])
def test_accelerators_take_the_direct_lowering(platform):
  x, kernel = random_inputs(shape=(2, 16, 16, 8), c_out=8, size=4)
  assert layers.transpose_lowering(x, kernel, 'cpu') is layers.space_to_depth_conv
  assert layers.transpose_lowering(x, kernel, platform) is layers.strided_conv


@pytest.mark.parametrize('shape, c_out, size, stride, padding, lowering', GEOMETRIES)
def test_space_to_depth_conv_is_the_strided_conv(shape, c_out, size, stride, padding, lowering):
  del lowering
  x, kernel = random_inputs(seed=1, shape=shape, c_out=c_out, size=size)
  big = layers.conv_transpose(x, kernel, stride, padding)  # any input of the right shape
  np.testing.assert_allclose(layers.space_to_depth_conv(big, kernel, stride, padding),
                             layers.strided_conv(big, kernel, stride, padding),
                             rtol=1e-5, atol=1e-4)


def assert_same_gradients(ours, reference, *args):
  output = reference(*args)
  np.testing.assert_allclose(ours(*args), output, rtol=1e-5, atol=1e-4)
  cotangent = jax.random.normal(jax.random.key(3), output.shape)
  loss = lambda fn: lambda *a: jnp.sum(fn(*a) * cotangent)
  for a, b in zip(jax.grad(loss(ours), argnums=(0, 1))(*args),
                  jax.grad(loss(reference), argnums=(0, 1))(*args), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize('shape, c_out', [((2, 5, 5, 3), 4), ((2, 8, 8, 3), 8)])
def test_transposed_conv_gradients_equal_autodiff_reference(shape, c_out):
  x, kernel = random_inputs(seed=2, shape=shape, c_out=c_out)
  assert_same_gradients(lambda x, k: layers.conv_transpose(x, k, 2, 1),
                        lambda x, k: autodiff_conv_transpose(x, k, 2, 1), x, kernel)


@pytest.mark.parametrize('shape, c_in', [((2, 10, 10, 4), 3), ((2, 16, 16, 8), 3)])
def test_strided_conv_gradients_equal_autodiff_reference(shape, c_in):
  big, kernel = random_inputs(seed=4, shape=shape, c_out=c_in)
  kernel = kernel.swapaxes(2, 3)  # [k, k, C_big, C_small]: HWIO of the discriminator's conv
  assert_same_gradients(lambda x, k: layers.conv(x, k, 2, 1),
                        lambda x, k: layers.strided_conv(x, k, 2, 1), big, kernel)


def test_flax_layer_shapes_and_bias():
  layer = layers.ConvTranspose(features=6, use_bias=True)
  variables = layer.init(jax.random.key(0), jnp.zeros((1, 4, 4, 3)))
  assert variables['params']['kernel'].shape == (4, 4, 6, 3)
  assert variables['params']['bias'].shape == (6,)
  assert layer.apply(variables, jnp.ones((2, 4, 4, 3))).shape == (2, 8, 8, 6)


def test_conv_layer_has_the_variables_of_flax_conv():
  x = jnp.ones((2, 8, 8, 3))
  ours = layers.Conv(features=6, use_bias=True).init(jax.random.key(0), x)
  flax_conv = nn.Conv(6, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)))
  theirs = flax_conv.init(jax.random.key(0), x)
  assert jax.tree_util.tree_map(jnp.shape, ours) == jax.tree_util.tree_map(jnp.shape, theirs)
  np.testing.assert_allclose(layers.Conv(features=6, use_bias=True).apply(theirs, x),
                             flax_conv.apply(theirs, x), rtol=1e-5, atol=1e-5)
