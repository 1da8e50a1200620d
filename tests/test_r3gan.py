"""R3GAN against the official code (brownvc/R3GAN @ 19a7ddf, CPU float32): the fixture weights
converted to ours give the reference's images, logits and every stage's activations, its RpGAN
losses, R1 and R2, input and parameter gradients (tests/data/r3gan_*small.npz, README in
../shared/fixtures/r3gan/); the presets have the reference's parameter counts and schedules.
"""

import functools
import json
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from facegan_jax import models
from facegan_jax.models import r3gan
from facegan_jax.system.errors import UserError
from facegan_jax.training import config_check
from facegan_jax.training import r3gan_loss
from facegan_jax.training import r3gan_schedules
from tests.helpers import reference_arrays

# Activations and outputs are of order 1 (up to about 5); the README's own re-implementation
# agrees to 1.1e-6.
TOLERANCE = dict(atol=1e-5, rtol=1e-5)
GAMMA = 150.0  # of the fixture's section 2
CONFIGS = {'uncond': ('r3gan_small.npz', 0), 'cond': ('r3gan_cond_small.npz', 4)}


def tiny_networks(c_dim):
  """The fixture's 32x32 generator and discriminator (README section 4)."""
  generator = r3gan.R3GANGenerator((32, 32, 24, 16), (4, 8, 3, 2), (1, 2, 1, 2), 2, 64, c_dim, 64)
  discriminator = r3gan.R3GANDiscriminator((16, 24, 32, 32), (2, 3, 8, 4), (2, 1, 2, 1), 2,
                                           c_dim, 32)
  return generator, discriminator


@functools.lru_cache(maxsize=None)
def reference(config):
  """(fixture arrays, generator, discriminator, G params, D params)."""
  name, c_dim = CONFIGS[config]
  fixture = reference_arrays.load(name)
  generator, discriminator = tiny_networks(c_dim)
  return (fixture, generator, discriminator,
          r3gan.params_from_reference(fixture, generator, 'G/'),
          r3gan.params_from_reference(fixture, discriminator, 'D/'))


def nhwc(array):
  array = np.asarray(array)
  return jnp.asarray(array.transpose(0, 2, 3, 1) if array.ndim == 4 else array)


def labels(fixture, network):
  return jnp.asarray(fixture['in/c']) if network.c_dim else None


def count(tree):
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(tree))


def captured(intermediates, path):
  """A module's output (or a sown value) under `path` of the 'intermediates' collection."""
  node = intermediates
  for key in path:
    node = node[key]
  return (node['__call__'] if isinstance(node, dict) else node)[0]


@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_outputs_and_every_stage_equal_the_reference(config):
  fixture, generator, discriminator, g_params, d_params = reference(config)
  c = labels(fixture, generator)
  run = lambda network, params, x: network.apply({'params': params}, x, False, c,
                                                 capture_intermediates=True,
                                                 mutable=['intermediates'])
  images, g_state = jax.jit(functools.partial(run, generator, g_params))(fixture['in/z'])
  logits, d_state = jax.jit(functools.partial(run, discriminator, d_params))(
      nhwc(fixture['in/real']))
  assert images.shape == (4, 32, 32, 3) and images.dtype == jnp.float32
  np.testing.assert_allclose(images, nhwc(fixture['out/G']), **TOLERANCE)
  np.testing.assert_allclose(logits, fixture['out/D_real'], **TOLERANCE)
  fake_logits = jax.jit(lambda x: discriminator.apply({'params': d_params}, x, c=c))(images)
  np.testing.assert_allclose(fake_logits, fixture['out/D_fake'], **TOLERANCE)
  checked = 0
  for key, expected in fixture.items():
    if key.startswith('act/'):
      _, network, path = key.split('/')
      state = g_state if network == 'G' else d_state
      module = generator if network == 'G' else discriminator
      ours = captured(state['intermediates'], r3gan.module_path(module, path.split('@')[0]))
      ours = np.asarray(ours)[:2].reshape((2,) + nhwc(expected).shape[1:])
      np.testing.assert_allclose(ours, nhwc(expected), err_msg=key, **TOLERANCE)
      checked += 1
  assert checked == {'uncond': 21, 'cond': 11}[config]


