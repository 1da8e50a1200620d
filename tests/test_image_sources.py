"""Every source: decoding, the crop rule, image folders, CelebA through (mocked) TFDS, the cache,
the LFW faces and the toy."""

import io
import logging
import socket
import struct
import zlib

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image
from tensorflow_datasets.core.download import download_manager

from configs import celeba
from configs import lfw_demo
from configs import toy2x2
from facegan_jax.data import image_sources
from facegan_jax.system.errors import UserError


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
  assert list(image_sources.folder_versions(str(tmp_path))) == [
      'UPPER.JPG', 'group0/face000.png', 'group0/face002.png', 'group1/face001.png']


def test_missing_or_empty_folder_is_a_clear_error(tmp_path):
  missing = tmp_path / 'nope'
  with pytest.raises(UserError, match=f"config.data.path='{missing}' is not a directory"):
    image_sources.folder_versions(str(missing))
  (tmp_path / 'readme.txt').write_text('no faces here')
  with pytest.raises(UserError, match=f"config.data.path='{tmp_path}' holds no .jpg, .jpeg"):
    image_sources.folder_versions(str(tmp_path))


def test_folder_fingerprint_changes_when_the_files_do(tmp_path):
  write_faces(tmp_path, 2)
  fingerprint = lambda: image_sources.folder_fingerprint(
      image_sources.folder_versions(str(tmp_path)))
  before = fingerprint()
  assert before == fingerprint()
  (tmp_path / list(image_sources.folder_versions(str(tmp_path)))[0]).write_bytes(b'edited')
  assert before != fingerprint()


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


def folder_config(tmp_path, **data):
  """configs/celeba.py:test on the folder tmp_path/faces, caching in tmp_path/cache."""
  config = celeba.get_config('test')
  config.data.update(dict(dict(source='folder', path=str(tmp_path / 'faces'),
                               cache_dir=str(tmp_path / 'cache'), crop=0, max_examples=0),
                          **data))
  return config


def test_folder_images_are_prepared_in_sorted_order_and_max_examples_are_the_first(tmp_path):
  pixels = write_faces(tmp_path / 'faces', 7)
  sorted_pixels = [pixels[i] for i in (0, 2, 4, 6, 1, 3, 5)]  # group0/ sorts before group1/
  images = image_sources.load_images(folder_config(tmp_path))
  assert images.shape == (7, 16, 16, 3) and images.dtype == np.uint8
  np.testing.assert_array_equal(images[:, 8, 8], [p[0, 0] for p in sorted_pixels])
  first = image_sources.load_images(folder_config(tmp_path, max_examples=3))
  np.testing.assert_array_equal(first, images[:3])


def test_unreadable_folder_files_are_skipped_counted_and_reported(tmp_path, caplog):
  write_faces(tmp_path / 'faces', 4)
  (tmp_path / 'faces' / 'corrupt.jpg').write_bytes(b'\xff\xd8 not really a jpeg')
  with caplog.at_level(logging.WARNING):
    prepared = image_sources.prepare_source(folder_config(tmp_path).data, (16, 16, 3))
  assert prepared.images.shape[0] == 4 and prepared.skipped == 1
  assert 'Skipped 1 unreadable file(s)' in caplog.text and 'corrupt.jpg.' in caplog.text


def test_a_folder_without_readable_images_is_a_clear_error(tmp_path):
  (tmp_path / 'faces').mkdir()
  (tmp_path / 'faces' / 'a.png').write_bytes(b'broken')
  with pytest.raises(UserError, match="config.data.source='folder' gave no readable images"):
    image_sources.load_images(folder_config(tmp_path))


def test_the_cache_is_reused_for_the_same_key_and_rebuilt_for_another(tmp_path, monkeypatch):
  write_faces(tmp_path / 'faces', 3)
  first = image_sources.load_images(folder_config(tmp_path))
  prepared = []
  prepare = image_sources.prepare_image
  monkeypatch.setattr(image_sources, 'prepare_image',
                      lambda *args, **kwargs: prepared.append(1) or prepare(*args, **kwargs))
  np.testing.assert_array_equal(image_sources.load_images(folder_config(tmp_path)), first)
  assert not prepared
  other = image_sources.load_images(folder_config(tmp_path, crop=20))
  assert len(prepared) == 3 and other.shape == first.shape
  assert len(list((tmp_path / 'cache').glob('folder-*.npy'))) == 2
  write_faces(tmp_path / 'faces' / 'more', 1)
  assert len(image_sources.load_images(folder_config(tmp_path))) == 4


def test_celeb_a_is_cropped_resized_and_cached_under_the_data_dir(tmp_path):
  config = celeba.get_config('test')
  config.data.data_dir = str(tmp_path)
  config.data.max_examples = 5
  with tfds.testing.mock_data(num_examples=8):
    images = image_sources.load_images(config)
  assert images.shape == (5, 16, 16, 3) and images.dtype == np.uint8
  assert len(list((tmp_path / 'facegan_jax_cache').glob('celeb_a-*.npy'))) == 1


