"""Conditional DCGAN and SNGAN training from a labelled dataset zip (data the tests make): the
step passes the real labels to D and labels drawn from the training labels to G and D."""

import io
import json
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs import lfw_demo
from facegan_jax import evaluate
from facegan_jax.sampling import generation
from facegan_jax.system.errors import UserError
from facegan_jax.training import loop
from facegan_jax.training import state as state_lib
from facegan_jax.training import step as step_lib
from facegan_jax.training import trainer as trainer_lib
from tests.conftest import TINY


def labelled_zip(path, count=32, size=32):
  """Dark faces (class 0) and light faces (class 1) in dataset_tool.py's layout."""
  rng = np.random.default_rng(0)
  names = [f'00000/img{i:08d}.png' for i in range(count)]
  with zipfile.ZipFile(path, 'w') as archive:
    for i, name in enumerate(names):
      level = 60 if i % 2 == 0 else 190
      pixels = np.clip(rng.normal(level, 20, (size, size)), 0, 255).astype(np.uint8)
      encoded = io.BytesIO()
      Image.fromarray(pixels).save(encoded, format='PNG')
      archive.writestr(name, encoded.getvalue())
    archive.writestr('dataset.json', json.dumps({'labels': [[n, i % 2] for i, n in
                                                            enumerate(names)]}))
  return str(path)


def test_generated_labels_are_each_updates_real_labels_in_another_order():
  real = jnp.eye(4)[jnp.array([[0, 1, 2, 3, 3, 3], [2, 2, 1, 0, 0, 1]])]  # [d_steps, B, 4]
  drawn = step_lib.generated_labels(jax.random.key(0), real)
  assert drawn.shape == real.shape
  for update in range(2):
    assert sorted(map(tuple, np.asarray(drawn[update]).tolist())) == sorted(
        map(tuple, np.asarray(real[update]).tolist()))
  assert not np.array_equal(drawn, real)
  rows = generation.draw_labels(jax.random.key(1), np.eye(3, dtype=np.float32)[[0, 0, 2]], 50)
  assert rows.shape == (50, 3) and set(rows.argmax(1)) == {0, 2}  # only the training labels


@pytest.mark.slow
@pytest.mark.parametrize('variant', ['test', 'sngan_test'])
def test_a_conditional_run_trains_on_labelled_data(tmp_path, variant, tiny_weights):
  config = lfw_demo.get_config(variant)
  config.data.update(source='zip', path=labelled_zip(tmp_path / 'faces.zip'), crop=0,
                     labels='dataset_json', cache_dir=str(tmp_path / 'cache'))
  config.model.c_dim = 2
  if variant == 'test':  # FID of generated images whose labels are drawn from the data's
    config.eval.update(every=4, num_samples=24, batch_size=8, inception_weights=tiny_weights,
                       inception_width_multiplier=TINY, stats_dir=str(tmp_path / 'stats'),
                       kid_subsets=2, kid_subset_size=16)
  state = loop.train_and_evaluate(config, str(tmp_path / 'run'))
  if variant == 'test':
    logged = [json.loads(line) for line in (tmp_path / 'run' / 'metrics.jsonl').read_text()
              .splitlines()]
    assert [np.isfinite(line['fid']) for line in logged if 'fid' in line] == [True]
  assert int(state.step) == config.train.num_steps
  embedding = 'projection' if variant == 'test' else 'l_y'
  assert state.d_params[embedding]['kernel'].shape[0] == 2
  assert (tmp_path / 'run' / 'samples' / f'step_{config.train.num_steps:07d}.png').exists()
  # Training moved the label embedding: D's gradients reach it through the labels.
  initial = state_lib.create_train_state(trainer_lib.make_trainer(config),
                                         jax.random.key(config.seed), (32, 32, 1))
  assert not np.allclose(state.d_params[embedding]['kernel'],
                         initial.d_params[embedding]['kernel'])


@pytest.mark.slow
def test_a_conditional_runs_generator_samples_a_class_and_evaluate_refuses_it(tmp_path):
  config = lfw_demo.get_config('test')
  config.data.update(source='zip', path=labelled_zip(tmp_path / 'faces.zip'), crop=0,
                     labels='dataset_json', cache_dir=str(tmp_path / 'cache'))
  config.model.c_dim = 2
  config.train.num_steps = 1
  workdir = str(tmp_path / 'run')
  loop.train_and_evaluate(config, workdir)
  dark, light = (generation.RestoredGenerator(workdir, class_index=k) for k in (0, 1))
  z = dark.seed_latents(0, 4)
  assert not np.array_equal(dark.images(z), light.images(z))  # the label reaches the images
  with pytest.raises(UserError, match=r'^this run is conditional \(2 classes\): choose one with '
                     r'--class=K, K in 0..1.$'):
    generation.RestoredGenerator(workdir)
  with pytest.raises(UserError, match=r'is a conditional run: evaluate does not draw its labels '
                     r'yet; its FID during training \(config.eval.every\) draws them'):
    evaluate.restore(workdir)
