"""`python -m facegan_jax.fid A B`: any two image sets (folders, dataset zips, arrays, workdirs)
give `evaluate`'s numbers on the same images; one-line errors for sets that cannot be measured."""

import zipfile

import jax
import numpy as np
import pytest
from PIL import Image

from configs import default
from configs import lfw_demo
from facegan_jax import evaluate
from facegan_jax.data import image_sources
from facegan_jax.metrics import image_sets
from facegan_jax.sampling import generation
from facegan_jax.system.errors import UserError
from facegan_jax.training import loop
from tests.conftest import TINY
from tests.helpers import multidevice

MEASURES = ('fid', 'kid', 'precision', 'recall', 'density', 'coverage')


def tiny_eval(tiny_weights, stats_dir):
  """config.eval of the tests' small random Inception, for sets of 24 images."""
  eval_config = default.get_config().eval
  eval_config.update(num_samples=24, batch_size=8, inception_weights=tiny_weights,
                     inception_width_multiplier=TINY, stats_dir=str(stats_dir), kid_subsets=3,
                     kid_subset_size=16)
  return eval_config


def write_pngs(folder, images):
  folder.mkdir(parents=True, exist_ok=True)
  for index, image in enumerate(images):
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
        folder / f'{index:05d}.png')


@pytest.mark.slow
def test_every_kind_of_set_gives_the_numbers_of_evaluate(tiny_weights, tmp_path):
  config = lfw_demo.get_config('test')
  config.eval = tiny_eval(tiny_weights, tmp_path / 'stats')  # every = 0: evaluated afterwards
  workdir = str(tmp_path / 'run')
  loop.train_and_evaluate(config, workdir)
  evaluated = evaluate.evaluate_checkpoint(workdir)

  real = image_sources.load_images(config)[:24]  # evaluate's real side: the first 24
  np.save(tmp_path / 'real.npy', real)
  write_pngs(tmp_path / 'real_pngs', real)
  with zipfile.ZipFile(tmp_path / 'real.zip', 'w') as archive:
    for path in sorted((tmp_path / 'real_pngs').iterdir()):
      archive.write(path, f'00000/img{path.stem}.png')
  restored = generation.RestoredGenerator(workdir)
  latents = image_sets.fid.eval_latents(config.seed, 24, config.model.latent_dim)
  generated = np.asarray(jax.jit(lambda z: generation.generate(
      restored.generator, restored.variables, z))(latents))  # float in [-1, 1]
  np.savez(tmp_path / 'generated.npz', images=generated, other=np.zeros(3))

  eval_config = tiny_eval(tiny_weights, tmp_path / 'stats')
  compare = lambda a, b: image_sets.compare_locations(str(a), str(b), eval_config)
  from_arrays = compare(tmp_path / 'real.npy', workdir)
  assert from_arrays['num_a'] == from_arrays['num_b'] == 24
  for name in MEASURES:  # the very features of evaluate: equal
    assert from_arrays[name] == pytest.approx(evaluated[name], rel=1e-6, abs=1e-9), name
  # Grayscale PNGs decode to RGB: the Inception repeats gray to RGB, so the features agree.
  from_pngs = compare(tmp_path / 'real_pngs', workdir)
  from_zip = compare(tmp_path / 'real.zip', workdir)
  for name in MEASURES:
    assert from_pngs[name] == pytest.approx(evaluated[name], rel=1e-5, abs=1e-7), name
    assert from_zip[name] == from_pngs[name], name
  # The generator's output saved as floats and quantised on the host: the same pixels, up to
  # the rare pixel that a separately compiled G rounds the other way.
  from_npz = compare(tmp_path / 'real.npy', tmp_path / 'generated.npz')
  assert from_npz['fid'] == pytest.approx(evaluated['fid'], rel=1e-3)
  # Features are cached by content: evaluate's real side, then one file each for the pixels
  # of real.npy (1 channel), of the PNGs and the zip (the same RGB pixels) and of generated.npz.
  assert len(list((tmp_path / 'stats').glob('*.npz'))) == 4


def test_resolution_resizes_each_set_and_sizes_must_otherwise_agree(tmp_path):
  rng = np.random.default_rng(0)
  write_pngs(tmp_path / 'mixed', [rng.integers(0, 256, (20, 20, 3), np.uint8),
                                  rng.integers(0, 256, (24, 30, 3), np.uint8)])
  with pytest.raises(UserError, match=r"^A holds images of several sizes \('00000.png': 20x20, "
                     r"'00001.png': 24x30\); pass --resolution=R"):
    image_sets.load(str(tmp_path / 'mixed'), 'A')
  resized = image_sets.load(str(tmp_path / 'mixed'), 'A', resolution=8)
  assert resized.images.shape == (2, 8, 8, 3) and resized.kind == 'folder'
  np.save(tmp_path / 'gray.npy', rng.integers(0, 256, (3, 10, 12, 1), np.uint8))
  assert image_sets.load(str(tmp_path / 'gray.npy'), 'B', resolution=8,
                         num=2).images.shape == (2, 8, 8, 1)


@pytest.mark.slow
def test_sets_that_cannot_be_measured_are_one_line_errors(tiny_weights, tmp_path):
  eval_config = tiny_eval(tiny_weights, tmp_path / 'stats')
  rng = np.random.default_rng(1)
  write_pngs(tmp_path / 'ten', rng.integers(0, 256, (10, 8, 8, 3), np.uint8))
  write_pngs(tmp_path / 'twenty', rng.integers(0, 256, (20, 8, 8, 3), np.uint8))
  (tmp_path / 'empty').mkdir()
  write_pngs(tmp_path / 'broken', rng.integers(0, 256, (2, 8, 8, 3), np.uint8))
  (tmp_path / 'broken' / '00002.png').write_bytes(b'\x89PNG truncated')
  (tmp_path / 'notes.txt').write_text('not images')
  np.save(tmp_path / 'flat.npy', np.zeros((4, 64), np.uint8))
  np.save(tmp_path / 'pixels.npy', np.full((4, 8, 8, 3), 200.0, np.float32))
  cases = {
      (tmp_path / 'nope', tmp_path / 'twenty'): r"^A='.*/nope' does not exist; give a folder",
      (tmp_path / 'twenty', tmp_path / 'empty'): r"^B='.*/empty' holds no .jpg, .jpeg or .png",
      (tmp_path / 'broken', tmp_path / 'twenty'): r"^A: '00002.png' is not a readable image",
      (tmp_path / 'notes.txt', tmp_path / 'twenty'): r"^A='.*notes.txt' is a file that is not",
      (tmp_path / 'twenty', tmp_path / 'ten'): (r"^B='.*/ten' has 10 images, fewer than KID's "
                                                r'subset size 16; pass --kid_subset_size=10'),
      (tmp_path / 'flat.npy', tmp_path / 'ten'): r"^A='.*flat.npy' has shape \(4, 64\); use",
      (tmp_path / 'pixels.npy', tmp_path / 'ten'): r"^A='.*pixels.npy' is float with values "
                                                    r'outside \[-1, 1\]',
  }
  for (a, b), message in cases.items():
    with pytest.raises(UserError, match=message) as error:
      image_sets.compare_locations(str(a), str(b), eval_config)
    assert '\n' not in str(error.value)


def test_the_command_prints_one_line_and_exits_1_on_a_bad_set(tmp_path):
  result = multidevice.run_python(['-m', 'facegan_jax.fid', str(tmp_path / 'a'),
                                   str(tmp_path)])
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      f"error: A='{tmp_path / 'a'}' does not exist; give a folder of images, a dataset .zip, a "
      '.npy/.npz array or a training workdir.')