@pytest.mark.parametrize('field', ['crop', 'max_examples', 'threads'])
def test_negative_data_fields_are_clear_errors(tmp_path, field):
  write_faces(tmp_path / 'faces', 1)
  with pytest.raises(UserError, match=f'config.data.{field}=-1 must be 0 or more.'):
    image_sources.load_images(folder_config(tmp_path, **{field: -1}))


def test_toy_faces_all_pass_the_seed_rule():
  faces = image_sources.toy_faces(seed=0)
  assert faces.shape == (image_sources.TOY_EXAMPLES, 2, 2, 1) and faces.dtype == np.uint8
  assert image_sources.is_toy_face(faces / 127.5 - 1.0).all()
  noise = np.random.default_rng(0).uniform(-1, 1, (1000, 2, 2, 1))
  assert image_sources.is_toy_face(noise).mean() < 0.2


def test_lfw_faces_are_real_faces_at_the_model_resolution():
  images = image_sources.load_images(lfw_demo.get_config())
  assert images.shape == (100, 32, 32, 1) and images.dtype == np.uint8
  assert 60 < images.mean() < 200 and images.std() > 20


def test_unknown_source_and_shape_mismatch_are_clear_errors():
  config = lfw_demo.get_config()
  config.data.source = 'imagenet'
  with pytest.raises(UserError, match="config.data.source='imagenet' is unknown"):
    image_sources.load_images(config)
  config = lfw_demo.get_config()
  config.model.channels = 3
  with pytest.raises(UserError, match=r'set config.model.resolution and config.model.channels'):
    image_sources.load_images(config)
def png_16bit(pixels: np.ndarray) -> bytes:
  """A 16-bit grayscale ([H, W]) or RGB ([H, W, 3]) PNG of uint16 `pixels` (PIL writes neither)."""
  height, width = pixels.shape[:2]
  color_type = 2 if pixels.ndim == 3 else 0
  rows = pixels.astype('>u2').reshape(height, -1).view(np.uint8)
  raw = b''.join(b'\0' + row.tobytes() for row in rows)  # filter type 0 on every row

  def chunk(kind, data):
    return (struct.pack('>I', len(data)) + kind + data
            + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))
  header = struct.pack('>IIBBBBB', width, height, 16, color_type, 0, 0, 0)
  return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', zlib.compress(raw))
          + chunk(b'IEND', b''))


def save(image: Image.Image, format_: str = 'PNG', **options) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, format=format_, **options)
  return buffer.getvalue()


