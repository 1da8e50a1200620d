"""StyleGAN2's training recipe in the train step: every phase runs (lazy R1 and path length with
their own Adam steps, the w average, the EMA ramp-up); its sampling tools; NVIDIA's networks as a
run; 1 = 2 = 8 devices. Resume after SIGKILL, with DiffAugment: tests/test_checkpointing.py."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

from configs import lfw_demo
from facegan_jax import evaluate
from facegan_jax.data import images as images_lib
from facegan_jax.pretrained import convert_stylegan2
from facegan_jax.runs import checkpointing
from facegan_jax.sampling import generation
from facegan_jax.system import parallel
from facegan_jax.system.errors import UserError
from facegan_jax.training import ema
from facegan_jax.training import loop
from facegan_jax.training import optimizers
from facegan_jax.training import state as state_lib
from facegan_jax.training import trainer as trainer_lib
from tests.conftest import TINY
from tests.helpers import multidevice
from tests.helpers import steps_on_meshes
from tests.helpers import reference_arrays
from tests import test_train


def tiny_config():
  return lfw_demo.get_config('stylegan2_test')


def every_leaf(state):
  return [np.asarray(x) for x in jax.tree_util.tree_leaves(
      (state.g_params, state.g_batch_stats, state.d_params, state.g_opt_state,
       state.d_opt_state, state.g_ema_params, state.pl_mean))]


def test_a_step_runs_every_phase_and_lazy_ones_only_on_their_steps():
  state, step_fn, batches, mesh = test_train.compiled_step(tiny_config())
  w_avg = np.asarray(state.g_batch_stats['mapping']['w_avg'])
  state, metrics = step_fn(state, parallel.host_batch_to_global(next(batches), mesh))
  assert float(metrics['r1']) > 0 and float(metrics['path_length']) > 0
  assert float(state.pl_mean) == pytest.approx(0.01 * float(metrics['path_length']), rel=1e-5)
  assert not np.array_equal(state.g_batch_stats['mapping']['w_avg'], w_avg)
  # Step 0 is a regularisation step: each network took its main and its regulariser's step.
  assert int(state.d_opt_state[0].count) == 2 and int(state.g_opt_state[0].count) == 2
  # The ramp-up makes the first EMA the weights themselves.
  for a, b in zip(jax.tree_util.tree_leaves(state.g_ema_params),
                  jax.tree_util.tree_leaves(state.g_params)):
    np.testing.assert_array_equal(a, b)
  pl_mean = float(state.pl_mean)
  state, metrics = step_fn(state, parallel.host_batch_to_global(next(batches), mesh))
  assert float(metrics['r1']) == 0 and float(metrics['path_length']) == 0
  assert float(state.pl_mean) == pl_mean
  assert int(state.d_opt_state[0].count) == 3 and int(state.g_opt_state[0].count) == 3
  assert all(np.isfinite(x).all() for x in every_leaf(state))


def test_generator_first_lets_the_discriminator_see_the_updated_generator():
  """NVIDIA's phase order: G's update (with D as it was), then D's on fakes of the new G. So D
  after a G-first step is D after a D-first step (each phase on latents of its own, the same D
  latents) started from the G that the G-first step made."""
  config = tiny_config()
  assert config.train.generator_first
  state, generator_first_step, batches, mesh = test_train.compiled_step(config)
  batch = parallel.host_batch_to_global(next(batches), mesh)
  after, _ = generator_first_step(state, batch)
  config.train.update(generator_first=False, fresh_generator_pass=True)
  state, discriminator_first_step, _, _ = test_train.compiled_step(config)
  reference, _ = discriminator_first_step(state.replace(g_params=jax.device_get(after.g_params)),
                                          batch)
  for ours, theirs in zip(jax.tree_util.tree_leaves(after.d_params),
                          jax.tree_util.tree_leaves(reference.d_params), strict=True):
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_lazy_adam_scales_the_learning_rate_and_betas_as_stylegan2():
  config = tiny_config()
  config.optim.update(b1=0.0, b2=0.99)
  params = {'w': jnp.zeros(3)}
  grads = {'w': jnp.array([1.0, -2.0, 0.5])}
  for every, ratio in ((1, 1.0), (16, 16 / 17), (4, 4 / 5)):
    optimizer = optimizers.make_adam(config, 0.0025, 1, every)
    updates, state = optimizer.update(grads, optimizer.init(params), params)
    # Adam's first step with beta1 = 0 moves each weight by the learning rate.
    np.testing.assert_allclose(updates['w'], -0.0025 * ratio * np.sign(grads['w']), rtol=1e-5)
    updates, _ = optimizer.update(grads, state, params)
    reference = optax.scale_by_adam(b1=0.0, b2=0.99**ratio)
    expected, _ = reference.update(grads, reference.update(grads, reference.init(params))[1])
    np.testing.assert_allclose(updates['w'], -0.0025 * ratio * expected['w'], rtol=1e-5)
  # The trainer gives D the ratio of R1's interval and G that of the path length's.
  config.loss.update(r1_every=16, pl_every=4)
  config.optim.g_learning_rate = config.optim.d_learning_rate = 0.0025
  trainer = trainer_lib.make_trainer(config)
  for optimizer, ratio in ((trainer.d_optimizer, 16 / 17), (trainer.g_optimizer, 4 / 5)):
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    np.testing.assert_allclose(updates['w'], -0.0025 * ratio * np.sign(grads['w']), rtol=1e-5)


def test_ema_ramp_up_caps_the_half_life_by_the_images_seen():
  decay = ema.decay_per_step(32, 10_000)
  assert float(ema.ramped_decay(decay, 32, 0.05, 0)) == 0.0
  # After 64,000 images the cap is 3,200 images.
  assert float(ema.ramped_decay(decay, 32, 0.05, 64_000)) == pytest.approx(0.5 ** (32 / 3200))
  assert float(ema.ramped_decay(decay, 32, 0.05, 10**7)) == pytest.approx(decay)


def test_path_length_regularisation_needs_a_style_based_generator():
  config = lfw_demo.get_config('test')
  config.loss.pl_weight = 2.0
  with pytest.raises(UserError, match=r"config.loss.pl_weight=2.0 needs a style-based generator"):
    trainer_lib.make_trainer(config)


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
  """(workdir, config, final state) of 2 steps of `tiny_config`, evaluable with the tiny
  Inception of conftest."""
  workdir = str(tmp_path_factory.mktemp('tiny_run'))
  config = tiny_config()
  config.train.num_steps = 2
  config.eval.inception_width_multiplier = TINY
  return workdir, config, loop.train_and_evaluate(config, workdir)


def test_sampler_and_evaluation_truncate_towards_the_tracked_w_average(tiny_run, tiny_weights):
  workdir, config, state = tiny_run
  plain = generation.RestoredGenerator(workdir)
  truncated = generation.RestoredGenerator(workdir, truncation=0.0)
  latents = plain.seed_latents(0, 4)
  images = truncated.images(latents)
  # psi = 0: every sample is the image of the average w (constant noise).
  assert all(np.array_equal(images[0], image) for image in images[1:])
  trainer = trainer_lib.make_trainer(config)
  average = trainer.generator.apply(
      {'params': state.g_ema_params, 'batch_stats': state.g_batch_stats},
      state.g_batch_stats['mapping']['w_avg'][None, None].repeat(4, 1), method='synthesize')
  np.testing.assert_array_equal(images[0], images_lib.to_uint8(np.asarray(average))[0])
  assert not np.array_equal(plain.images(latents)[0], plain.images(latents)[1])
  # FID and the rest of a truncated generator: psi = 0 makes the 8 samples one image, so either
  # all of them or none lie on the real faces' manifold.
  results = {psi: evaluate.evaluate_checkpoint(workdir, num_samples=8,
                                               inception_weights=tiny_weights, truncation=psi)
             for psi in (1.0, 0.0)}
  assert results[0.0]['truncation'] == 0.0 and results[1.0]['truncation'] == 1.0
  assert results[0.0]['precision'] in (0.0, 1.0) and results[0.0]['kid'] != results[1.0]['kid']


def test_style_mixing_takes_the_chosen_layers_from_the_column_seeds(tiny_run):
  restored = generation.RestoredGenerator(tiny_run[0])
  rows, columns = [1, 2], [3, 4, 5]
  layers = restored.styles(restored.seed_latents(0, 1)).shape[1]
  figures = {name: generation.style_mixing_grid(restored, rows, columns, chosen)
             for name, chosen in (('all', range(layers)), ('none', []), ('coarse', [0, 1]))}
  width = 1 + len(columns)
  for name, figure in figures.items():
    assert figure.shape[0] == (1 + len(rows)) * width and not figure[0].any()
    for row in range(1, 1 + len(rows)):
      cells = figure[row * width + 1:(row + 1) * width]
      if name == 'all':  # every style from the column seed: its image
        np.testing.assert_array_equal(cells, figure[1:width])
      elif name == 'none':  # no style from it: the row seed's image
        np.testing.assert_array_equal(cells, np.broadcast_to(figure[row * width], cells.shape))
      else:  # the coarse layers from the column seed: neither image
        assert not any(np.array_equal(cell, figure[column + 1]) or
                       np.array_equal(cell, figure[row * width])
                       for column, cell in enumerate(cells))
  # The figure's images are the sampler's (another compiled program: round-off aside).
  plain = restored.images(restored.first_latents(columns))
  assert np.abs(plain.astype(int) - figures['all'][1:width]).max() <= 1


def test_interpolation_in_w_is_linear_and_ends_at_the_seeds_styles(tiny_run, tmp_path):
  restored = generation.RestoredGenerator(tiny_run[0])
  seeds = [1, 2, 3]
  ws = np.asarray(generation.interpolation_styles(restored, seeds, 5))
  ends = np.asarray(restored.styles(restored.first_latents(seeds)))
  np.testing.assert_array_equal(ws[[0, 4, 5, 9]], ends[[0, 1, 1, 2]])
  np.testing.assert_allclose(ws[2], (ends[0] + ends[1]) / 2, rtol=1e-6, atol=1e-6)
  # The command writes both figures.
  result = multidevice.run_python([
      '-m', 'facegan_jax.sample', f'--workdir={tiny_run[0]}', '--num=4', '--truncation=0.7',
      f'--out={tmp_path / "grid.png"}', '--interpolate=1,2', '--interpolate_in=w', '--frames=5',
      f'--interpolation_out={tmp_path / "w.png"}', '--mixing_rows=1,2', '--mixing_columns=3,4,5',
      f'--mixing_out={tmp_path / "mixing.png"}'])
  assert result.returncode == 0, result.stderr[-3000:]
  # 16x16 images with 2-pixel borders: 1 x 5 frames, and 3 x 4 cells.
  with Image.open(tmp_path / 'w.png') as strip, Image.open(tmp_path / 'mixing.png') as figure:
    assert (strip.height, strip.width, figure.height, figure.width) == (20, 92, 56, 74)
  # The grid is of the truncated generator.
  truncated = generation.RestoredGenerator(tiny_run[0], truncation=0.7)
  expected = images_lib.make_grid(truncated.images(truncated.seed_latents(0, 4)))
  with Image.open(tmp_path / 'grid.png') as grid:
    written = np.asarray(grid).reshape(expected.shape).astype(int)
  assert np.abs(written - expected).max() <= 1
  untruncated = images_lib.make_grid(restored.images(restored.seed_latents(0, 4)))
  assert np.abs(written - untruncated).max() > 1


def test_truncation_of_a_dcgan_run_is_a_clear_error(tmp_path):
  config = lfw_demo.get_config('test')
  config.train.num_steps = 1
  loop.train_and_evaluate(config, str(tmp_path))
  with pytest.raises(UserError, match=r"--truncation=0.7 needs a StyleGAN2 run; this one is "
                     r"'dcgan'"):
    generation.RestoredGenerator(str(tmp_path), truncation=0.7)


@pytest.mark.slow
def test_one_two_and_eight_devices_train_the_same(tmp_path):
  """Eight devices share a batch of 8 and the path-length phase's 4 latents."""
  runs = steps_on_meshes.train_on_meshes(tmp_path, 2, 'stylegan2_test', timeout=900)
  steps_on_meshes.assert_meshes_agree(runs)
  assert not np.allclose(runs['losses_1'][0], runs['losses_1'][-1])  # training moved


