"""SNGAN equals Mimicry's networks with the same weights: the shared fixture's numbers, and
Mimicry run beside ours on this CPU at more sizes.

The call sequence is the shared fixture's (/work/shared/fixtures/README.md, section A; Mimicry
rebuilds those weights bit-exactly): G in training mode (batch statistics, running statistics
after), D in training mode on real then on fake images (one power iteration each, u and v
after), both in inference mode, hinge losses, input gradients and R1. Tolerance: 1e-5 absolute
and relative on outputs and statistics, 2e-5 on gradients and after two power iterations (PyTorch
itself only reproduces these to ~4e-6 across thread counts).
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facegan_jax import models
from facegan_jax.models import sngan
from facegan_jax.system.errors import UserError
from facegan_jax.training import losses
from tests.helpers import mimicry_reference
from tests.helpers import reference_arrays

LATENT_DIM = 128
# (resolution, ngf, ndf, batch): small widths that keep every block of the layout.
SMALL = [(32, 16, 16, 4), (64, 64, 64, 8), (128, 32, 32, 2)]


def model_config(resolution, g_width, d_width, channels=3):
  return ml_collections.ConfigDict(dict(name='sngan', resolution=resolution, channels=channels,
                                        latent_dim=LATENT_DIM, g_width=g_width,
                                        d_width=d_width))


def close(ours, reference, tolerance=1e-5):
  """Arrays or trees of arrays (torch tensors too) equal to `tolerance`, absolute and relative."""
  ours, reference = jax.tree.map(np.asarray, (ours, reference))
  assert jax.tree.structure(ours) == jax.tree.structure(reference)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance),
               ours, reference)


def test_bilinear_upsampling_is_pytorchs():
  x = np.random.default_rng(0).normal(size=(2, 3, 5, 7)).astype(np.float32)
  reference = F.interpolate(torch.from_numpy(x), scale_factor=2, mode='bilinear',
                            align_corners=False)
  close(sngan.upsample_bilinear(x.transpose(0, 2, 3, 1)), mimicry_reference.to_nhwc(reference),
        1e-6)


@pytest.mark.parametrize('resolution,ngf,ndf,batch', SMALL)
def test_forward_passes_statistics_losses_and_gradients_equal_mimicrys(resolution, ngf, ndf,
                                                                       batch):
  g_torch, d_torch = mimicry_reference.build(resolution, ngf, ndf)
  generator, discriminator = models.build_models(model_config(resolution, ngf, ndf))
  g_vars = mimicry_reference.to_variables(g_torch.state_dict())
  d_vars = mimicry_reference.to_variables(d_torch.state_dict())
  torch.manual_seed(1)
  z = torch.randn(batch, LATENT_DIM)
  torch.manual_seed(2)
  x = torch.rand(batch, 3, resolution, resolution) * 2 - 1
  x_nhwc = mimicry_reference.to_nhwc(x)

  with torch.no_grad():
    g_torch.train()
    fakes_train = g_torch(z)
    d_torch.train()
    real_train, fake_train = d_torch(x), d_torch(fakes_train)
    d_after_train = mimicry_reference.to_variables(d_torch.state_dict())['batch_stats']
    g_torch.eval()
    d_torch.eval()
    fakes_eval = g_torch(z)
    real_eval, fake_eval = d_torch(x), d_torch(fakes_eval)

  ours, g_stats = generator.apply(g_vars, z.numpy(), train=True, mutable=['batch_stats'])
  close(ours, mimicry_reference.to_nhwc(fakes_train))
  close(g_stats['batch_stats'],
        mimicry_reference.to_variables(g_torch.state_dict())['batch_stats'])
  real_ours, d_stats = discriminator.apply(d_vars, x_nhwc, train=True, mutable=['batch_stats'])
  close(real_ours, real_train[:, 0])
  d_vars = dict(d_vars, batch_stats=d_stats['batch_stats'])
  fake_ours, d_stats = discriminator.apply(d_vars, mimicry_reference.to_nhwc(fakes_train),
                                           train=True, mutable=['batch_stats'])
  close(fake_ours, fake_train[:, 0])
  close(d_stats['batch_stats'], d_after_train, 2e-5)
  d_vars = dict(d_vars, batch_stats=d_stats['batch_stats'])
  g_vars = dict(g_vars, batch_stats=g_stats['batch_stats'])
  fakes_ours = generator.apply(g_vars, z.numpy(), train=False)
  close(fakes_ours, mimicry_reference.to_nhwc(fakes_eval))
  logits = lambda images: discriminator.apply(d_vars, images, train=False)
  close(logits(x_nhwc), real_eval[:, 0])
  close(logits(fakes_ours), fake_eval[:, 0], 2e-5)
  close(losses.discriminator_loss_hinge(logits(x_nhwc), logits(fakes_ours)),
        F.relu(1 - real_eval).mean() + F.relu(1 + fake_eval).mean(), 2e-5)
  close(losses.generator_loss_hinge(logits(fakes_ours)), -fake_eval.mean(), 2e-5)

  x_grad = x.clone().requires_grad_()
  hinge = F.relu(1 - d_torch(x_grad)).mean() + F.relu(1 + fake_eval).mean()
  (hinge_grad,) = torch.autograd.grad(hinge, x_grad)
  ours_grad = jax.grad(lambda images: losses.discriminator_loss_hinge(
      logits(images), logits(fakes_ours)))(x_nhwc)
  close(ours_grad, mimicry_reference.to_nhwc(hinge_grad), 2e-5)
  x_grad = x.clone().requires_grad_()
  (logit_grad,) = torch.autograd.grad(d_torch(x_grad).sum(), x_grad, create_graph=True)
  r1 = logit_grad.square().sum((1, 2, 3)).mean()
  close(losses.r1_penalty(logits, x_nhwc), r1.detach(), 2e-5)


def test_the_shared_fixtures_weights_give_its_numbers():
  """tests/data/sngan64_small.npz (../shared/fixtures/sngan64_small.npz without its
  intermediate features): Mimicry's SNGAN-64 (ngf = ndf = 64) as it ran when the fixture was
  made, read without PyTorch, through the fixture's call sequence (README, section A)."""
  fixture = reference_arrays.load('sngan64_small.npz')
  state = lambda prefix: {name[len(prefix):]: value for name, value in fixture.items()
                          if name.startswith(prefix)}
  out = lambda name: fixture[f'out/{name}']
  nchw_to_nhwc = lambda images: images.transpose(0, 2, 3, 1)
  g_vars = mimicry_reference.to_variables(state('G/'))
  d_vars = mimicry_reference.to_variables(state('D/'))
  generator, discriminator = models.build_models(model_config(64, 64, 64))
  z, x = fixture['in/z'], nchw_to_nhwc(fixture['in/x'])

  fakes, g_stats = generator.apply(g_vars, z, train=True, mutable=['batch_stats'])
  close(fakes, nchw_to_nhwc(out('G_train')))
  close(g_stats['batch_stats'], mimicry_reference.to_variables(
      dict(state('G/'), **state('G_after_train/')))['batch_stats'])
  for images, step in ((x, 'real'), (fakes, 'fake')):  # one power iteration each
    logits, d_stats = discriminator.apply(d_vars, images, train=True, mutable=['batch_stats'])
    close(logits, out(f'D_train_{step}')[:, 0], 2e-5)
    d_vars = dict(d_vars, batch_stats=d_stats['batch_stats'])
    close(d_vars['batch_stats'], mimicry_reference.to_variables(
        dict(state('D/'), **state(f'D_after_train_{step}/')))['batch_stats'], 2e-5)
  g_vars = dict(g_vars, batch_stats=g_stats['batch_stats'])
  fakes = generator.apply(g_vars, z, train=False)
  close(fakes, nchw_to_nhwc(out('G_eval')))
  logits = lambda images: discriminator.apply(d_vars, images, train=False)
  close(logits(x), out('D_eval_real')[:, 0], 2e-5)
  close(logits(fakes), out('D_eval_fake')[:, 0], 2e-5)
  close(losses.discriminator_loss_hinge(logits(x), logits(fakes)), out('hinge_D_eval'), 2e-5)
  close(losses.generator_loss_hinge(logits(fakes)), out('hinge_G_eval'), 2e-5)
  hinge_grad = jax.grad(lambda images: losses.discriminator_loss_hinge(
      logits(images), out('D_eval_fake')[:, 0]))(x)
  close(hinge_grad, nchw_to_nhwc(out('grad_x_hinge_D_eval')), 2e-5)
  close(jax.grad(lambda images: logits(images).sum())(x),
        nchw_to_nhwc(out('grad_x_D_eval_logits_sum')), 2e-5)
  close(losses.r1_penalty(logits, x), out('r1_D_eval').mean(), 2e-5)


