"""Deterministic order, resumable position and host shards of the input pipeline."""

import numpy as np
import pytest

from configs import lfw_demo
from facegan_jax import input_pipeline
from facegan_jax.errors import UserError


def take(iterator, count):
  return [next(iterator) for _ in range(count)]


def labelled(count):
  """Images whose first pixel is their index, so batches reveal the examples they hold."""
  images = np.zeros((count, 2, 2, 1), np.int64)
  images[:, 0, 0, 0] = np.arange(count)
  return images


def test_same_seed_same_order_other_seed_or_epoch_other_order():
  first = input_pipeline.epoch_order(seed=0, epoch=0, num_examples=50)
  np.testing.assert_array_equal(first, input_pipeline.epoch_order(0, 0, 50))
  assert sorted(first) == list(range(50))
  assert not np.array_equal(first, input_pipeline.epoch_order(1, 0, 50))
  assert not np.array_equal(first, input_pipeline.epoch_order(0, 1, 50))


def test_every_epoch_visits_every_example_once():
  steps = [input_pipeline.step_indices(3, step, 10, 4) for step in range(5)]
  stream = np.concatenate(steps)  # 20 positions = two epochs of 10
  assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:]) == list(range(10))


def test_starting_at_step_k_gives_the_batches_of_an_uninterrupted_run():
  images = labelled(37)
  kwargs = dict(seed=5, batch_size=8, d_steps=2)
  uninterrupted = take(input_pipeline.host_batches(images, start_step=0, **kwargs), 12)
  resumed = take(input_pipeline.host_batches(images, start_step=7, **kwargs), 5)
  for a, b in zip(uninterrupted[7:], resumed):
    np.testing.assert_array_equal(a, b)
  assert uninterrupted[0].shape == (2, 8, 2, 2, 1)


def test_host_shards_are_disjoint_and_cover_the_global_batch():
  images = labelled(64)
  kwargs = dict(seed=0, start_step=3, batch_size=16)
  whole = next(input_pipeline.host_batches(images, **kwargs))
  parts = [next(input_pipeline.host_batches(images, process_index=p, process_count=4, **kwargs))
           for p in range(4)]
  ids = [set(part[..., 0, 0, 0].ravel()) for part in parts]
  assert all(len(a & b) == 0 for i, a in enumerate(ids) for b in ids[i + 1:])
  np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)


def test_toy_faces_all_pass_the_seed_rule():
  faces = input_pipeline.toy_faces(seed=0)
  assert faces.shape == (input_pipeline.TOY_EXAMPLES, 2, 2, 1) and faces.dtype == np.uint8
  assert input_pipeline.is_toy_face(faces / 127.5 - 1.0).all()
  noise = np.random.default_rng(0).uniform(-1, 1, (1000, 2, 2, 1))
  assert input_pipeline.is_toy_face(noise).mean() < 0.2


def test_lfw_faces_are_real_faces_at_the_model_resolution():
  images = input_pipeline.load_images(lfw_demo.get_config())
  assert images.shape == (100, 32, 32, 1) and images.dtype == np.uint8
  assert 60 < images.mean() < 200 and images.std() > 20


def test_unknown_source_and_shape_mismatch_are_clear_errors():
  config = lfw_demo.get_config()
  config.data.source = 'imagenet'
  with pytest.raises(UserError, match="config.data.source='imagenet' is unknown"):
    input_pipeline.load_images(config)
  config = lfw_demo.get_config()
  config.model.channels = 3
  with pytest.raises(UserError, match=r'set config.model.resolution and config.model.channels'):
    input_pipeline.load_images(config)
