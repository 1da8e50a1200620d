"""The train step and loop: learning, bit-identical reruns, d_steps, compilation, config errors."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import lfw_demo
from configs import toy2x2
from facegan_jax.data import image_sources
from facegan_jax.data import input_pipeline
from facegan_jax.system import parallel
from facegan_jax.system.errors import UserError
from facegan_jax.training import augment_step
from facegan_jax.training import config_check
from facegan_jax.training import loop
from facegan_jax.training import optimizers
from facegan_jax.training import state as state_lib
from facegan_jax.training import step as step_lib
from facegan_jax.training import trainer as trainer_lib


def leaves(state):
  return [np.asarray(x) for x in jax.tree_util.tree_leaves(
      (state.g_params, state.g_batch_stats, state.d_params, state.d_batch_stats,
       state.g_opt_state, state.d_opt_state))]


def assert_identical(a, b):
  for x, y in zip(leaves(a), leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


def toy_face_fraction(config, state, count=2000):
  trainer = trainer_lib.make_trainer(config)
  z = jax.random.normal(jax.random.key(123), (count, config.model.latent_dim))
  return float(image_sources.is_toy_face(step_lib.generate_samples(trainer, state, z)).mean())


@pytest.mark.slow
def test_toy2x2_learns_to_draw_faces(tmp_path):
  config = toy2x2.get_config()
  trainer = trainer_lib.make_trainer(config)
  untrained = state_lib.create_train_state(trainer, jax.random.key(config.seed), (2, 2, 1))
  trained = loop.train_and_evaluate(config, str(tmp_path))
  assert toy_face_fraction(config, untrained) < 0.2
  assert toy_face_fraction(config, trained) >= 0.95


def test_same_seed_gives_bit_identical_parameters_other_seed_does_not(tmp_path):
  config = lfw_demo.get_config('test')
  first = loop.train_and_evaluate(config, str(tmp_path / 'a'))
  second = loop.train_and_evaluate(config, str(tmp_path / 'b'))
  assert int(first.step) == config.train.num_steps
  assert_identical(first, second)
  config.seed = 1
  other = loop.train_and_evaluate(config, str(tmp_path / 'c'))
  assert any(not np.array_equal(x, y) for x, y in zip(leaves(first), leaves(other)))
  samples = sorted(p.name for p in (tmp_path / 'a' / 'samples').iterdir())
  assert samples == ['step_0000002.png', 'step_0000004.png']
  assert (tmp_path / 'a' / 'samples' / 'step_0000004.png').read_bytes() == (
      tmp_path / 'b' / 'samples' / 'step_0000004.png').read_bytes()


def compiled_step(config):
  """(initial state, step_fn(state, batch) running the lazy phases of state.step, host
  batches, mesh)."""
  trainer = trainer_lib.make_trainer(config)
  mesh = parallel.make_mesh()
  images = image_sources.load_images(config)
  init, step, _ = step_lib.compile_functions(trainer, mesh, images.shape[1:])
  batches = input_pipeline.host_batches(images, seed=0, start_step=0,
                                        batch_size=config.train.batch_size,
                                        d_steps=config.train.d_steps)
  step_fn = lambda state, batch: step(state, batch, step_lib.lazy_phases(trainer, int(state.step)))
  return init(jax.random.key(config.seed)), step_fn, batches, mesh


def test_d_steps_updates_the_discriminator_that_often_per_generator_update():
  config = lfw_demo.get_config('test')
  config.train.d_steps = 3
  state, step_fn, batches, mesh = compiled_step(config)
  batch = next(batches)
  assert batch.shape == (3, 8, 32, 32, 1)
  state, metrics = step_fn(state, parallel.host_batch_to_global(batch, mesh))
  assert int(state.step) == 1
  assert int(state.d_opt_state[0].count) == 3 and int(state.g_opt_state[0].count) == 1
  assert set(metrics) == {'d_loss', 'g_loss', 'd_real', 'd_fake', 'd_grad_norm',
                          'g_grad_norm', 'params_finite'}
  assert bool(metrics['params_finite'])


def test_the_step_compiles_once_per_lazy_phases_and_donates_the_state():
  config = with_every_switch(lfw_demo.get_config('test'))  # R1 on every second step
  trainer = trainer_lib.make_trainer(config)
  mesh = parallel.make_mesh()
  images = image_sources.load_images(config)
  init, step, _ = step_lib.compile_functions(trainer, mesh, images.shape[1:])
  state = init(jax.random.key(0))
  batches = input_pipeline.host_batches(images, seed=0, start_step=0, batch_size=8, d_steps=1)
  phases = [step_lib.lazy_phases(trainer, i) for i in range(4)]
  assert phases == [step_lib.LazyPhases(r1=True), step_lib.LazyPhases()] * 2
  for phase in phases:
    previous = state
    state, _ = step(state, parallel.host_batch_to_global(next(batches), mesh), phase)
  assert step._cache_size() == 2  # pylint: disable=protected-access
  assert previous.g_params['Dense_0']['kernel'].is_deleted()


def test_minimax_loss_trains(tmp_path):
  config = lfw_demo.get_config('test')
  config.loss.generator = 'minimax'
  state = loop.train_and_evaluate(config, str(tmp_path))
  assert all(np.isfinite(x).all() for x in leaves(state))
  assert (tmp_path / 'metrics.jsonl').read_text().count('\n') == 2


@pytest.mark.parametrize('field, value, message', [
    ('num_steps', 0, r'config.train.num_steps=0 is out of range; use an integer >= 1\.'),
    ('d_steps', 0, r'config.train.d_steps=0 is out of range; use an integer >= 1\.'),
])
def test_bad_train_values_are_clear_errors(tmp_path, field, value, message):
  config = lfw_demo.get_config('test')
  config.train[field] = value
  with pytest.raises(UserError, match=message):
    loop.train_and_evaluate(config, str(tmp_path))


def with_every_switch(config):
  """Hinge loss, lazy R1, spectral norm in D, DiffAugment and the EMA generator, all on."""
  config.loss.discriminator = config.loss.generator = 'hinge'
  config.loss.r1_gamma, config.loss.r1_every = 1.0, 2
  config.model.d_norm = 'spectral'
  config.augment.policy = 'color,translation,cutout'
  config.ema.halflife_images = 100.0
  config.checkpoint.every = 2
  return config


@pytest.mark.slow
def test_every_switch_keeps_bit_identical_reruns_and_resume(tmp_path):
  config = with_every_switch(lfw_demo.get_config('test'))
  first = loop.train_and_evaluate(config, str(tmp_path / 'a'))
  again = loop.train_and_evaluate(config, str(tmp_path / 'b'))
  assert_identical(first, again)
  np.testing.assert_array_equal(jax.random.key_data(first.key), jax.random.key_data(again.key))
  halfway = with_every_switch(lfw_demo.get_config('test'))
  halfway.train.num_steps = 2
  loop.train_and_evaluate(halfway, str(tmp_path / 'c'))
  resumed = loop.train_and_evaluate(config, str(tmp_path / 'c'))
  assert_identical(first, resumed)
  ema_leaves = jax.tree_util.tree_leaves(first.g_ema_params)
  assert ema_leaves and not all(
      np.array_equal(a, b) for a, b in zip(ema_leaves, jax.tree_util.tree_leaves(first.g_params)))


def test_switches_report_r1_and_sample_from_the_ema_generator():
  config = with_every_switch(lfw_demo.get_config('test'))
  state, step_fn, batches, mesh = compiled_step(config)
  state, metrics = step_fn(state, parallel.host_batch_to_global(next(batches), mesh))
  assert float(metrics['r1']) > 0  # step 0 is an R1 step (every 2nd)
  _, metrics = step_fn(state, parallel.host_batch_to_global(next(batches), mesh))
  assert float(metrics['r1']) == 0
  trainer = trainer_lib.make_trainer(config)
  assert step_lib.sampling_variables(trainer, state)['params'] is state.g_ema_params
  assert trainer.ema_decay == pytest.approx(0.5 ** (8 / 100))


@pytest.mark.parametrize('field, value, message', [
    ('loss.discriminator', 'wgan', r"config.loss.discriminator='wgan' is unknown"),
    ('loss.r1_every', 0, r'config.loss.r1_every=0 is out of range; use an integer >= 1'),
    ('augment.policy', 'zoom', r"config.augment.policy='zoom' names unknown operation"),
    ('ema.halflife_images', -1.0,
     r'config.ema.halflife_images=-1.0 is out of range; use a finite number >= 0'),
])
def test_bad_regulariser_values_are_clear_errors(field, value, message):
  config = lfw_demo.get_config('test')
  section, name = field.split('.')
  config[section][name] = value
  with pytest.raises(UserError, match=message):
    config_check.check(config)


def first_step(config, dtype):
  """(G params before, state after, metrics) of the first step computing in `dtype`."""
  config.train.compute_dtype = dtype
  state, step_fn, batches, mesh = compiled_step(config)
  before = jax.device_get(state.g_params)  # the step donates `state`
  return (before,) + step_fn(state, parallel.host_batch_to_global(next(batches), mesh))


@pytest.mark.parametrize('variant', ['test', 'sngan_test'])
def test_bfloat16_step_is_close_to_float32_and_keeps_float32_state(variant):
  """StyleGAN2's networks and regularisers in bfloat16: tests/test_stylegan2.py."""
  config = lfw_demo.get_config(variant)
  start, state32, metrics32 = first_step(config, 'float32')
  _, state16, metrics16 = first_step(config, 'bfloat16')
  # SNGAN's D starts with random power-iteration vectors, so sigma underestimates the spectral
  # norm, the logits are in the tens and the gradient norms move by up to 10% (D's) and 3% (G's).
  loose = {'d_grad_norm': 0.12, 'g_grad_norm': 0.05} if variant == 'sngan_test' else {}
  for name in metrics32:
    np.testing.assert_allclose(metrics16[name], metrics32[name], rtol=loose.get(name, 0.02))
  assert {x.dtype for x in leaves(state16) if x.dtype.kind == 'f'} == {np.dtype(np.float32)}
  # Adam's first step moves every parameter by about +-lr, the sign of its gradient: the two
  # precisions must agree on nearly all of them (random signs would agree on half).
  def signs(state):
    moves = jax.tree_util.tree_map(lambda a, b: np.sign(np.asarray(a) - b).ravel(),
                                   state.g_params, start)
    return np.concatenate(jax.tree_util.tree_leaves(moves))
  assert np.mean(signs(state16) == signs(state32)) > 0.9


