"""StyleGAN2's operations against NVIDIA's reference ops (../shared/fixtures/stylegan2_ops.npz).

The fixture is NCHW with PyTorch's [out, in, kh, kw] weights; the ops are NHWC with HWIO
kernels. Tolerance 1e-5 (the reference itself moves by up to 4e-6 with its thread count).
"""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from facegan_jax.models import stylegan2_ops as ops
from tests.helpers import reference_arrays

TOLERANCE = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(scope='module')
def fixture():
  return reference_arrays.load('stylegan2_ops.npz')


def nhwc(array):
  return jnp.asarray(np.asarray(array).transpose(0, 2, 3, 1))


def hwio(weight):
  return jnp.asarray(np.asarray(weight).transpose(2, 3, 1, 0))


def check(ours, fixture, name):
  np.testing.assert_allclose(np.asarray(ours), nhwc(fixture[f'out/{name}']), **TOLERANCE)


def test_the_fir_filter_is_the_references(fixture):
  np.testing.assert_array_equal(ops.setup_filter(), fixture['buf/filter_1331'])


def test_fir_upsampling_and_downsampling(fixture):
  x, fir = nhwc(fixture['in/x']), ops.setup_filter()
  check(ops.upsample2d(x, fir), fixture, 'upsample2d')
  check(ops.downsample2d(x, fir), fixture, 'downsample2d')


@pytest.mark.parametrize('name, weight, kwargs', [
    ('conv_up2_3x3_flipFalse', 'w3', dict(up=2, padding=1)),
    ('conv_down2_3x3_flipTrue', 'w3', dict(down=2, padding=1)),
    ('conv_down2_1x1_flipTrue', 'w1', dict(down=2)),
    ('conv_3x3_pad1', 'w3', dict(padding=1)),
])
def test_resampled_convolutions(fixture, name, weight, kwargs):
  ours = ops.conv2d_resample(nhwc(fixture['in/x']), hwio(fixture[f'in/{weight}']),
                             ops.setup_filter(), **kwargs)
  check(ours, fixture, name)


@pytest.mark.parametrize('lowering', ops.MODCONV_LOWERINGS)
@pytest.mark.parametrize('name, weight, noise, kwargs', [
    ('modconv_3x3_demod_noise', 'w3', 'noise', dict(padding=1)),
    ('modconv_up2_3x3_demod_noise', 'w3', 'noise16', dict(up=2, padding=1)),
    ('modconv_1x1_nodemod', 'w1', None, dict(demodulate=False)),
])
def test_modulated_convolution_in_both_lowerings(fixture, lowering, name, weight, noise,
                                                 kwargs):
  noise = None if noise is None else nhwc(fixture[f'in/{noise}'])
  ours = ops.modulated_conv2d(nhwc(fixture['in/x']), hwio(fixture[f'in/{weight}']),
                              jnp.asarray(fixture['in/styles']), ops.setup_filter(),
                              noise=noise, lowering=lowering, **kwargs)
  reference_lowering = {'grouped': 'fused', 'scaled': 'unfused'}[lowering]
  check(ours, fixture, f'{name}_{reference_lowering}')


def test_unknown_lowering_is_an_error(fixture):
  with pytest.raises(ValueError, match="lowering='direct'"):
    ops.modulated_conv2d(nhwc(fixture['in/x']), hwio(fixture['in/w1']),
                         jnp.asarray(fixture['in/styles']), ops.setup_filter(),
                         lowering='direct')


@pytest.mark.parametrize('name, kwargs', [
    ('bias_act_lrelu_default', dict(activation='lrelu')),
    ('bias_act_lrelu_gain_sqrt0.5_clamp1',
     dict(activation='lrelu', gain=math.sqrt(2) * math.sqrt(0.5), clamp=1.0)),
    ('bias_act_linear_clamp0.5', dict(clamp=0.5)),
])
def test_bias_act(fixture, name, kwargs):
  check(ops.bias_act(nhwc(fixture['in/x']), jnp.asarray(fixture['in/b']), **kwargs), fixture,
        name)


@pytest.mark.parametrize('name, group_size, num_channels', [
    ('mbstd_group4', 4, 1), ('mbstd_group2', 2, 1), ('mbstd_group2_nch2', 2, 2)])
def test_minibatch_stddev(fixture, name, group_size, num_channels):
  check(ops.minibatch_stddev(nhwc(fixture['in/x']), group_size, num_channels), fixture, name)


def test_normalize_2nd_moment(fixture):
  np.testing.assert_allclose(ops.normalize_2nd_moment(jnp.asarray(fixture['in/z'])),
                             fixture['out/normalize_2nd_moment'], **TOLERANCE)