def every_kind(folder, side=16):
  """Writes one image of each kind to `folder`, and two unreadable files.

  Returns {file name: the RGB uint8 [side, side, 3] it must decode to (exactly, or within 3 for
  the lossy CMYK JPEG)}.
  """
  rows, cols = np.mgrid[:side, :side]
  base = np.stack([rows * 15, cols * 15, np.full_like(rows, 100)], -1).astype(np.uint8)
  gray = (rows * 15).astype(np.uint8)
  four_colours = np.where(((rows < side // 2)[..., None]), [200, 30, 30], [30, 30, 200]
                          ) + np.where((cols < side // 4)[..., None], 20, 0)
  four_colours = four_colours.astype(np.uint8)
  opaque = cols < side // 2  # the right half is transparent: white after compositing
  white = np.full_like(base, 255)
  with_alpha = np.where(opaque[..., None], base, white)
  palette = Image.fromarray(four_colours).quantize(4)
  transparent_palette = palette.copy()
  transparent_index = palette.getpixel((side - 1, side - 1))
  transparent_palette.info['transparency'] = transparent_index
  is_transparent = np.asarray(palette) == transparent_index
  exif = Image.Exif()
  exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
  files = {
      'rgb8.png': (save(Image.fromarray(base)), base),
      'gray8.png': (save(Image.fromarray(gray)), np.repeat(gray[..., None], 3, -1)),
      'gray16.png': (png_16bit(gray.astype(np.uint16) * 257), np.repeat(gray[..., None], 3, -1)),
      'rgb16.png': (png_16bit(base.astype(np.uint16) * 257), base),
      'palette.png': (save(palette), four_colours),
      'palette_transparent.png': (save(transparent_palette, transparency=transparent_index),
                                  np.where(is_transparent[..., None], white, four_colours)),
      'rgba.png': (save(Image.fromarray(np.dstack([base, opaque * 255]).astype(np.uint8))),
                   with_alpha),
      'la.png': (save(Image.fromarray(np.dstack([gray, opaque * 255]).astype(np.uint8), 'LA')),
                 np.where(opaque[..., None], np.repeat(gray[..., None], 3, -1), white)),
      'bilevel.png': (save(Image.fromarray(gray > 100)),
                      np.repeat(np.where(gray > 100, 255, 0)[..., None], 3, -1).astype(np.uint8)),
      'cmyk.jpg': (save(Image.fromarray(four_colours).convert('CMYK'), 'JPEG', quality=100),
                   four_colours),
      'rotated.png': (save(Image.fromarray(base), exif=exif), np.rot90(base, k=-1)),
  }
  folder.mkdir(parents=True, exist_ok=True)
  for name, (encoded, _) in files.items():
    (folder / name).write_bytes(encoded)
  (folder / 'corrupt.png').write_bytes(b'\x89PNG\r\n\x1a\n broken')
  (folder / 'empty.jpg').write_bytes(b'')
  return {name: expected for name, (_, expected) in files.items()}


def test_every_kind_of_image_decodes_to_what_a_viewer_shows(tmp_path):
  expected = every_kind(tmp_path)
  for name, pixels in expected.items():
    image = image_sources.prepare_image((tmp_path / name).read_bytes(), crop=0, resolution=16,
                                        channels=3)
    tolerance = 3 if name.endswith('.jpg') else 0
    np.testing.assert_allclose(image.astype(int), pixels.astype(int), atol=tolerance,
                               err_msg=name)


def test_a_folder_of_every_kind_of_image_prepares_each_right_and_names_the_unreadable(
    tmp_path, caplog):
  expected = every_kind(tmp_path / 'faces')
  with caplog.at_level(logging.WARNING):
    prepared = image_sources.prepare_source(folder_config(tmp_path).data, (16, 16, 3))
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
  every = image_sources.load_images(config)
  config.data.max_examples = 7
  np.testing.assert_array_equal(image_sources.load_images(config), every[:7])



def test_an_offline_celeb_a_download_gives_up_after_a_few_retries(tmp_path, monkeypatch):
  lookups = []

  def offline(host, *args, **kwargs):
    lookups.append(host)
    raise socket.gaierror(socket.EAI_NONAME, 'Name or service not known')

  monkeypatch.setattr(socket, 'getaddrinfo', offline)
  with pytest.raises(UserError, match=r'^could not download celeb_a .* into '
                     f'{tmp_path}/downloads/manual/ and run again'):
    image_sources.celeb_a_files(str(tmp_path), 'train', max_examples=0)
  # Each file's request and its retries; TFDS's own default would make 11 per file, 3.4 min.
  assert 0 < len(lookups) <= (image_sources.DOWNLOAD_RETRIES + 1) * len(
      image_sources.CELEB_A_FILES)


def test_celeb_a_attributes_are_tfds_own_list():
  features = tfds.builder('celeb_a').info.features['attributes']
  assert tuple(features.keys()) == image_sources.CELEB_A_ATTRIBUTES


def celeb_a_attribute_rows(data_dir, names, count):
  """TFDS's own attributes of the first `count` train examples: [count, len(names)] of 0/1."""
  dataset = tfds.builder('celeb_a', data_dir=data_dir).as_dataset(split='train',
                                                                   shuffle_files=False)
  return np.array([[int(example['attributes'][name]) for name in names]
                   for example in tfds.as_numpy(dataset.take(count))], np.float32)


@pytest.mark.parametrize('attributes', ['Smiling,Eyeglasses,Male', ''])
def test_celeb_a_attributes_come_with_their_images_and_from_the_cache(tmp_path, attributes):
  config = celeba.get_config('test')
  names = attributes.split(',') if attributes else image_sources.CELEB_A_ATTRIBUTES
  config.data.update(data_dir=str(tmp_path), max_examples=5, labels='celeba_attributes',
                     attributes=attributes)
  config.model.c_dim = len(names)
  with tfds.testing.mock_data(num_examples=8):
    dataset = image_sources.load_dataset(config)
    expected = celeb_a_attribute_rows(str(tmp_path), names, 5)
    unlabelled = config.copy_and_resolve_references()
    unlabelled.data.labels, unlabelled.model.c_dim = 'none', 0
    plain = image_sources.load_images(unlabelled)
  assert dataset.labels.shape == (5, len(names)) and dataset.labels.dtype == np.float32
  assert 0 < expected.sum() < expected.size  # the mock data has both values
  np.testing.assert_array_equal(dataset.labels, expected)
  cached = image_sources.load_dataset(config)  # no TFDS outside mock_data: from the cache
  np.testing.assert_array_equal(cached.labels, expected)
  np.testing.assert_array_equal(cached.images, dataset.images)
  np.testing.assert_array_equal(plain, dataset.images)  # the same images as without labels


def test_unknown_celeb_a_attributes_are_a_clear_error():
  config = celeba.get_config('test')
  config.data.update(labels='celeba_attributes', attributes='Smiling,Glasses')
  with pytest.raises(UserError, match=r"config.data.attributes='Smiling,Glasses': 'Glasses' is "
                     'not a CelebA attribute; use'):
    image_sources.load_dataset(config)
