"""Conditional BatchNorm and the projection discriminator (Miyato & Koyama 2018) of DCGAN and
SNGAN, against values computed by hand from the networks' own parameters and features."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from configs import lfw_demo
from facegan_jax import models
from facegan_jax.models import conditional
from facegan_jax.models import dcgan
from facegan_jax.models import sngan
from facegan_jax.system.errors import UserError


def test_label_affine_scales_and_shifts_each_example_by_its_labels():
  x = jax.random.normal(jax.random.key(0), (3, 2, 2, 4))
  c = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # class 0, class 1, both attributes
  w_scale = jnp.array([[0.1, 0.2, 0.3, 0.4], [-0.5, 0.0, 0.5, 1.0]])
  w_offset = jnp.array([[1.0, 2.0, 3.0, 4.0], [0.0, -1.0, 0.0, 1.0]])
  out = conditional.LabelAffine().apply({'params': {'scale': w_scale, 'offset': w_offset}}, x, c)
  x = np.asarray(x)
  expected = np.stack([x[0] * (1 + np.float32([0.1, 0.2, 0.3, 0.4])) + [1, 2, 3, 4],
                       x[1] * (1 + np.float32([-0.5, 0, 0.5, 1])) + [0, -1, 0, 1],
                       x[2] * (1 + np.float32([-0.4, 0.2, 0.8, 1.4])) + [1, 1, 3, 5]])
  np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_dcgan_conditional_batchnorm_is_batchnorm_then_the_label_affine():
  generator = dcgan.DCGANGenerator(16, 1, 2, 'batch', c_dim=3)
  z, c = jax.random.normal(jax.random.key(1), (4, 5)), jnp.eye(3)[jnp.array([0, 2, 1, 2])]
  variables = generator.init(jax.random.key(2), z, train=False, c=c)
  params = variables['params']
  assert not any(name.startswith('BatchNorm') for name in params)  # no affine of its own
  affine = params['LabelAffine_0']
  assert affine['scale'].shape == (3, 4) and np.all(np.asarray(affine['offset']) == 0)
  # The first layer's output through BatchNorm (batch statistics) and the affine, by hand.
  _, state = generator.apply(variables, z, train=True, c=c, mutable=['batch_stats'],
                             capture_intermediates=True)
  dense = np.asarray(z @ params['Dense_0']['kernel']).reshape(4, 4, 4, 4)
  mean, var = dense.mean((0, 1, 2)), dense.var((0, 1, 2))
  by_hand = ((dense - mean) / np.sqrt(var + 1e-5) * (1 + np.asarray(c @ affine['scale']))[
      :, None, None] + np.asarray(c @ affine['offset'])[:, None, None])
  captured = state['intermediates']['LabelAffine_0']['__call__'][0]
  np.testing.assert_allclose(captured, by_hand, rtol=1e-4, atol=1e-5)


def dcgan_discriminator_pair(norm):
  conditional_d = dcgan.DCGANDiscriminator(16, 2, norm, c_dim=3)
  images = jax.random.uniform(jax.random.key(3), (4, 16, 16, 1), minval=-1, maxval=1)
  c = jnp.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1]])
  variables = conditional_d.init(jax.random.key(4), images, train=False, c=c)
  # An embedding of order 1 (its N(0, 0.02) start would make the term as small as round-off).
  params = dict(variables['params'], projection={'kernel': jax.random.normal(
      jax.random.key(5), variables['params']['projection']['kernel'].shape)})
  variables = dict(variables, params=params)
  return conditional_d, dcgan.DCGANDiscriminator(16, 2, norm), images, c, variables


@pytest.mark.parametrize('norm', ['none', 'batch'])
def test_dcgan_projection_adds_the_features_dot_the_labels_embedding(norm):
  conditional_d, plain_d, images, c, variables = dcgan_discriminator_pair(norm)
  logits, state = conditional_d.apply(variables, images, train=False, c=c,
                                      capture_intermediates=True, mutable=['intermediates'])
  # phi(x): the flattened features that D's last linear layer reads (its input).
  last_conv = state['intermediates'][f'Conv_{1}']['__call__'][0]
  phi = np.asarray(jax.nn.leaky_relu(
      last_conv if norm == 'none' else state['intermediates']['BatchNorm_0']['__call__'][0],
      0.2)).reshape(4, -1)
  embedding = np.asarray(variables['params']['projection']['kernel'])  # V [c_dim, features]
  projection = np.sum(phi * (np.asarray(c) @ embedding), axis=1)  # <phi(x), c V>, by hand
  plain_variables = dict(variables, params={k: v for k, v in variables['params'].items()
                                            if k != 'projection'})
  unconditional = plain_d.apply(plain_variables, images, train=False)  # psi(phi(x))
  np.testing.assert_allclose(logits, unconditional + projection, rtol=1e-5, atol=1e-6)
  assert np.abs(projection).min() > 1e-3  # the term is there, far above the tolerance


def test_sngan_projection_and_conditional_batchnorm_by_hand():
  generator = sngan.SNGANGenerator(32, 3, 16, c_dim=2)
  discriminator = sngan.SNGANDiscriminator(32, 16, c_dim=2)
  z, c = jax.random.normal(jax.random.key(5), (3, 8)), jnp.array([[1.0, 0], [0, 1], [1, 1]])
  g_vars = generator.init(jax.random.key(6), z, train=False, c=c)
  flat = traverse_util.flatten_dict(g_vars['params'], sep='/')
  assert 'block2/b1/label_affine/scale' in flat and 'block2/b1/scale' not in flat
  images = generator.apply(g_vars, z, train=False, c=c)
  d_vars = discriminator.init(jax.random.key(7), images, train=False, c=c)
  logits, state = discriminator.apply(d_vars, images, train=False, c=c,
                                      capture_intermediates=True, mutable=['intermediates'])
  last_block = state['intermediates']['block4']['__call__'][0]
  phi = np.asarray(jnp.sum(jax.nn.relu(last_block), axis=(1, 2)))
  # l_y: the embedding V [c_dim, features] divided by its spectral norm (u . V v).
  kernel = np.asarray(d_vars['params']['l_y']['kernel'])
  u, v = (np.asarray(d_vars['batch_stats']['l_y'][name]) for name in ('u', 'v'))
  embedding = kernel / np.dot(u, v @ kernel)
  head = d_vars['params']['l5']
  head_kernel = np.asarray(head['kernel']) / np.dot(
      np.asarray(d_vars['batch_stats']['l5']['u']),
      np.asarray(d_vars['batch_stats']['l5']['v']) @ np.asarray(head['kernel']))
  by_hand = (phi @ head_kernel)[:, 0] + np.asarray(head['bias'])[0] + np.sum(
      phi * (np.asarray(c) @ embedding), axis=1)
  np.testing.assert_allclose(logits, by_hand, rtol=1e-5, atol=1e-5)
  # Other labels, other images: the generator reads them.
  assert not np.allclose(images, generator.apply(g_vars, z, train=False, c=c[::-1]))


def test_unconditional_networks_keep_their_parameters_and_labels_are_required():
  for module in (dcgan.DCGANGenerator(16, 1, 2, 'batch'), sngan.SNGANGenerator(32, 1, 16)):
    names = traverse_util.flatten_dict(module.init(jax.random.key(0), jnp.zeros((2, 4)),
                                                   train=False)['params'], sep='/')
    assert not any('label' in name or 'projection' in name for name in names)
  with pytest.raises(ValueError, match=r'pass labels c of shape \[B, 3\]'):
    dcgan.DCGANGenerator(16, 1, 2, 'batch', c_dim=3).init(jax.random.key(0), jnp.zeros((2, 4)),
                                                          train=False)
  config = lfw_demo.get_config('test')
  config.model.update(name='mlp', hidden=8, c_dim=2)
  with pytest.raises(UserError, match="config.model.c_dim=2: mlp is not conditional here"):
    models.check_model_config(config.model)
