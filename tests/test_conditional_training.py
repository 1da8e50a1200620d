"""Conditional DCGAN, SNGAN, StyleGAN2 and R3GAN training from a labelled dataset zip (data the
tests make): the step passes the real labels to D and labels drawn from the training labels to G
and D (and StyleGAN2's path-length phase); R3GAN's step gives each phase's fakes the labels of the
reals they are paired with; sampling and evaluating such a run."""

import functools
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
from facegan_jax import models
from facegan_jax.metrics import ppl
from facegan_jax.sampling import generation
from facegan_jax.sampling import labels as labels_lib
from facegan_jax.system.errors import UserError
from facegan_jax.training import loop
from facegan_jax.training import r3gan_loss
from facegan_jax.training import r3gan_step
from facegan_jax.training import state as state_lib
from facegan_jax.training import step as step_lib
from facegan_jax.training import trainer as trainer_lib
from tests.conftest import TINY


def labelled_zip(path, count=32, size=32, classes=2, channels=1):
  """Images of `classes` brightness levels (class 0 the darkest), image i of class i % classes,
  in dataset_tool.py's layout."""
  rng = np.random.default_rng(0)
  names = [f'00000/img{i:08d}.png' for i in range(count)]
  levels = np.linspace(60, 190, classes)
  shape = (size, size) if channels == 1 else (size, size, channels)
  with zipfile.ZipFile(path, 'w') as archive:
    for i, name in enumerate(names):
      pixels = np.clip(rng.normal(levels[i % classes], 20, shape), 0, 255).astype(np.uint8)
      encoded = io.BytesIO()
      Image.fromarray(pixels).save(encoded, format='PNG')
      archive.writestr(name, encoded.getvalue())
    archive.writestr('dataset.json', json.dumps({'labels': [[n, i % classes] for i, n in
                                                            enumerate(names)]}))
  return str(path)


def labelled_config(tmp_path, variant='test'):
  """lfw_demo's `variant`, conditional on a labelled zip of two classes."""
  config = lfw_demo.get_config(variant)
  config.data.update(source='zip', path=labelled_zip(tmp_path / 'faces.zip'), crop=0,
                     labels='dataset_json', cache_dir=str(tmp_path / 'cache'))
  config.model.c_dim = 2
  return config


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
@pytest.mark.parametrize('variant', ['test', 'sngan_test', 'stylegan2_test', 'r3gan_test'])
def test_a_conditional_run_trains_on_labelled_data(tmp_path, variant, tiny_weights):
  config = labelled_config(tmp_path, variant)
  if variant == 'test':  # FID of generated images whose labels are drawn from the data's
    config.eval.update(every=4, num_samples=24, batch_size=8, inception_weights=tiny_weights,
                       inception_width_multiplier=TINY, stats_dir=str(tmp_path / 'stats'),
                       kid_subsets=2, kid_subset_size=16)
  state = loop.train_and_evaluate(config, str(tmp_path / 'run'))
  if variant == 'test':
    logged = [json.loads(line) for line in (tmp_path / 'run' / 'metrics.jsonl').read_text()
              .splitlines()]
    assert [np.isfinite(line['fid']) for line in logged if 'fid' in line] == [True]
    # evaluate draws the labels as training's FID does: the same latents, labels and score.
    scores = evaluate.evaluate_checkpoint(str(tmp_path / 'run'))
    assert scores['fid'] == pytest.approx([line['fid'] for line in logged if 'fid' in line][0],
                                         rel=1e-5)
  assert int(state.step) == config.train.num_steps
  # The label embeddings' paths: D's, and G's where G embeds the labels with a kernel.
  d_embedding, g_embedding = {
      'test': (('projection', 'kernel'), None), 'sngan_test': (('l_y', 'kernel'), None),
      'stylegan2_test': (('mapping', 'embed', 'weight'),) * 2,
      'r3gan_test': (('embedding', 'kernel'),) * 2}[variant]
  at = lambda path, params: functools.reduce(lambda tree, name: tree[name], path, params)
  assert at(d_embedding, state.d_params).shape[0] == 2
  assert (tmp_path / 'run' / 'samples' / f'step_{config.train.num_steps:07d}.png').exists()
  # Training moved the label embeddings: the gradients reach them through the labels.
  initial = state_lib.create_train_state(trainer_lib.make_trainer(config),
                                         jax.random.key(config.seed),
                                         models.image_shape(config.model))
  assert not np.allclose(at(d_embedding, state.d_params), at(d_embedding, initial.d_params))
  if g_embedding:
    assert not np.allclose(at(g_embedding, state.g_params), at(g_embedding, initial.g_params))


@pytest.mark.slow
def test_a_conditional_run_resumes_bit_identically(tmp_path):
  """Stopped at step 2 and resumed, the labels of steps 3 and 4 (real and drawn) are those of an
  uninterrupted run: the same parameters and sample grid."""
  config = labelled_config(tmp_path)
  whole = loop.train_and_evaluate(config, str(tmp_path / 'whole'))
  config.train.num_steps = 2
  loop.train_and_evaluate(config, str(tmp_path / 'resumed'))
  config.train.num_steps = 4
  resumed = loop.train_and_evaluate(config, str(tmp_path / 'resumed'))
  for ours, theirs in zip(jax.tree_util.tree_leaves((whole.g_params, whole.d_params)),
                          jax.tree_util.tree_leaves((resumed.g_params, resumed.d_params)),
                          strict=True):
    np.testing.assert_array_equal(ours, theirs)
  grid = lambda run: (tmp_path / run / 'samples' / 'step_0000004.png').read_bytes()
  assert grid('whole') == grid('resumed')


