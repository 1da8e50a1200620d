"""Reads TensorBoard event files back (with TensorFlow's reader, which the test extra installs)."""

import glob
import os

import numpy as np


def read_events(logdir):
  """({tag: {step: value}} for scalars, {tag: {step: [H, W, C] uint8}} for images)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  scalars, images = {}, {}
  for path in sorted(glob.glob(os.path.join(logdir, 'events.out.tfevents.*'))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.HasField('image'):
          pixels = tf.io.decode_png(value.image.encoded_image_string).numpy()
          images.setdefault(value.tag, {})[event.step] = pixels
        elif value.HasField('simple_value'):
          scalars.setdefault(value.tag, {})[event.step] = value.simple_value
  return scalars, images


def assert_gray_grid(image, expected):
  """TensorBoard stores a 1-channel image as RGB; each channel must equal `expected` [H, W]."""
  assert image.shape == expected.shape + (3,)
  for channel in range(3):
    np.testing.assert_array_equal(image[..., channel], expected)
