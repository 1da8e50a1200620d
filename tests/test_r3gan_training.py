"""R3GAN's recipe: our train step against the official loop's two recorded iterations (runs A and
B of ../shared/fixtures/r3gan/, README section 3), its schedules, its configs, a short run and
1 = 2 = 8 devices.
"""

import functools
import json

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import celeba
from configs import ffhq
from configs import lfw_demo
from facegan_jax.models import r3gan
from facegan_jax.system import parallel
from facegan_jax.system.errors import UserError
from facegan_jax.training import ada
from facegan_jax.training import augment_pipe
from facegan_jax.training import config_check
from facegan_jax.training import loop
from facegan_jax.training import optimizers
from facegan_jax.training import r3gan_schedules
from facegan_jax.training import r3gan_step
from facegan_jax.training import state as state_lib
from facegan_jax.training import step as step_lib
from facegan_jax.training import trainer as trainer_lib
from tests import test_r3gan
from tests.helpers import steps_on_meshes
from tests.test_r3gan import FACTS
from tests.test_r3gan import nhwc

RUNS = {'loopA': 'runA', 'loopB': 'runB'}


@functools.lru_cache(maxsize=None)
def fixture_trainer():
  """The FFHQ-256 preset's trainer (the fixture loop's schedules) with the fixture's tiny
  networks and without augmentation (as the fixture loop), and its `update` jitted (one
  compilation for both runs)."""
  _, generator, discriminator, _, _ = test_r3gan.reference('uncond')
  trainer = trainer_lib.make_trainer(ffhq.get_config('r3gan256')).replace(
      generator=generator, discriminator=discriminator, augment_pipe=None)
  return trainer, jax.jit(functools.partial(r3gan_step.update, trainer))


def tree(fixture, prefix, network):
  """Our param tree of the fixture's arrays named `prefix`Model.<name>."""
  return r3gan.params_from_reference(fixture, network, prefix)


def resumed_adam_state(trainer, params, step, mu, nu):
  """`trainer`'s Adam state after `step` steps with first and second moments `mu`, `nu`."""
  state = trainer.g_optimizer.init(params)
  moments = state.inner_state[0]._replace(count=jnp.asarray(step, jnp.int32), mu=mu, nu=nu)
  return state._replace(inner_state=(moments,) + tuple(state.inner_state[1:]))