def test_unknown_compute_dtype_is_a_clear_error():
  config = lfw_demo.get_config('test')
  config.train.compute_dtype = 'float16'
  with pytest.raises(UserError, match=r"config.train.compute_dtype='float16' is unknown; use "
                     r"one of \('float32', 'bfloat16'\)"):
    trainer_lib.make_trainer(config)


def test_train_steps_make_no_hidden_transfers():
  """The loop's per-step path (the next global batch from the prefetching stream, the jitted
  step) under jax.transfer_guard('disallow'): a host value handed to the step, a Python scalar
  per step or an implicit read-back raises. (XLA:CPU does not guard device-to-host copies, which
  are free there; GPUs and TPUs do.)"""
  config = lfw_demo.get_config('test')
  trainer = trainer_lib.make_trainer(config)
  mesh = parallel.make_mesh()
  images = image_sources.load_images(config)
  _, step_fn, _ = step_lib.compile_functions(trainer, mesh, images.shape[1:])
  state = state_lib.create_train_state(trainer, jax.random.key(0), images.shape[1:])
  state = jax.device_put(state, parallel.replicated(mesh))
  batches = input_pipeline.global_batches(images, mesh, seed=0, start_step=0,
                                          batch_size=config.train.batch_size, d_steps=1,
                                          prefetch_size=2)
  with jax.transfer_guard('disallow'):
    for _ in range(3):
      state, metrics = step_fn(state, next(batches), step_lib.LazyPhases())
  assert int(jax.device_get(state.step)) == 3 and np.isfinite(jax.device_get(metrics['d_loss']))
  with jax.transfer_guard('disallow'), pytest.raises(Exception, match='Disallowed host-to-device'):
    step_fn(state, np.asarray(jax.device_get(next(batches))), step_lib.LazyPhases())


