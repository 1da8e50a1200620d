"""The on-disk cache of prepared images: round trip, skipped examples, atomic writes."""

import os

import numpy as np
import pytest

from facegan_jax.data import image_cache

SHAPE = (4, 4, 3)


def faces(count):
  return [np.full(SHAPE, i, np.uint8) for i in range(count)]


def test_cache_path_depends_on_every_field_of_the_key(tmp_path):
  key = dict(source='folder', crop=140, resolution=64)
  path = image_cache.cache_path(str(tmp_path), key)
  assert path == image_cache.cache_path(str(tmp_path), dict(reversed(list(key.items()))))
  assert os.path.basename(path).startswith('folder-') and path.endswith('.npy')
  assert path != image_cache.cache_path(str(tmp_path), dict(key, crop=0))


def test_written_cache_loads_as_a_read_only_memmap(tmp_path):
  path = image_cache.cache_path(str(tmp_path / 'cache'), {'source': 'folder'})
  assert image_cache.load(path) is None
  written = image_cache.write(path, {'source': 'folder'}, faces(5), capacity=5, image_shape=SHAPE)
  loaded = image_cache.load(path)
  assert isinstance(loaded.images, np.memmap) and not loaded.images.flags.writeable
  np.testing.assert_array_equal(loaded.images, np.stack(faces(5)))
  np.testing.assert_array_equal(written.images, loaded.images)
  assert loaded.skipped == 0 and sorted(os.listdir(tmp_path / 'cache')) == [
      os.path.basename(path), os.path.basename(path) + '.json']


def test_unreadable_examples_are_skipped_counted_and_capacity_is_honoured(tmp_path):
  path = str(tmp_path / 'folder-x.npy')
  examples = [None] + faces(3) + [None] + faces(6)[3:]  # 6 readable, 2 unreadable
  cached = image_cache.write(path, {'source': 'folder'}, examples, capacity=4, image_shape=SHAPE)
  np.testing.assert_array_equal(cached.images[:, 0, 0, 0], [0, 1, 2, 3])
  assert cached.skipped == 2 and image_cache.load(path).skipped == 2
  cached = image_cache.write(path, {'source': 'folder'}, examples, capacity=8, image_shape=SHAPE)
  assert cached.images.shape == (6,) + SHAPE and cached.skipped == 2


def test_a_crash_while_writing_leaves_no_cache_and_no_temporary_files(tmp_path):
  def crashing():
    yield from faces(2)
    raise KeyboardInterrupt

  path = str(tmp_path / 'folder-x.npy')
  with pytest.raises(KeyboardInterrupt):
    image_cache.write(path, {'source': 'folder'}, crashing(), capacity=4, image_shape=SHAPE)
  assert image_cache.load(path) is None and os.listdir(tmp_path) == []
