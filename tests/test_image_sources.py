"""Decoding, the crop rule, image folders and CelebA through (mocked) TFDS."""

import io

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image
from tensorflow_datasets.core.download import download_manager

from facegan_jax import image_sources
from facegan_jax.errors import UserError


def encode(pixels: np.ndarray, format_: str = 'PNG') -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format=format_)
  return buffer.getvalue()


def write_faces(folder, count, size=(30, 40)):
  """`count` PNGs with distinct flat colours in nested folders; returns their pixels in order."""
  pixels = [np.full(size + (3,), (10 * i, 255 - 10 * i, 128), np.uint8) for i in range(count)]
  for i, image in enumerate(pixels):
    path = folder / f'group{i % 2}' / f'face{i:03d}.png'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(image))
  return pixels


@pytest.mark.parametrize('height, width, crop, box', [
    (218, 178, 140, (19, 39, 159, 179)),  # CelebA: the papers' crop of the aligned face
    (218, 178, 0, (0, 20, 178, 198)),  # 0: the largest centered square
    (64, 64, 140, (0, 0, 64, 64)),  # a thumbnail smaller than the crop is used whole
    (5, 8, 0, (1, 0, 6, 5)),  # uneven margin: the odd pixel stays at the right
])
def test_crop_box_is_the_centered_square_of_the_rule(height, width, crop, box):
  assert image_sources.crop_box(height, width, crop) == box


def test_prepare_image_crops_the_center_and_resizes_to_uint8():
  pixels = np.zeros((218, 178, 3), np.uint8)
  pixels[39:179, 19:159] = 200  # exactly the 140-pixel center crop
  image = image_sources.prepare_image(encode(pixels), crop=140, resolution=16, channels=3)
  assert image.shape == (16, 16, 3) and image.dtype == np.uint8
  np.testing.assert_array_equal(image, 200)
  gray = image_sources.prepare_image(encode(pixels), crop=0, resolution=8, channels=1)
  assert gray.shape == (8, 8, 1) and gray[0, 0, 0] < 60 and gray[4, 4, 0] > 150  # more border


def test_unreadable_images_prepare_to_none():
  truncated = encode(np.full((64, 64, 3), 90, np.uint8), 'JPEG')[:200]
  for encoded in (None, b'not an image', truncated):
    assert image_sources.prepare_image(encoded, crop=0, resolution=8, channels=3) is None


def test_ordered_map_keeps_the_order_of_its_inputs():
  assert list(image_sources.ordered_map(lambda x: x * x, range(50), threads=3)) == [
      x * x for x in range(50)]


def test_folder_files_are_sorted_recursive_and_images_only(tmp_path):
  write_faces(tmp_path, 3)
  (tmp_path / 'notes.txt').write_text('not a face')
  (tmp_path / 'UPPER.JPG').write_bytes(b'')
  assert image_sources.folder_files(str(tmp_path)) == [
      'UPPER.JPG', 'group0/face000.png', 'group0/face002.png', 'group1/face001.png']


def test_missing_or_empty_folder_is_a_clear_error(tmp_path):
  missing = tmp_path / 'nope'
  with pytest.raises(UserError, match=f"config.data.path='{missing}' is not a directory"):
    image_sources.folder_files(str(missing))
  (tmp_path / 'readme.txt').write_text('no faces here')
  with pytest.raises(UserError, match=f"config.data.path='{tmp_path}' holds no .jpg, .jpeg"):
    image_sources.folder_files(str(tmp_path))


def test_folder_fingerprint_changes_when_the_files_do(tmp_path):
  write_faces(tmp_path, 2)
  files = image_sources.folder_files(str(tmp_path))
  before = image_sources.folder_fingerprint(str(tmp_path), files)
  assert before == image_sources.folder_fingerprint(str(tmp_path), files)
  (tmp_path / files[0]).write_bytes(b'edited')
  assert before != image_sources.folder_fingerprint(str(tmp_path), files)


def test_celeb_a_files_are_the_split_in_a_fixed_order(tmp_path):
  with tfds.testing.mock_data(num_examples=6):
    first, count = image_sources.celeb_a_files(str(tmp_path), 'train', max_examples=4)
    first = list(first)
    again, _ = image_sources.celeb_a_files(str(tmp_path), 'train', max_examples=0)
    again = list(again)
  assert count == 4 and len(first) == 4 and len(again) == 6 and first == again[:4]
  image = image_sources.prepare_image(first[0], crop=140, resolution=16, channels=3)
  assert image.shape == (16, 16, 3)


def test_failed_celeb_a_download_explains_the_manual_and_folder_routes(tmp_path, monkeypatch):
  def fail(*args, **kwargs):
    raise download_manager.NonMatchingChecksumError('Google Drive quota exceeded')

  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', fail)
  with pytest.raises(UserError) as error:
    image_sources.celeb_a_files(str(tmp_path), 'train', max_examples=0)
  message = str(error.value)
  assert '\n' not in message
  assert f'{tmp_path}/downloads/manual/' in message and 'img_align_celeba.zip' in message
  assert all(name in message for name in image_sources.CELEB_A_FILES)
  assert "config.data.source='folder'" in message


def test_unknown_celeb_a_split_is_a_clear_error(tmp_path, monkeypatch):
  def unknown_split(self, split, **kwargs):
    raise ValueError(f"Unknown split {split!r}. Should be one of ['train', 'validation', 'test'].")

  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', lambda *a, **k: None)
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'as_dataset', unknown_split)
  with pytest.raises(UserError, match="config.data.split='trian' is not a split of celeb_a"):
    image_sources.celeb_a_files(str(tmp_path), 'trian', max_examples=0)