def test_stylegan2s_path_length_phase_sees_the_g_labels():
  config = lfw_demo.get_config('stylegan2_test')
  config.model.c_dim = 2
  trainer = trainer_lib.make_trainer(config)
  state = state_lib.create_train_state(trainer, jax.random.key(0),
                                       models.image_shape(config.model))
  labels = jnp.eye(2)[jnp.array([0, 1] * (config.train.batch_size // 2))]
  lengths = [step_lib._path_length_update(  # pylint: disable=protected-access
      trainer, state, config.train.batch_size, jax.random.key(1), c)[1]
             for c in (labels, 1 - labels, None)]
  assert lengths[0] != lengths[1] and np.isfinite(lengths).all()


@pytest.mark.slow
def test_a_class_runs_samples_take_the_classes_asked_for_or_drawn_labels(tmp_path):
  config = labelled_config(tmp_path)
  config.train.num_steps = 1
  workdir = str(tmp_path / 'run')
  loop.train_and_evaluate(config, workdir)
  restored = generation.RestoredGenerator(workdir)
  z = restored.seed_latents(0, 4)
  dark, light = (restored.images(z, np.eye(2, dtype=np.float32)[[k] * 4]) for k in (0, 1))
  assert not np.array_equal(dark, light)  # the label reaches the images
  # Two classes: a row each, the same latents in both rows.
  latents, labels, columns = labels_lib.grid_inputs(restored, 8, 0, [1, 0], None)
  assert columns == 4 and restored.label.tolist() == [0.0, 1.0]
  np.testing.assert_array_equal(latents, np.tile(z, (2, 1)))
  assert labels.argmax(1).tolist() == [1] * 4 + [0] * 4
  np.testing.assert_array_equal(restored.images(latents, labels), np.concatenate([light, dark]))
  # No class: labels drawn from the training labels, both classes among 16 draws.
  _, drawn, columns = labels_lib.grid_inputs(restored, 16, 0, None, None)
  assert columns == 0 and sorted(set(drawn.argmax(1).tolist())) == [0, 1]
  assert set(map(tuple, drawn.tolist())) <= {(1.0, 0.0), (0.0, 1.0)}
  for classes, settings, message in (
      ([2], None, r'^--class=2 is not a class of this run; use 0 to 1.$'),
      ([0], ['Smiling'], r'^--class and --attributes ask for labels of different kinds'),
      ([0, 1, 0], None, r'^--num=2 gives no sample to each of the 3 label settings'),
      (None, ['Smiling'], r"^--attributes=Smiling needs a run trained on CelebA attributes "
                          r"\(config.data.labels='celeba_attributes'\); this one is conditioned "
                          r"on config.data.labels='dataset_json'.$")):
    with pytest.raises(UserError, match=message):
      labels_lib.grid_inputs(restored, 2, 0, classes, settings)
  with pytest.raises(UserError, match=r'^PPL of a conditional run \(config.model.c_dim=2\) is not '
                     r'computed here; leave config.eval.ppl and --ppl off for it.$'):
    ppl.check_applies(restored.config.model, restored.config.eval)


def test_r3gans_step_pairs_each_real_with_a_fake_of_its_labels():
  """D's phase: D(real_0, c_0) against D(G(z_0, c_0), c_0); G's phase, through the updated D:
  D(real_1, c_1) against D(G(z_1, c_1), c_1) (the pipe off: r3gan_augment's tests cover it)."""
  config = lfw_demo.get_config('r3gan_test')
  config.model.c_dim = 2
  trainer = trainer_lib.make_trainer(config).replace(augment_pipe=None)
  state = state_lib.create_train_state(trainer, jax.random.key(0), (8, 8, 1))
  batch = config.train.batch_size
  real = jax.random.uniform(jax.random.key(1), (2, batch, 8, 8, 1), minval=-1, maxval=1)
  latents = jax.random.normal(jax.random.key(2), (2, batch, trainer.latent_dim))
  labels = jnp.eye(2)[jnp.array([[0, 1] * (batch // 2), [0, 0, 1, 1] * (batch // 4)])]
  new_state, metrics = jax.jit(functools.partial(r3gan_step.update, trainer))(
      state, real, latents, jax.random.key(3), labels)

  @jax.jit
  def by_hand(fake_labels):
    """(d_loss, r1, r2, g_loss) with the fakes generated and scored with `fake_labels`."""
    d = lambda params, c: lambda x: trainer.discriminator.apply({'params': params}, x, c=c)
    g = lambda z, c: trainer.generator.apply({'params': state.g_params}, z, c=c)
    terms = r3gan_loss.discriminator_terms(d(state.d_params, labels[0]), real[0],
                                           g(latents[0], fake_labels[0]),
                                           d(state.d_params, fake_labels[0]))
    g_loss, _ = r3gan_loss.generator_loss(d(new_state.d_params, labels[1]), real[1],
                                          g(latents[1], fake_labels[1]),
                                          d(new_state.d_params, fake_labels[1]))
    return terms.adversarial.mean(), terms.r1.mean(), terms.r2.mean(), g_loss

  names = ('d_loss', 'r1', 'r2', 'g_loss')
  np.testing.assert_allclose([metrics[name] for name in names], by_hand(labels), rtol=1e-5)
  # The fakes with the same labels in another order (as the other families draw theirs).
  # (R1 does not see the fakes; at initialisation D is linear in the images, so R2 sees only
  # the labels' multiset.)
  swapped = dict(zip(names, by_hand(jnp.roll(labels, 1, axis=1))))
  for name in ('d_loss', 'g_loss'):
    assert abs(float(metrics[name] / swapped[name]) - 1) > 0.01, name
