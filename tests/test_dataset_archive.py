"""NVIDIA's dataset zips (dataset_tool.py's layout) and dataset.json labels, as a source: order,
labels, cache, fingerprint, and one-line errors for bad archives."""

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from configs import celeba
from facegan_jax.data import dataset_archive
from facegan_jax.data import image_sources
from facegan_jax.system.errors import UserError


def encode(pixels: np.ndarray, format_: str) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format=format_, **({'quality': 100} if format_ == 'JPEG'
                                                          else {}))
  return buffer.getvalue()


def nvidia_names(count):
  """dataset_tool.py's member names: 1000 images per folder, '00000/img00000000.png', ..."""
  return [f'{i // 1000:05d}/img{i:08d}.png' for i in range(count)]


def write_zip(path, members: dict, labels=None, with_json=True):
  """A zip of `members` {name: bytes}, with dataset.json {"labels": labels} at its root."""
  with zipfile.ZipFile(path, 'w') as archive:
    for name, data in members.items():
      archive.writestr(name, data)
    if with_json:
      archive.writestr('dataset.json', json.dumps({'labels': labels}))
  return str(path)


def faces(count):
  """`count` flat-coloured 12x12 faces, distinct at their center pixel."""
  return [np.full((12, 12, 3), (20 * i, 200 - 20 * i, 90), np.uint8) for i in range(count)]


def zip_config(tmp_path, path, **data):
  config = celeba.get_config('test')
  config.data.update(dict(dict(source='zip', path=str(path), cache_dir=str(tmp_path / 'cache'),
                               crop=0, max_examples=0), **data))
  return config


def test_members_png_and_jpeg_in_nested_folders_are_read_in_sorted_name_order(tmp_path):
  pixels = faces(5)
  # Written out of order, one JPEG, one deeper folder, and a non-image member that is ignored.
  members = {'b/2.png': encode(pixels[3], 'PNG'), 'a/x/1.png': encode(pixels[1], 'PNG'),
             'a/0.jpg': encode(pixels[0], 'JPEG'), 'c.PNG': encode(pixels[4], 'PNG'),
             'a/y.png': encode(pixels[2], 'PNG'), 'notes/readme.txt': b'not an image'}
  path = write_zip(tmp_path / 'faces.zip', members, labels=None)
  dataset = image_sources.load_dataset(zip_config(tmp_path, path))
  assert dataset.labels is None and dataset.images.shape == (5, 16, 16, 3)
  # sorted: a/0.jpg, a/x/1.png, a/y.png, b/2.png, c.PNG
  order = [0, 1, 2, 3, 4]
  np.testing.assert_allclose(dataset.images[:, 8, 8].astype(int),
                             [pixels[i][0, 0] for i in order], atol=2)  # the JPEG within 2
  # The same files unpacked into a folder give the same images.
  folder = tmp_path / 'faces'
  for name, data in members.items():
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
  unpacked = image_sources.load_images(zip_config(tmp_path, folder, source='folder'))
  np.testing.assert_array_equal(unpacked, dataset.images)


def test_class_labels_are_one_hot_in_image_order_and_follow_max_examples(tmp_path):
  names = nvidia_names(6)
  classes = [2, 0, 1, 2, 0, 1]
  members = {name: encode(face, 'PNG') for name, face in zip(names, faces(6))}
  shuffled = [[names[i], classes[i]] for i in (3, 1, 5, 0, 2, 4)]  # the json's order is not used
  path = write_zip(tmp_path / 'faces.zip', members, labels=shuffled)
  dataset = image_sources.load_dataset(_with_c_dim(zip_config(tmp_path, path,
                                                              labels='dataset_json'), 3))
  assert dataset.labels.dtype == np.float32 and dataset.labels.shape == (6, 3)
  np.testing.assert_array_equal(dataset.labels, np.eye(3)[classes])
  first = image_sources.load_dataset(_with_c_dim(zip_config(
      tmp_path, path, labels='dataset_json', max_examples=4), 3))
  np.testing.assert_array_equal(first.images, dataset.images[:4])
  np.testing.assert_array_equal(first.labels, dataset.labels[:4])


def _with_c_dim(config, c_dim):
  config.model.c_dim = c_dim
  return config


def test_vector_labels_are_kept_as_float_vectors(tmp_path):
  names = nvidia_names(3)
  vectors = [[1, 0, 0.5], [0, 1, 0.25], [1, 1, 0]]
  path = write_zip(tmp_path / 'faces.zip', {n: encode(f, 'PNG') for n, f in zip(names, faces(3))},
                   labels=[[n, v] for n, v in zip(names, vectors)])
  dataset = image_sources.load_dataset(_with_c_dim(zip_config(tmp_path, path,
                                                              labels='dataset_json'), 3))
  np.testing.assert_array_equal(dataset.labels, np.float32(vectors))


