"""Deterministic order, resumable position, host shards and prefetch."""

import jax
import numpy as np
import pytest

from facegan_jax.data import input_pipeline
from facegan_jax.system import parallel


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


def test_the_shards_of_two_hosts_over_an_epoch_are_disjoint_and_cover_the_data():
  images = labelled(48)
  kwargs = dict(seed=2, start_step=0, batch_size=12, d_steps=2, process_count=2)
  shards = [take(input_pipeline.host_batches(images, process_index=p, **kwargs), 2)
            for p in range(2)]  # 2 steps x 2 updates x 12 = one epoch of 48
  ids = [np.concatenate([batch[..., 0, 0, 0].ravel() for batch in shard]) for shard in shards]
  assert len(ids[0]) == len(ids[1]) == 24 and not set(ids[0]) & set(ids[1])
  assert sorted(np.concatenate(ids)) == list(range(48))


def test_prefetch_keeps_the_order_and_raises_where_the_failing_item_is_read():
  for size in (0, 1, 3):
    assert list(input_pipeline.prefetch(iter(range(20)), size)) == list(range(20))

  def failing():
    yield 1
    raise ValueError('broken source')

  items = input_pipeline.prefetch(failing(), 2)
  assert next(items) == 1
  with pytest.raises(ValueError, match='broken source'):
    next(items)


def test_global_batches_are_the_host_batches_on_the_mesh():
  images = labelled(40).astype(np.uint8)
  kwargs = dict(seed=1, start_step=3, batch_size=8, d_steps=2)
  mesh = parallel.make_mesh()
  batches = input_pipeline.global_batches(images, mesh, prefetch_size=2, **kwargs)
  for expected, batch in zip(take(input_pipeline.host_batches(images, **kwargs), 4),
                             take(batches, 4)):
    assert isinstance(batch, jax.Array) and batch.sharding == parallel.batch_sharding(mesh)
    np.testing.assert_array_equal(batch, expected)


def test_labels_travel_with_their_images_across_steps_epochs_and_hosts():
  images = labelled(30)
  labels = np.stack([np.arange(30), -np.arange(30)], axis=1).astype(np.float32)  # [N, 2]
  kwargs = dict(seed=4, batch_size=12, d_steps=2, labels=labels)
  for process in range(3):
    for batch, batch_labels in take(input_pipeline.host_batches(
        images, start_step=2, process_index=process, process_count=3, **kwargs), 4):
      assert batch.shape == (2, 4, 2, 2, 1) and batch_labels.shape == (2, 4, 2)
      np.testing.assert_array_equal(batch_labels[..., 0], batch[..., 0, 0, 0])
      np.testing.assert_array_equal(batch_labels[..., 1], -batch[..., 0, 0, 0])
  # The images are those of the unlabelled stream: labels change nothing of the order.
  unlabelled = take(input_pipeline.host_batches(images, seed=4, start_step=0, batch_size=12,
                                                d_steps=2), 3)
  for plain, (batch, _) in zip(unlabelled, take(input_pipeline.host_batches(
      images, start_step=0, **kwargs), 3)):
    np.testing.assert_array_equal(plain, batch)


def test_global_batches_with_labels_are_pairs_sharded_like_the_images():
  images = labelled(40).astype(np.uint8)
  labels = np.eye(40, dtype=np.float32)[:, :5] + np.arange(40, dtype=np.float32)[:, None]
  kwargs = dict(seed=1, start_step=3, batch_size=8, d_steps=2)
  mesh = parallel.make_mesh()
  batches = input_pipeline.global_batches(images, mesh, prefetch_size=2, labels=labels, **kwargs)
  for (expected, expected_labels), (batch, batch_labels) in zip(
      take(input_pipeline.host_batches(images, labels=labels, **kwargs), 3), take(batches, 3)):
    assert batch_labels.sharding == parallel.batch_sharding(mesh)
    assert batch_labels.dtype == np.float32 and batch_labels.shape == (2, 8, 5)
    np.testing.assert_array_equal(batch, expected)
    np.testing.assert_array_equal(batch_labels, expected_labels)