# The fixture networks of tests/data/stylegan2_32_small.npz in the LFW demo's recipe.
FIXTURE_MODEL = {f'model.{field}': value for field, value in dict(
    resolution=32, channels=3, channel_base=1024, channel_max=64, mapping_layers=2,
    latent_dim=64, w_dim=64).items()}
# Runs a module as `python -m` would, with PyTorch made unimportable.
WITHOUT_TORCH = ("import runpy, sys; sys.modules['torch'] = None; "
                 "runpy.run_module(sys.argv.pop(1), run_name='__main__')")


def test_nvidia_networks_become_a_run_to_sample_and_fine_tune_without_pytorch(tmp_path):
  fixture = reference_arrays.load('stylegan2_32_small.npz')
  generator_arrays = {key[2:]: value for key, value in fixture.items() if key.startswith('G/')}
  # G_ema/ holds the reference generator; G/ the same with the first mapping layer zeroed, so
  # that the run's sampling weights (the EMA's) and its trained weights can be told apart.
  weights = tmp_path / 'nvidia.npz'
  np.savez(weights, **{f'D/{key[2:]}': value for key, value in fixture.items()
                       if key.startswith('D/')},
           **{f'G_ema/{name}': value for name, value in generator_arrays.items()},
           **{f'G/{name}': value * (name != 'mapping.fc0.weight')
              for name, value in generator_arrays.items()})
  faces = tmp_path / 'faces'  # RGB images to fine-tune on (the LFW faces are grayscale)
  faces.mkdir()
  for index, image in enumerate(np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3))):
    Image.fromarray(image.astype(np.uint8)).save(faces / f'{index}.png')
  fields = dict(FIXTURE_MODEL, **{'data.source': 'folder', 'data.path': str(faces),
                                  'data.crop': 0, 'data.cache_dir': str(tmp_path / 'cache'),
                                  # a step without the regularisers compiles in a third of the time
                                  'loss.r1_gamma': 0.0, 'loss.pl_weight': 0.0})
  workdir = tmp_path / 'run'
  overrides = [f'--config.{field}={value}' for field, value in fields.items()]
  convert = ['-c', WITHOUT_TORCH, 'facegan_jax.import_stylegan2', f'--weights={weights}',
             '--config=configs/lfw_demo.py:stylegan2_test', *overrides, f'--workdir={workdir}']
  converted = multidevice.run_python(convert)
  assert converted.returncode == 0, converted.stderr[-3000:]
  checkpoint = workdir / 'checkpoints' / '0'
  written = sorted((path, path.stat().st_mtime_ns) for path in checkpoint.rglob('*'))

  config = tiny_config()
  for field, value in fields.items():
    section, name = field.split('.')
    config[section][name] = value
  with pytest.raises(UserError, match=re.escape(
      f'{workdir} already holds checkpoints (steps 0); choose a new --workdir for the '
      'converted networks.')):
    convert_stylegan2.write_workdir(config, str(weights), str(workdir))
  assert sorted((path, path.stat().st_mtime_ns) for path in checkpoint.rglob('*')) == written

  sampled = multidevice.run_python(['-c', WITHOUT_TORCH, 'facegan_jax.sample',
                                    f'--workdir={workdir}', '--num=4',
                                    f'--out={tmp_path / "grid.png"}'])
  assert sampled.returncode == 0, sampled.stderr[-3000:]
  assert Image.open(tmp_path / 'grid.png').size == (2 * 32 + 3 * 2, 2 * 32 + 3 * 2)
  restored = generation.RestoredGenerator(str(workdir))
  ours = restored.images(jnp.asarray(fixture['in/z'])).astype(int)
  expected = images_lib.to_uint8(fixture['out/img_const_psi1'].transpose(0, 2, 3, 1))
  assert np.abs(ours - expected).max() <= 1

  config.train.num_steps = 1
  abstract = jax.eval_shape(lambda: state_lib.create_train_state(
      trainer_lib.make_trainer(config), jax.random.key(0), (32, 32, 3)))
  with checkpointing.make_manager(str(workdir), create=False) as manager:
    start = checkpointing.restore_fields(manager, 0, {'g_params': abstract.g_params,
                                                      'd_params': abstract.d_params})
  jax.tree.map(np.testing.assert_array_equal, start['d_params'],
               convert_stylegan2.convert_state_dict(fixture, 'D/')['params'])
  assert not np.asarray(start['g_params']['mapping']['fc0']['weight']).any()
  state = loop.train_and_evaluate(config, str(workdir))  # fine-tunes from step 0
  assert int(state.step) == 1
  assert np.asarray(state.g_params['mapping']['fc0']['weight']).any()
