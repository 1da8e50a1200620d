"""A conditional run on data made offline: scikit-image's 200 LFW patches as a dataset zip.

  python benchmarks/conditional_demo.py
  python -m facegan_jax.main --config=configs/lfw_demo.py:faces_or_not --workdir=/tmp/cond_demo
  python -m facegan_jax.sample --workdir=/tmp/cond_demo --class=0 --class=1 --num=16
  python benchmarks/conditional_demo.py --workdir=/tmp/cond_demo

The zip (NVIDIA's dataset_tool.py layout: '00000/img00000000.png', ...; dataset.json) holds the
100 grayscale faces with class 0 and the 100 non-face patches that follow them in
`skimage.data.lfw_subset()` with class 1. With --workdir, `--num` samples of each class from the
run's newest checkpoint are classified by their nearest training image (pixels, L2): the share
whose neighbour has the class asked for measures how far the label steers the generator (0.5
for a generator that ignores it); the same for the training images themselves (leave-one-out)
is printed beside it, with each class's mean pixel value, real against generated.
"""

import io
import json
import os
import sys
import zipfile

if not __package__:  # run as `python benchmarks/FILE.py`: make the repository root importable
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import extras

extras.require({'skimage': "pip install -e '.[demo]'"})

import numpy as np  # pylint: disable=wrong-import-position
from absl import app
from absl import flags
from PIL import Image
from skimage import data as skimage_data

from configs import lfw_demo  # pylint: disable=wrong-import-position
from facegan_jax.data import image_sources  # pylint: disable=wrong-import-position
from facegan_jax.sampling import generation  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_string('zip', lfw_demo.FACES_OR_NOT_ZIP,
                    'The dataset zip to write (configs/lfw_demo.py:faces_or_not trains on it).')
flags.DEFINE_string('workdir', None, 'A run trained on the zip: measure its classes.')
flags.DEFINE_integer('num', 500, 'Samples per class.')
flags.DEFINE_integer('seed', 0, 'Seed of the samples\' latents.')
CLASSES = ('face', 'not a face')


def write_zip(path: str):
  """The 200 patches as 8-bit PNGs, class 0 the faces, class 1 the rest."""
  patches = np.rint(skimage_data.lfw_subset() * 255).astype(np.uint8)
  names = [f'00000/img{index:08d}.png' for index in range(len(patches))]
  with zipfile.ZipFile(path, 'w') as archive:
    for name, patch in zip(names, patches):
      encoded = io.BytesIO()
      Image.fromarray(patch).save(encoded, format='PNG')
      archive.writestr(name, encoded.getvalue())
    archive.writestr('dataset.json', json.dumps(
        {'labels': [[name, int(index >= 100)] for index, name in enumerate(names)]}))


def nearest_class_agreement(images, labels, real, real_labels, leave_one_out=False):
  """Share of `images` whose nearest image of `real` (pixels, L2) has their label."""
  flat = lambda x: x.reshape(len(x), -1).astype(np.float64) / 255
  queries, references = flat(images), flat(real)
  squared = ((queries**2).sum(1)[:, None] + (references**2).sum(1)[None, :]
             - 2 * queries @ references.T)
  if leave_one_out:
    np.fill_diagonal(squared, np.inf)
  return float(np.mean(real_labels[squared.argmin(1)] == labels))


def measure(workdir: str, num: int, seed: int):
  restored = generation.RestoredGenerator(workdir)
  dataset = image_sources.load_dataset(restored.config)
  real_classes = dataset.labels.argmax(1)
  own = nearest_class_agreement(dataset.images, real_classes, dataset.images, real_classes,
                                leave_one_out=True)
  print(f'step {restored.step}; training images: {own:.3f} nearest another training image of '
        'their class')
  z = restored.seed_latents(seed, num)
  for index, name in enumerate(CLASSES):
    one_hot = np.eye(2, dtype=np.float32)[[index] * num]
    images = restored.images(z, one_hot)
    agreement = nearest_class_agreement(images, np.full(num, index), dataset.images,
                                        real_classes)
    print(f'class {index} ({name}): {agreement:.3f} of {num} samples nearest a training image '
          f'of their class; mean pixel {images.mean():.1f} (training '
          f'{dataset.images[real_classes == index].mean():.1f})')


def main(argv):
  del argv
  if FLAGS.workdir:
    measure(FLAGS.workdir, FLAGS.num, FLAGS.seed)
  else:
    write_zip(FLAGS.zip)
    print(f'Wrote {FLAGS.zip} (200 patches: 100 faces, class 0; 100 non-faces, class 1).')


if __name__ == '__main__':
  app.run(main)