def test_learning_rate_schedules_are_functions_of_the_step():
  config = lfw_demo.get_config('test')
  assert optimizers.learning_rates(config, 7) == {'g_learning_rate': 2e-4, 'd_learning_rate': 2e-4}
  config.optim.update(schedule='linear', decay_steps=10, d_learning_rate=1e-4)
  rates = [optimizers.learning_rates(config, step) for step in (1, 6, 11, 20)]
  np.testing.assert_allclose([r['g_learning_rate'] for r in rates], [2e-4, 1e-4, 0, 0], atol=1e-12)
  np.testing.assert_allclose([r['d_learning_rate'] for r in rates], [1e-4, 5e-5, 0, 0],
                             atol=1e-12)
  config.optim.decay_steps = 0
  with pytest.raises(UserError, match=r'config.optim.decay_steps=0 must be at least 1'):
    trainer_lib.make_trainer(config)
  config.optim.schedule = 'cosine'
  with pytest.raises(UserError, match=r"config.optim.schedule='cosine' is unknown; use one of "
                     r"\('constant', 'linear'\)"):
    trainer_lib.make_trainer(config)


def test_the_linear_decay_with_lazy_regularisation_is_refused():
  config = lfw_demo.get_config('sngan_test')
  config.loss.update(r1_gamma=1.0, r1_every=2)
  with pytest.raises(UserError, match=r"config.optim.schedule='linear' cannot be combined with "
                     r'lazy regularisation'):
    trainer_lib.make_trainer(config)