@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_penalties_and_input_gradients_equal_the_reference(config):
  fixture, _, discriminator, _, d_params = reference(config)
  c = labels(fixture, discriminator)
  logits_fn = lambda x: discriminator.apply({'params': d_params}, x, c=c)
  for name, images in (('real', fixture['in/real']), ('fake', fixture['out/G'])):
    gradient = jax.jit(jax.grad(lambda x: logits_fn(x).sum()))(nhwc(images))
    expected = nhwc(fixture[f'dD_dx/{name}'])
    np.testing.assert_allclose(gradient, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    logits, norms = jax.jit(lambda x: r3gan_loss.logits_and_gradient_norms(logits_fn, x))(
        nhwc(images))
    np.testing.assert_allclose(logits, fixture[f'out/D_{name}'], **TOLERANCE)
    penalty = {'real': 'R1', 'fake': 'R2'}[name]
    np.testing.assert_allclose(norms, fixture[f'loss/{penalty}_per_sample'], rtol=1e-5)


def check_gradients(network, grads, fixture, prefix):
  """Our parameter gradients against the fixture's `prefix`<name> entries (all it has), each
  relative to the largest entry of its tensor."""
  flat = flax.traverse_util.flatten_dict(grads)
  names = [key for key in fixture if key.startswith(prefix)]
  for key in names:
    path, expected = r3gan.convert_reference_entry(network, key[len(prefix) + 6:], fixture[key])
    np.testing.assert_allclose(flat[path], expected, rtol=1e-4,
                               atol=1e-5 * np.abs(expected).max(), err_msg=key)
  return len(names)


@pytest.mark.slow  # compiles second-order gradients of grouped convolutions
@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_generator_loss_and_its_gradients_equal_the_reference(config):
  fixture, generator, discriminator, g_params, d_params = reference(config)
  c = labels(fixture, generator)
  logits_fn = lambda x: discriminator.apply({'params': d_params}, x, c=c)
  real = nhwc(fixture['in/real'])

  def loss_of(params, z):
    fake = generator.apply({'params': params}, z, c=c)
    return r3gan_loss.generator_loss(logits_fn, real, fake)

  (loss, terms), (param_grads, z_grads) = jax.jit(
      jax.value_and_grad(loss_of, argnums=(0, 1), has_aux=True))(g_params, fixture['in/z'])
  np.testing.assert_allclose(loss, fixture['loss/G_mean'], **TOLERANCE)
  np.testing.assert_allclose(terms.adversarial, fixture['loss/G_adv_per_sample'], **TOLERANCE)
  np.testing.assert_allclose(terms.relativistic_logits, fixture['loss/G_rel_logits'],
                             **TOLERANCE)
  np.testing.assert_allclose(z_grads, fixture['grad/G_loss_wrt_z'], rtol=1e-4,
                             atol=1e-5 * np.abs(fixture['grad/G_loss_wrt_z']).max())
  fake_grads = jax.jit(jax.grad(lambda x: r3gan_loss.generator_loss(logits_fn, real, x)[0]))(
      nhwc(fixture['out/G']))
  expected = nhwc(fixture['grad/G_loss_wrt_fake'])
  np.testing.assert_allclose(fake_grads, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
  checked = check_gradients(generator, param_grads, fixture, 'grad/G_loss_wrt_G/')
  assert checked == {'uncond': 35, 'cond': 7}[config]


@pytest.mark.slow  # compiles second-order gradients of grouped convolutions
@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_discriminator_loss_and_its_gradients_equal_the_reference(config):
  fixture, _, discriminator, _, d_params = reference(config)
  c = labels(fixture, discriminator)
  real, fake = nhwc(fixture['in/real']), nhwc(fixture['out/G'])

  def loss_of(params, gamma):
    logits_fn = lambda x: discriminator.apply({'params': params}, x, c=c)
    return r3gan_loss.discriminator_loss(logits_fn, real, fake, gamma)

  value_and_grad = jax.jit(jax.value_and_grad(loss_of, has_aux=True))
  (loss, terms), grads = value_and_grad(d_params, GAMMA)
  np.testing.assert_allclose(loss, fixture['loss/D_mean'], **TOLERANCE)
  np.testing.assert_allclose(terms.adversarial, fixture['loss/D_adv_per_sample'], **TOLERANCE)
  np.testing.assert_allclose(terms.relativistic_logits, fixture['loss/D_rel_logits'],
                             **TOLERANCE)
  np.testing.assert_allclose(terms.r1, fixture['loss/R1_per_sample'], rtol=1e-5)
  np.testing.assert_allclose(terms.r2, fixture['loss/R2_per_sample'], rtol=1e-5)
  np.testing.assert_allclose(terms.adversarial + GAMMA / 2 * (terms.r1 + terms.r2),
                             fixture['loss/D_total_per_sample'], **TOLERANCE)
  # With the penalties' second-order terms; then the adversarial part alone (gamma 0).
  assert check_gradients(discriminator, grads, fixture, 'grad/D_loss_wrt_D/') == {
      'uncond': 35, 'cond': 7}[config]
  _, adversarial_grads = value_and_grad(d_params, 0.0)
  assert check_gradients(discriminator, adversarial_grads, fixture, 'grad/D_advonly_wrt_D/') == 7


def preset_model(name):
  model = default.get_config().model
  model.name = 'r3gan'
  model.update(r3gan.PRESET_FIELDS[name])
  return model


FACTS = os.path.join(reference_arrays.DIRECTORY, 'r3gan_facts.json')


@pytest.mark.parametrize('name', sorted(r3gan.PRESET_FIELDS))
def test_presets_have_the_reference_parameter_counts(name):
  with open(FACTS) as file:
    expected = json.load(file)['presets'][name]['param_counts']
  generator, discriminator = models.build_models(preset_model(name))
  assert count(r3gan.abstract_params(generator)) == expected['G']
  assert count(r3gan.abstract_params(discriminator)) == expected['D']
  assert {'FFHQ-64': (22_429_824, 22_381_440),
          'FFHQ-256': (23_057_952, 23_009_568)}[name] == (expected['G'], expected['D'])


def test_tiny_networks_have_the_reference_parameter_counts():
  for config, (g_count, d_count) in (('uncond', (55_568, 53_552)), ('cond', (57_872, 54_672))):
    _, _, _, g_params, d_params = reference(config)
    assert (count(g_params), count(d_params)) == (g_count, d_count)


@pytest.mark.slow
def test_initialisation_follows_the_reference_rule():
  """Our init against the official one (the fixture's loopA/G0, D0): the same zeros, and
  standard deviations that agree within sampling error."""
  fixture, generator, discriminator, _, _ = reference('uncond')
  for network, prefix, init_input in (
      (generator, 'G/', jnp.zeros((1, 64))), (discriminator, 'D/', jnp.zeros((1, 32, 32, 3)))):
    ours = flax.traverse_util.flatten_dict(
        jax.jit(network.init)(jax.random.key(0), init_input)['params'])
    official = {key.replace('loopA/' + prefix[0] + '0/', prefix): value
                for key, value in fixture.items() if key.startswith(f'loopA/{prefix[0]}0/')}
    theirs = flax.traverse_util.flatten_dict(
        r3gan.params_from_reference(official, network, prefix))
    assert set(ours) == set(theirs)
    for path, value in ours.items():
      expected = theirs[path]
      if not np.any(expected):
        assert not np.any(value), path
        continue
      # The std estimate of n samples has a relative standard error of about 1 / sqrt(2n).
      assert abs(np.std(value) / np.std(expected) - 1) < 5 / np.sqrt(2 * value.size), path


def test_schedules_equal_the_reference_exactly():
  with open(FACTS) as file:
    facts = json.load(file)
  for name, preset in facts['presets'].items():
    for point in preset['schedule_values'].values():
      values = r3gan_schedules.values_at(r3gan_schedules.PRESETS[name], point['nimg'])
      assert tuple(values) == (point['lr'], point['beta2'], point['gamma'], point['ema_nimg'],
                               point['aug_p'])
      assert r3gan_schedules.ema_beta(values.ema_nimg, preset['batch_size']) == point[
          'ema_beta_at_preset_batch']
  for run in facts['loop'].values():
    values = r3gan_schedules.values_at(r3gan_schedules.PRESETS['FFHQ-256'], run['cur_nimg_before'])
    assert (values.learning_rate, values.beta2, values.gamma, values.ema_nimg) == (
        run['lr'], run['beta2'], run['gamma'], run['ema_nimg'])
    assert r3gan_schedules.ema_beta(values.ema_nimg, 4) == run['ema_beta']


def test_schedules_in_jax_follow_the_same_formula():
  schedules = r3gan_schedules.PRESETS['FFHQ-256']
  for nimg in (0, 2_000_000, 10_000_000, 20_000_000, 40_000_000):
    ours = jax.jit(lambda n: r3gan_schedules.values_at(schedules, n))(jnp.float32(nimg))
    np.testing.assert_allclose(ours, r3gan_schedules.values_at(schedules, nimg), rtol=1e-6,
                               atol=1e-9)


def test_build_from_the_config_and_its_errors():
  config = default.get_config()
  config.model.name = 'r3gan'
  config.model.update(r3gan.PRESET_FIELDS['FFHQ-64'])
  config_check.check(config)
  generator, discriminator = models.build_models(config.model)
  assert generator.widths == (768, 768, 768, 768, 384)
  assert generator.cardinalities == (96, 96, 96, 96, 48)
  assert discriminator.widths == (384, 768, 768, 768, 768)
  assert discriminator.cardinalities == (48, 96, 96, 96, 96)
  # The preset's stages 1-4 of G and 0-3 of D in bfloat16; compute_dtype 'bfloat16': all of them.
  assert generator.bf16_stages == discriminator.bf16_stages == 4
  for dtype_name, dtypes in (('float32', (jnp.float32,) + (jnp.bfloat16,) * 4),
                             ('bfloat16', (jnp.bfloat16,) * 5)):
    generator, _ = models.build_models(config.model, dtype_name)
    assert r3gan.generator_stage_dtypes(5, generator.bf16_stages, generator.dtype) == dtypes
  config.model.bf16_stages = 6
  with pytest.raises(UserError, match=r'^config.model.bf16_stages=6 exceeds the 5 stages of '
                     r'resolution 64; use 0 to 5.$'):
    config_check.check(config)
  config.model.bf16_stages = -1
  with pytest.raises(UserError, match=r'config.model.bf16_stages=-1 is out of range'):
    config_check.check(config)
  config.model.update(bf16_stages=4, group_width=40)
  with pytest.raises(UserError, match='config.model.group_width=40 does not divide'):
    models.build_models(config.model)
  config.model.update(group_width=16, resolution=48)
  with pytest.raises(UserError, match='config.model.resolution=48 is not supported'):
    models.build_models(config.model)


def test_converter_refuses_weights_of_another_configuration_and_another_filter():
  fixture, generator, _, _, _ = reference('uncond')
  narrower = r3gan.R3GANGenerator((32, 32, 24, 8), (4, 8, 3, 2), (1, 2, 1, 2))
  with pytest.raises(UserError, match=r'LinearLayer.Layer.weight has shape \(1, 1, 24, 16\) in '
                     r'our layout; this network expects \(1, 1, 24, 8\)'):
    r3gan.params_from_reference(fixture, narrower, 'G/')
  without_last_conv = r3gan.R3GANGenerator((32, 32, 24, 24), (4, 8, 3, 3), (1, 2, 1, 2))
  with pytest.raises(UserError, match='MainLayers.3.Layers.0.LinearLayer.Layer.weight is not a '
                     'parameter of this network'):
    r3gan.params_from_reference(fixture, without_last_conv, 'G/')
  incomplete = {k: v for k, v in fixture.items() if k != 'G/Model.AggregationLayer.Layer.weight'}
  with pytest.raises(UserError, match='no G/ entry for our parameter aggregation/kernel'):
    r3gan.params_from_reference(incomplete, generator, 'G/')
  arrays = dict(fixture, **{'G/Model.MainLayers.1.Layers.0.Resampler.Kernel': np.eye(4)})
  with pytest.raises(UserError, match=r'Kernel is not the \[1,3,3,1\] filter'):
    r3gan.params_from_reference(arrays, generator, 'G/')


def test_bfloat16_computes_the_convolutions_and_stays_close():
  fixture, generator, discriminator, g_params, d_params = reference('uncond')
  low_g, low_d = (network.clone(dtype=jnp.bfloat16) for network in (generator, discriminator))
  images = jax.jit(lambda z: low_g.apply({'params': g_params}, z))(fixture['in/z'])
  logits = jax.jit(lambda x: low_d.apply({'params': d_params}, x))(nhwc(fixture['in/real']))
  assert images.dtype == logits.dtype == jnp.float32
  for ours, expected in ((images, nhwc(fixture['out/G'])), (logits, fixture['out/D_real'])):
    np.testing.assert_allclose(ours, expected, atol=0.05 * np.abs(expected).max())
    assert not np.array_equal(ours, expected)


# bfloat16 keeps 8 significant bits: each rounding is off by up to u = 2^-8 (about 4e-3) of its
# value. Ours and the reference round the same stage inputs and layer outputs but not at the
# same points within a layer (our FIR filters round after each of their separable passes, torch's
# 2-D filter once; the convolution libraries accumulate differently), and a few roundings' worth
# of the activations' scale reaches the outputs: the README's own bfloat16 emulation differs
# from the record by 2.3e-2 on images up to 2.8, 2u of their largest value. We allow 4u of each
# array's largest value. That is also the size of bfloat16-vs-float32 itself, so the dtypes,
# stage by stage, are what shows that the stages compute in bfloat16.
BF16_TOLERANCE = 4 * 2.0**-8


def reference_stage_dtypes(fp16_stages, count):
  """The dtype of each of `count` stages of a network whose FP16Stages (indices, negative from
  the end) are `fp16_stages`, as the reference's training/networks.py sets them."""
  indices = {index % count for index in fp16_stages}
  return tuple(jnp.bfloat16 if stage in indices else jnp.float32 for stage in range(count))


def assert_close_in_bfloat16(ours, expected, name):
  expected = np.asarray(expected)
  np.testing.assert_allclose(np.asarray(ours, np.float32), expected,
                             atol=BF16_TOLERANCE * np.abs(expected).max(), rtol=0, err_msg=name)


def test_bfloat16_stages_reproduce_the_reference_side_record():
  """The fixture's bf16/* record: G's stages 1-3 and D's 0-2 in bfloat16 (facts.json), the
  same weights and inputs; D's fakes are the record's own bfloat16 images."""
  fixture, generator, discriminator, g_params, d_params = reference('uncond')
  record = reference_arrays.load('r3gan_bf16_small.npz')
  with open(FACTS) as file:
    facts = json.load(file)['bf16_side_record']
  dtype = lambda name: jnp.dtype(name.removeprefix('torch.'))
  count = len(generator.widths)
  low_g, low_d = (network.clone(bf16_stages=len(facts['G_FP16Stages']))
                  for network in (generator, discriminator))
  run = lambda network, params, x: network.apply({'params': params}, x, capture_intermediates=True,
                                                 mutable=['intermediates'])
  images, g_state = jax.jit(functools.partial(run, low_g, g_params))(fixture['in/z'])
  real, fake = nhwc(fixture['in/real']), nhwc(record['bf16/out/G']).astype(jnp.bfloat16)
  (logits, d_state), (fake_logits, _) = (
      jax.jit(functools.partial(run, low_d, d_params))(x) for x in (real, fake))
  for network, state, fp16_stages in ((low_g, g_state, facts['G_FP16Stages']),
                                      (low_d, d_state, facts['D_FP16Stages'])):
    stage_dtypes = tuple(captured(state['intermediates'], (f'stage{stage}',)).dtype
                         for stage in range(count))
    assert stage_dtypes == reference_stage_dtypes(fp16_stages, count), network
  # D casts the images to its first stage's dtype before the extraction convolution.
  assert captured(d_state['intermediates'], ('extraction',)).dtype == jnp.bfloat16
  assert images.dtype == dtype(facts['G_out_dtype'])
  assert logits.dtype == fake_logits.dtype == dtype(facts['D_out_dtype'])
  assert_close_in_bfloat16(images, nhwc(record['bf16/out/G']), 'bf16/out/G')
  for name, ours in (('D_real', logits), ('D_fake', fake_logits)):
    assert_close_in_bfloat16(ours, record[f'bf16/out/{name}'], name)
  logits_fn = lambda x: low_d.apply({'params': d_params}, x)
  terms = jax.jit(lambda x, y: r3gan_loss.discriminator_terms(logits_fn, x, y))(real, fake)
  for name, ours in (('D_adv', terms.adversarial), ('R1', terms.r1), ('R2', terms.r2)):
    assert ours.dtype == dtype(facts['penalty_dtypes'][name]), name
    assert_close_in_bfloat16(ours, record[f'bf16/loss/{name}_per_sample'], name)


def test_conditional_networks_need_labels():
  fixture, generator, _, g_params, _ = reference('cond')
  with pytest.raises(ValueError, match=r'pass labels c of shape \[N, 4\]'):
    generator.apply({'params': g_params}, fixture['in/z'])