def test_mimicry_rebuilds_the_fixtures_weights_bit_exactly():
  """The tests that run Mimicry beside ours build their networks as the fixture was built."""
  g_torch, d_torch = mimicry_reference.build(64, 64, 64)
  fixture = reference_arrays.load('sngan64_small.npz')
  for prefix, network in (('G/', g_torch), ('D/', d_torch)):
    for name, value in network.state_dict().items():
      np.testing.assert_array_equal(value.numpy(), fixture[prefix + name], err_msg=name)


def test_r1_gradient_through_the_spectral_norm_equals_mimicrys():
  """D's R1 loss is differentiated twice; its parameter gradient, spectral norm included."""
  _, d_torch = mimicry_reference.build(32, 16, 16)
  _, discriminator = models.build_models(model_config(32, 16, 16))
  torch.manual_seed(2)
  x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_()
  with torch.no_grad():  # power iterations: sigma near the spectral norm, gradients of order 1
    for _ in range(3):
      d_torch(x)
  d_vars = mimicry_reference.to_variables(d_torch.state_dict())
  d_torch.eval()
  (logit_grad,) = torch.autograd.grad(d_torch(x).sum(), x, create_graph=True)
  logit_grad.square().sum((1, 2, 3)).mean().backward()

  def r1(params):
    apply = lambda images: discriminator.apply(dict(d_vars, params=params), images, train=False)
    return losses.r1_penalty(apply, mimicry_reference.to_nhwc(x))

  grads = jax.grad(r1)(d_vars['params'])
  reference = mimicry_reference.to_variables(
      {name: torch.zeros_like(p) if p.grad is None else p.grad  # the logit's bias
       for name, p in d_torch.named_parameters()})
  close(grads, reference['params'], 1e-4)