class LinearLogit(nn.Module):
  """D(x) = <w, x> per image: its input gradient is w, whatever x is."""

  @nn.compact
  def __call__(self, images, train=False):
    del train
    weight = self.param('w', nn.initializers.normal(1.0), images.shape[1:])
    return jnp.sum(images * weight, axis=(1, 2, 3))


@pytest.mark.parametrize('augmentation', [dict(policy='cutout'), dict(pipe='cutout')])
def test_r1_differentiates_through_the_augmentation_as_stylegan2_ada(augmentation):
  """DiffAugment's cutout, and ADA's pipe with its cutout at p = 1."""
  config = lfw_demo.get_config('test')
  config.loss.r1_gamma = 1.0
  config.augment.update(**augmentation)
  trainer = trainer_lib.make_trainer(config).replace(discriminator=LinearLogit())
  real = jax.random.normal(jax.random.key(0), (4, 32, 32, 1))
  params = LinearLogit().init(jax.random.key(1), real)['params']
  key = jax.random.key(2)
  _, r1 = step_lib._r1_loss(  # pylint: disable=protected-access
      trainer, params, {}, real, key, 1.0)
  # D(cutout(x)) = <w * mask, x>: the gradient with respect to the images before augmentation
  # is w * mask, so R1 leaves out the cut-out square (with respect to the augmented images it
  # would be |w|^2 for every image).
  mask = augment_step.discriminator_view(trainer, key, jnp.ones_like(real), 1.0)
  assert 0 < float(mask.mean()) < 1
  expected = jnp.mean(jnp.sum(jnp.square(params['w'] * mask), axis=(1, 2, 3)))
  assert float(r1) == pytest.approx(float(expected), rel=1e-5)
  assert float(r1) < float(jnp.sum(jnp.square(params['w']))) * 0.99