def starting_state(run):
  """The TrainState that the reference's loop starts `run` from: run A a fresh start at 0
  images; run B the resume at 2,000,000 images (step 500,000 of batch 4) from the section-1
  weights, with run A's Adam moments (step 1) and G_ema = run A's initial G."""
  fixture, generator, discriminator, g_params, d_params = test_r3gan.reference('uncond')
  trainer, _ = fixture_trainer()
  with open(FACTS) as file:
    nimg = json.load(file)['loop'][RUNS[run]]['cur_nimg_before']
  g_init = tree(fixture, 'loopA/G0/', generator)
  if run == 'loopA':
    g_params, d_params = g_init, tree(fixture, 'loopA/D0/', discriminator)
    g_opt, d_opt = trainer.g_optimizer.init(g_params), trainer.d_optimizer.init(d_params)
  else:
    g_opt, d_opt = (resumed_adam_state(trainer, params, 1,
                                       tree(fixture, f'loopA/grad/{name}/', network),
                                       tree(fixture, f'loopA/{name}opt/exp_avg_sq/', network))
                    for params, name, network in ((g_params, 'G', generator),
                                                  (d_params, 'D', discriminator)))
  return state_lib.TrainState(
      step=jnp.asarray(nimg // 4, jnp.int32), key=jax.random.key(0), g_params=g_params,
      g_batch_stats={}, d_params=d_params, d_batch_stats={}, g_opt_state=g_opt,
      d_opt_state=d_opt, g_ema_params=g_init, pl_mean=jnp.zeros((), jnp.float32),
      **state_lib.ada_fields(ada.initial_state(trainer.ada_schedule)))


def check_trees(ours, fixture, prefix, network, **tolerance):
  """Our tree against the fixture's `prefix`Model.<name> arrays, leaf by leaf."""
  expected = flax.traverse_util.flatten_dict(tree(fixture, prefix, network))
  for path, value in flax.traverse_util.flatten_dict(ours).items():
    np.testing.assert_allclose(value, expected[path], err_msg=f'{prefix} {path}', **tolerance)


@pytest.mark.slow  # compiles second-order gradients of grouped convolutions
def test_two_training_iterations_equal_the_reference():
  fixture, generator, discriminator, _, _ = test_r3gan.reference('uncond')
  trainer, update = fixture_trainer()
  with open(FACTS) as file:
    facts = json.load(file)['loop']
  for run in RUNS:
    scalars = facts[RUNS[run]]
    real = jnp.stack([nhwc(fixture[f'{run}/{phase}_phase/real']) for phase in 'DG'])
    latents = jnp.stack([jnp.asarray(fixture[f'{run}/{phase}_phase/z']) for phase in 'DG'])
    state, metrics = update(starting_state(run), real, latents, jax.random.key(0))
    assert int(state.step) == scalars['cur_nimg_after'] // 4 and metrics['params_finite']
    # The losses and penalties: means of the reference's two chunks of 2 per phase.
    for name, key in (('d_loss', 'D_round{}/adv'), ('r1', 'D_round{}/R1'),
                      ('r2', 'D_round{}/R2'), ('g_loss', 'G_round{}/adv')):
      expected = np.mean([fixture[f'{run}/{key.format(r)}'] for r in (0, 1)])
      np.testing.assert_allclose(metrics[name], expected, rtol=1e-5, err_msg=f'{run} {name}')
    for opt, name, network in ((state.g_opt_state, 'G', generator),
                               (state.d_opt_state, 'D', discriminator)):
      # This step's learning rate and beta2, set on the optimiser from the image count.
      np.testing.assert_allclose(opt.hyperparams['learning_rate'], scalars['lr'], rtol=1e-6)
      np.testing.assert_allclose(opt.hyperparams['b2'], scalars['beta2'], rtol=1e-6)
      # Adam's moments: m is the gradient it received (beta1 = 0), v the average of its square;
      # each relative to its tensor's largest entry.
      moments = opt.inner_state[0]
      assert int(moments.count) == {'loopA': 1, 'loopB': 2}[run]
      for ours, key, rtol in ((moments.mu, f'{run}/grad/{name}/', 1e-4),
                              (moments.nu, f'{run}/{name}opt/exp_avg_sq/', 1e-3)):
        expected = tree(fixture, key, network)
        for mine, theirs in zip(jax.tree_util.tree_leaves(ours),
                                jax.tree_util.tree_leaves(expected), strict=True):
          np.testing.assert_allclose(mine, theirs, rtol=rtol,
                                     atol=rtol / 10 * np.abs(theirs).max(), err_msg=key)
    # Post-step parameters: Adam's normalised step amplifies float32 round-off where v is tiny
    # (README section 6), so to 1 % of the learning rate.
    atol = 1e-2 * scalars['lr']
    check_trees(state.g_params, fixture, f'{run}/G1/', generator, atol=atol, rtol=0)
    check_trees(state.d_params, fixture, f'{run}/D1/', discriminator, atol=atol, rtol=0)
    if run == 'loopA':  # beta_ema = 0 at 0 images: G_ema is exactly G
      for ours, theirs in zip(jax.tree_util.tree_leaves(state.g_ema_params),
                              jax.tree_util.tree_leaves(state.g_params), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    else:
      check_trees(state.g_ema_params, fixture, 'loopB/G_ema1/', generator, atol=atol, rtol=0)


def test_schedules_at_the_iterations_image_counts_equal_the_reference():
  """The FFHQ-256 config's schedules are the preset's, and evaluated as the step evaluates them
  (float32, from state.step * batch) they give the loop's values of runs A and B."""
  trainer, _ = fixture_trainer()
  preset = r3gan_schedules.PRESETS['FFHQ-256']
  assert trainer.r3gan_schedules[:4] == preset[:4]
  with open(FACTS) as file:
    facts = json.load(file)['loop']
  for scalars in facts.values():
    step = jnp.asarray(scalars['cur_nimg_before'] // 4, jnp.int32)
    values, beta = jax.jit(lambda s: (
        lambda v: (v, r3gan_schedules.ema_beta(v.ema_nimg, 4)))(r3gan_schedules.values_at(
            trainer.r3gan_schedules, s.astype(jnp.float32) * 4)))(step)
    np.testing.assert_allclose(
        [values.learning_rate, values.beta2, values.gamma, values.ema_nimg, beta],
        [scalars[name] for name in ('lr', 'beta2', 'gamma', 'ema_nimg', 'ema_beta')],
        rtol=2e-6)


@pytest.mark.parametrize('module, variant, preset', [
    (ffhq, 'r3gan64', 'FFHQ-64'), (ffhq, 'r3gan256', 'FFHQ-256'), (celeba, 'r3gan', 'FFHQ-64')])
def test_preset_configs_follow_the_reference_tables(module, variant, preset):
  with open(FACTS) as file:
    reference = json.load(file)['presets'][preset]
  config = module.get_config(variant)
  trainer = trainer_lib.make_trainer(config)
  assert trainer.r3gan_schedules[:4] == r3gan_schedules.PRESETS[preset][:4]
  assert trainer.real_batches == 2 and trainer.ema_decay > 0
  # The README's --batch=256 --mirror=1, until the schedules' end; Adam's beta1 0.
  assert (config.train.batch_size, config.data.random_flip) == (reference['batch_size'], True)
  assert config.train.num_steps * config.train.batch_size == 20_000_000
  assert config.optim.b1 == 0.0 and trainer.g_optimizer == trainer.d_optimizer
  assert (test_r3gan.count(r3gan.abstract_params(trainer.generator)),
          test_r3gan.count(r3gan.abstract_params(trainer.discriminator))) == (
              reference['param_counts']['G'], reference['param_counts']['D'])
  # FP16Stages: G's last and D's first stages in bfloat16.
  count = len(trainer.generator.widths)
  for network, name, order in ((trainer.generator, 'G', 1), (trainer.discriminator, 'D', -1)):
    dtypes = r3gan.generator_stage_dtypes(count, network.bf16_stages, network.dtype)[::order]
    assert dtypes == test_r3gan.reference_stage_dtypes(reference['FP16Stages'][name], count)
  # The logged learning rate is the cosine's: base at the first step, final at the end.
  assert optimizers.learning_rates(config, 1) == {'g_learning_rate': 2e-4,
                                                  'd_learning_rate': 2e-4}
  last = optimizers.learning_rates(config, config.train.num_steps + 1)['g_learning_rate']
  assert last == pytest.approx(5e-5, rel=1e-12)
  # --aug=1: NVIDIA's pipe with the reference's settings, p on the preset's cosine.
  assert trainer.augment_pipe == augment_pipe.AugmentSettings(
      **{name: float(value) for name, value in reference['augment_kwargs'].items()})
  aug = reference['aug_scheduler']
  assert trainer.ada_schedule == ada.Schedule(mode='cosine', p=aug['base_value'],
                                              final_p=aug['final_value'],
                                              total_images=aug['total_nimg'])


@pytest.mark.parametrize('changes, message', [
    ({'train.d_steps': 5}, "config.train.d_steps=5 does not apply to R3GAN, whose step has its "
     "own loss, phases and schedules (docs/training.md); use 1."),
    ({'loss.discriminator': 'hinge'}, "config.loss.discriminator='hinge' does not apply to "
     "R3GAN, whose step has its own loss, phases and schedules (docs/training.md); use "
     "'logistic'."),
    ({'augment.p_mode': 'adaptive'}, "config.augment.p_mode='adaptive' does not apply to R3GAN, "
     "whose step schedules the augment pipe's p; use 'cosine' (R3GAN's presets) or 'fixed'."),
    ({'augment.policy': 'color', 'augment.pipe': '', 'augment.pipe_settings': ''},
     "config.augment.policy='color' does not apply to R3GAN, whose step has its own loss, "
     "phases and schedules (docs/training.md); use ''."),
    ({'optim.d_learning_rate': 1e-3}, 'config.optim.d_learning_rate=0.001 differs from '
     'config.optim.g_learning_rate=0.002: R3GAN schedules one learning rate for both networks; '
     'set them equal.'),
])
def test_settings_that_r3gans_step_would_ignore_are_refused(changes, message):
  config = lfw_demo.get_config('r3gan_test')
  for field, value in changes.items():
    section, name = field.split('.')
    config[section][name] = value
  with pytest.raises(UserError) as error:
    config_check.check(config)
  assert str(error.value) == message


def test_the_augment_pipe_may_be_off_or_at_a_fixed_p():
  config = lfw_demo.get_config('r3gan_test')
  config.augment.p_mode = 'fixed'
  config_check.check(config)
  config.augment.update(pipe='', pipe_settings='', p_mode='adaptive')
  config_check.check(config)


def params(state):
  return jax.tree_util.tree_leaves((state.g_params, state.d_params, state.g_ema_params,
                                    state.g_opt_state, state.d_opt_state, state.ada_p))


@pytest.mark.slow
def test_a_short_run_trains_and_reruns_and_resumes_bit_identically(tmp_path):
  config = lfw_demo.get_config('r3gan_test')
  first = loop.train_and_evaluate(config, str(tmp_path / 'a'))
  assert int(first.step) == config.train.num_steps == 2
  # With the preset's augment pipe, p at the end of its cosine over the 16 images.
  assert config.augment.pipe and float(first.ada_p) == pytest.approx(0.3, rel=1e-6)
  # The same config again, stopped after its first step and resumed from that checkpoint.
  config.train.num_steps = 1
  loop.train_and_evaluate(config, str(tmp_path / 'b'))
  config.train.num_steps = 2
  second = loop.train_and_evaluate(config, str(tmp_path / 'b'))
  for ours, rerun in zip(params(first), params(second), strict=True):
    np.testing.assert_array_equal(ours, rerun)
  # The run's initial state, as the loop made it (its program comes from the compilation cache).
  init, _, _ = step_lib.compile_functions(trainer_lib.make_trainer(config), parallel.make_mesh(),
                                          (8, 8, 1))
  initial = init(jax.random.key(config.seed))
  assert all(not np.array_equal(before, after)
             for before, after in zip(jax.tree_util.tree_leaves(initial.d_params),
                                      jax.tree_util.tree_leaves(first.d_params), strict=True))
  # Adam's hyper-parameters of the second step: the cosine at 8 of its 16 images (half-way:
  # the learning rate (2e-3 + 5e-4) / 2).
  np.testing.assert_allclose(first.d_opt_state.hyperparams['learning_rate'], 1.25e-3, rtol=1e-6)
  np.testing.assert_allclose(first.g_opt_state.hyperparams['b2'], 0.945, rtol=1e-6)
  assert (tmp_path / 'a' / 'samples' / 'step_0000002.png').read_bytes() == (
      tmp_path / 'b' / 'samples' / 'step_0000002.png').read_bytes()


@pytest.mark.slow
def test_one_two_and_eight_devices_train_the_same(tmp_path):
  """Eight devices of one image each: R1 and R2 per image, the gradients' and the losses' means
  over the global batch, p scheduled from the global image count."""
  runs = steps_on_meshes.train_on_meshes(tmp_path, 2, 'r3gan_test', timeout=900)
  steps_on_meshes.assert_meshes_agree(runs)
  assert runs['losses_1'].shape == (2, 3)  # d_loss, g_loss, augment_p
  np.testing.assert_allclose(runs['losses_1'][:, 2], [0.0, 0.15], rtol=1e-6)