@pytest.mark.parametrize('resolution,expected', [
    (32, None), (64, (12_220_675, 10_141_441)), (128, (32_150_787, 29_017_857))])
def test_default_parameter_counts_equal_mimicrys(resolution, expected):
  g_torch, d_torch = mimicry_reference.build(resolution, perturb_batchnorm=False)
  reference = (mimicry_reference.count_parameters(g_torch),
               mimicry_reference.count_parameters(d_torch))
  if expected:  # facts.json of the shared fixtures
    assert reference == expected
  config = model_config(resolution, g_torch.ngf, d_torch.ndf)
  generator, discriminator = models.build_models(config)
  count = lambda tree: sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(tree))
  z = jax.ShapeDtypeStruct((1, LATENT_DIM), jnp.float32)
  image = jax.ShapeDtypeStruct((1, resolution, resolution, 3), jnp.float32)
  g_vars = jax.eval_shape(lambda z: generator.init(jax.random.key(0), z, train=False), z)
  d_vars = jax.eval_shape(lambda x: discriminator.init(jax.random.key(0), x, train=False), image)
  assert (count(g_vars['params']), count(d_vars['params'])) == reference


def test_initialisation_follows_mimicrys_scheme():
  """Xavier-uniform bounds (gain sqrt 2 in the residual 3x3 convolutions), PyTorch's bias bounds,
  unit u and v."""
  _, discriminator = models.build_models(model_config(32, 64, 64))
  variables = discriminator.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
  block = variables['params']['block2']
  fan_in, fan_out = 9 * 64, 9 * 64
  bound = np.sqrt(2) * np.sqrt(6 / (fan_in + fan_out))
  assert bound * 0.95 < np.abs(block['c1']['kernel']).max() <= bound
  assert 0.95 / np.sqrt(fan_in) < np.abs(block['c1']['bias']).max() <= 1 / np.sqrt(fan_in)
  assert np.abs(block['c_sc']['kernel']).max() <= np.sqrt(6 / (64 + 64))
  stats = variables['batch_stats']['block2']['c1']
  close(np.linalg.norm(stats['u']), 1.0, 1e-6)
  close(np.linalg.norm(stats['v']), 1.0, 1e-6)


@pytest.mark.parametrize('field,value,message', [
    ('resolution', 48, r"config.model.resolution=48 is not supported by sngan; use one of "
                       r"\(32, 64, 128\)"),
    ('g_width', 8, r'config.model.g_width=8 is too small for sngan at 64x64; use an integer '
                   r'>= 16'),
    ('d_width', 0, r'config.model.d_width=0 is too small')])
def test_bad_config_is_a_clear_error(field, value, message):
  config = model_config(64, 64, 64)
  config[field] = value
  with pytest.raises(UserError, match=message):
    models.build_models(config)
