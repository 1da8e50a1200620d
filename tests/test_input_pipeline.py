"""Deterministic order, resumable position, host shards, prefetch and the cached sources."""

import logging

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import celeba
from configs import lfw_demo
from configs import toy2x2
from facegan_jax import image_sources
from facegan_jax import input_pipeline
from facegan_jax import parallel
from facegan_jax.errors import UserError
from tests import test_image_sources


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


def folder_config(tmp_path, **data):
  """configs/celeba.py:test on the folder tmp_path/faces, caching in tmp_path/cache."""
  config = celeba.get_config('test')
  config.data.update(dict(dict(source='folder', path=str(tmp_path / 'faces'),
                               cache_dir=str(tmp_path / 'cache'), crop=0, max_examples=0),
                          **data))
  return config


def test_folder_images_are_prepared_in_sorted_order_and_max_examples_are_the_first(tmp_path):
  pixels = test_image_sources.write_faces(tmp_path / 'faces', 7)
  sorted_pixels = [pixels[i] for i in (0, 2, 4, 6, 1, 3, 5)]  # group0/ sorts before group1/
  images = input_pipeline.load_images(folder_config(tmp_path))
  assert images.shape == (7, 16, 16, 3) and images.dtype == np.uint8
  np.testing.assert_array_equal(images[:, 8, 8], [p[0, 0] for p in sorted_pixels])
  first = input_pipeline.load_images(folder_config(tmp_path, max_examples=3))
  np.testing.assert_array_equal(first, images[:3])


def test_unreadable_folder_files_are_skipped_counted_and_reported(tmp_path, caplog):
  test_image_sources.write_faces(tmp_path / 'faces', 4)
  (tmp_path / 'faces' / 'corrupt.jpg').write_bytes(b'\xff\xd8 not really a jpeg')
  with caplog.at_level(logging.WARNING):
    prepared = input_pipeline.prepare_source(folder_config(tmp_path))
  assert prepared.images.shape[0] == 4 and prepared.skipped == 1
  assert 'Skipped 1 unreadable file(s)' in caplog.text and 'corrupt.jpg.' in caplog.text


def test_a_folder_of_every_kind_of_image_prepares_each_right_and_names_the_unreadable(
    tmp_path, caplog):
  expected = test_image_sources.every_kind(tmp_path / 'faces')
  with caplog.at_level(logging.WARNING):
    prepared = input_pipeline.prepare_source(folder_config(tmp_path))
  assert prepared.skipped == 2 and prepared.skipped_names == ('corrupt.png', 'empty.jpg')
  assert (f"Skipped 2 unreadable file(s) of {tmp_path / 'faces'} (not an image, truncated or "
          'corrupt): corrupt.png, empty.jpg.') in caplog.text
  assert len(prepared.images) == len(expected)
  for image, name in zip(prepared.images, sorted(expected)):
    np.testing.assert_allclose(image.astype(int), expected[name].astype(int),
                               atol=3 if name.endswith('.jpg') else 0, err_msg=name)


@pytest.mark.parametrize('source', ['toy2x2', 'lfw_subset'])
def test_max_examples_keeps_the_first_examples_of_the_in_memory_sources(source):
  config = {'toy2x2': toy2x2, 'lfw_subset': lfw_demo}[source].get_config()
  every = input_pipeline.load_images(config)
  config.data.max_examples = 7
  np.testing.assert_array_equal(input_pipeline.load_images(config), every[:7])


def test_a_folder_without_readable_images_is_a_clear_error(tmp_path):
  (tmp_path / 'faces').mkdir()
  (tmp_path / 'faces' / 'a.png').write_bytes(b'broken')
  with pytest.raises(UserError, match="config.data.source='folder' gave no readable images"):
    input_pipeline.load_images(folder_config(tmp_path))


def test_the_cache_is_reused_for_the_same_key_and_rebuilt_for_another(tmp_path, monkeypatch):
  test_image_sources.write_faces(tmp_path / 'faces', 3)
  first = input_pipeline.load_images(folder_config(tmp_path))
  prepared = []
  prepare = image_sources.prepare_image
  monkeypatch.setattr(image_sources, 'prepare_image',
                      lambda *args, **kwargs: prepared.append(1) or prepare(*args, **kwargs))
  np.testing.assert_array_equal(input_pipeline.load_images(folder_config(tmp_path)), first)
  assert not prepared
  other = input_pipeline.load_images(folder_config(tmp_path, crop=20))
  assert len(prepared) == 3 and other.shape == first.shape
  assert len(list((tmp_path / 'cache').glob('folder-*.npy'))) == 2
  test_image_sources.write_faces(tmp_path / 'faces' / 'more', 1)
  assert len(input_pipeline.load_images(folder_config(tmp_path))) == 4


def test_celeb_a_is_cropped_resized_and_cached_under_the_data_dir(tmp_path):
  config = celeba.get_config('test')
  config.data.data_dir = str(tmp_path)
  config.data.max_examples = 5
  with tfds.testing.mock_data(num_examples=8):
    images = input_pipeline.load_images(config)
  assert images.shape == (5, 16, 16, 3) and images.dtype == np.uint8
  assert len(list((tmp_path / 'facegan_jax_cache').glob('celeb_a-*.npy'))) == 1


@pytest.mark.parametrize('field', ['crop', 'max_examples', 'threads'])
def test_negative_data_fields_are_clear_errors(tmp_path, field):
  test_image_sources.write_faces(tmp_path / 'faces', 1)
  with pytest.raises(UserError, match=f'config.data.{field}=-1 must be 0 or more.'):
    input_pipeline.load_images(folder_config(tmp_path, **{field: -1}))


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