def test_labels_come_back_from_the_cache_and_a_changed_member_changes_the_key(tmp_path,
                                                                             monkeypatch):
  names = nvidia_names(3)
  members = {n: encode(f, 'PNG') for n, f in zip(names, faces(3))}
  path = write_zip(tmp_path / 'faces.zip', members, labels=[[n, i] for i, n in enumerate(names)])
  config = _with_c_dim(zip_config(tmp_path, path, labels='dataset_json'), 3)
  first = image_sources.load_dataset(config)
  prepared = []
  prepare = image_sources.prepare_image
  monkeypatch.setattr(image_sources, 'prepare_image',
                      lambda *args, **kwargs: prepared.append(1) or prepare(*args, **kwargs))
  again = image_sources.load_dataset(config)
  assert not prepared  # read from the cache, labels included
  np.testing.assert_array_equal(again.images, first.images)
  np.testing.assert_array_equal(again.labels, first.labels)
  unlabelled = image_sources.load_dataset(zip_config(tmp_path, path))  # another key
  assert unlabelled.labels is None and len(prepared) == 3
  members[names[0]] = encode(np.zeros((12, 12, 3), np.uint8), 'PNG')
  write_zip(path, members, labels=[[n, i] for i, n in enumerate(names)])
  assert image_sources.load_dataset(config).images[0].max() == 0  # prepared again
  assert len(list((tmp_path / 'cache').glob('zip-*.labels.npy'))) == 2


def test_a_folder_with_dataset_json_gives_its_labels(tmp_path):
  folder = tmp_path / 'faces'
  names = nvidia_names(4)
  for name, face in zip(names, faces(4)):
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(encode(face, 'PNG'))
  (folder / 'dataset.json').write_text(json.dumps({'labels': [[n, i % 2] for i, n in
                                                              enumerate(names)]}))
  dataset = image_sources.load_dataset(_with_c_dim(zip_config(
      tmp_path, folder, source='folder', labels='dataset_json'), 2))
  np.testing.assert_array_equal(dataset.labels, np.eye(2)[[0, 1, 0, 1]])


def test_members_are_never_written_to_paths(tmp_path, monkeypatch):
  """A member named '../escaped.png' is read into memory like any other, not extracted."""
  monkeypatch.chdir(tmp_path)
  path = write_zip(tmp_path / 'faces.zip', {'../escaped.png': encode(faces(1)[0], 'PNG'),
                                            '/abs.png': encode(faces(2)[1], 'PNG')})
  before = sorted(p.name for p in tmp_path.parent.iterdir())
  images = image_sources.load_images(zip_config(tmp_path, path))
  assert len(images) == 2
  assert sorted(p.name for p in tmp_path.parent.iterdir()) == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ['cache', 'faces.zip']


def test_bad_archives_are_one_line_errors(tmp_path):
  names = nvidia_names(2)
  good = {n: encode(f, 'PNG') for n, f in zip(names, faces(2))}

  def error_of(path, **data):
    config = zip_config(tmp_path, path, **data)
    config.model.c_dim = 2 if data.get('labels') else 0
    with pytest.raises(UserError) as error:
      image_sources.load_dataset(config)
    assert '\n' not in str(error.value)
    return str(error.value)

  (tmp_path / 'not.zip').write_bytes(b'PK but not really a zip')
  assert 'is not a zip archive' in error_of(tmp_path / 'not.zip')
  assert 'is not a file' in error_of(tmp_path / 'missing.zip')
  broken = write_zip(tmp_path / 'broken.zip', dict(good, **{'00000/img00000002.png': b'junk'}))
  assert ("member '00000/img00000002.png' is not a readable image" in error_of(broken))
  no_images = write_zip(tmp_path / 'empty.zip', {'readme.txt': b'hello'})
  assert 'holds no .jpg, .jpeg or .png members' in error_of(no_images)
  missing = write_zip(tmp_path / 'missing_file.zip', good,
                      labels=[[names[0], 0], [names[1], 1], ['00000/img00000009.png', 1]])
  assert ("labels '00000/img00000009.png', which is not an image of the dataset"
          in error_of(missing, labels='dataset_json'))
  mixed = write_zip(tmp_path / 'mixed.zip', good, labels=[[names[0], 0], [names[1], [0, 1]]])
  assert 'they are of mixed kinds' in error_of(mixed, labels='dataset_json')
  null = write_zip(tmp_path / 'null.zip', good, labels=None)
  assert '"labels": null' in error_of(null, labels='dataset_json')
  without = write_zip(tmp_path / 'without.zip', good, with_json=False)
  assert 'has no dataset.json at its root' in error_of(without, labels='dataset_json')
  unlabelled = write_zip(tmp_path / 'unlabelled.zip', good, labels=[[names[0], 1]])
  assert f"image '{names[1]}' has no label" in error_of(unlabelled, labels='dataset_json')


def test_c_dim_must_match_the_labels_and_labels_must_fit_the_source(tmp_path):
  names = nvidia_names(2)
  path = write_zip(tmp_path / 'faces.zip', {n: encode(f, 'PNG') for n, f in zip(names, faces(2))},
                   labels=[[names[0], 0], [names[1], 4]])
  with pytest.raises(UserError, match=r"gives 5 label values per image, but "
                     r'config.model.c_dim=0; set config.model.c_dim=5\.$'):
    image_sources.load_dataset(zip_config(tmp_path, path, labels='dataset_json'))
  with pytest.raises(UserError, match=r"config.data.labels='celeba_attributes' needs "
                     r"config.data.source in \('celeb_a',\), not 'zip'"):
    image_sources.load_dataset(zip_config(tmp_path, path, labels='celeba_attributes'))
  with pytest.raises(UserError, match="config.data.labels='classes' is unknown"):
    image_sources.load_dataset(zip_config(tmp_path, path, labels='classes'))


def test_fingerprint_is_of_the_members_contents():
  def archive(data):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as written:
      written.writestr('a.png', data)
    return zipfile.ZipFile(buffer)

  assert (dataset_archive.fingerprint(archive(b'one')) ==
          dataset_archive.fingerprint(archive(b'one')))
  assert (dataset_archive.fingerprint(archive(b'one')) !=
          dataset_archive.fingerprint(archive(b'two')))
