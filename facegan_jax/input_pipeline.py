"""Training images as uint8 arrays on the host, and the order in which they reach the step.

Every source is reduced once to one uint8 array [N, H, W, C] at the model's resolution; the
step scales it to [-1, 1] and flips it on the device. The order is a pure function of
(seed, epoch): epoch e visits the examples in `np.random.default_rng([seed, e]).permutation(N)`,
so the examples of any step are known without replaying the stream, a resumed run continues at
exactly the next example, and each process takes its own contiguous slice of every global batch.
"""

from typing import Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image

from facegan_jax.errors import UserError

TOY_EXAMPLES = 4096


def toy_faces(seed: int, count: int = TOY_EXAMPLES) -> np.ndarray:
  """The 2x2 'slanted faces': dark (high) top-left and bottom-right, light others.

  Returns [count, 2, 2, 1] uint8; high pixels in [0.8, 1], low ones in [0, 0.2] (x 255), so
  every example passes `is_toy_face`.
  """
  rng = np.random.default_rng([seed, 2, 2])
  high = rng.uniform(0.8, 1.0, (count, 2))
  low = rng.uniform(0.0, 0.2, (count, 2))
  faces = np.stack([high[:, 0], low[:, 0], low[:, 1], high[:, 1]], axis=1).reshape(count, 2, 2, 1)
  return np.rint(faces * 255).astype(np.uint8)


def toy_face_score(images) -> np.ndarray:
  """The seed's rule on [B, 2, 2, 1] images in [-1, 1]: TL + BR - TR - BL on a [0, 1] scale."""
  pixels = (np.asarray(images, np.float32)[..., 0] + 1.0) / 2.0
  return pixels[:, 0, 0] + pixels[:, 1, 1] - pixels[:, 0, 1] - pixels[:, 1, 0]


def is_toy_face(images, threshold: float = 1.0) -> np.ndarray:
  """[B] bool: the seed's rule, score above the threshold (1 in the seed)."""
  return toy_face_score(images) > threshold


def resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
  """[N, h, w, C] uint8 -> [N, size, size, C] uint8 with Lanczos (antialiased) resampling."""
  def resize(image):
    pixels = image[..., 0] if image.shape[-1] == 1 else image
    resized = np.asarray(Image.fromarray(pixels).resize((size, size), Image.LANCZOS))
    return resized.reshape(size, size, image.shape[-1])
  return np.stack([resize(image) for image in images])


def lfw_faces(resolution: int) -> np.ndarray:
  """The 100 real 25x25 grayscale LFW faces that scikit-image ships: [100, res, res, 1] uint8."""
  try:
    from skimage import data as skimage_data  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise UserError("config.data.source='lfw_subset' needs scikit-image; "
                    "install it with: pip install -e '.[demo]'") from error
  faces = skimage_data.lfw_subset()[:100]  # the rest are non-face patches
  faces = np.rint(faces * 255).astype(np.uint8)[..., None]
  return resize_uint8(faces, resolution)


SOURCES = ('toy2x2', 'lfw_subset', 'celeb_a')


def load_images(config: ml_collections.ConfigDict) -> np.ndarray:
  """All training images of `config.data` at `config.model.resolution`: [N, H, W, C] uint8."""
  source = config.data.source
  if source == 'toy2x2':
    images = toy_faces(config.seed)
  elif source == 'lfw_subset':
    images = lfw_faces(config.model.resolution)
  elif source == 'celeb_a':
    raise UserError("config.data.source='celeb_a' is not available yet in this version; "
                    "train on 'lfw_subset' (configs/lfw_demo.py) or 'toy2x2' instead.")
  else:
    raise UserError(f'config.data.source={source!r} is unknown; use one of {SOURCES}.')
  expected = (config.model.resolution, config.model.resolution, config.model.channels)
  if images.shape[1:] != expected:
    raise UserError(f'config.data.source={source!r} gives images of shape {images.shape[1:]}, '
                    f'but config.model expects {expected}; set config.model.resolution and '
                    f'config.model.channels to match.')
  return images


def epoch_order(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  """The order in which epoch `epoch` visits the examples: a permutation of range(N)."""
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def step_indices(seed: int, step: int, num_examples: int, per_step: int) -> np.ndarray:
  """Example indices of global step `step`, [per_step]: stream positions step*per_step onward."""
  positions = np.arange(step * per_step, (step + 1) * per_step)
  epochs = positions // num_examples
  indices = np.empty(per_step, np.int64)
  for epoch in np.unique(epochs):
    here = epochs == epoch
    indices[here] = epoch_order(seed, int(epoch), num_examples)[positions[here] % num_examples]
  return indices


def host_batches(images: np.ndarray, *, seed: int, start_step: int, batch_size: int,
                 d_steps: int = 1, process_index: int = 0,
                 process_count: int = 1) -> Iterator[np.ndarray]:
  """Yields this process's real images for steps start_step, start_step + 1, ...

  Each item is [d_steps, batch_size / process_count, H, W, C] uint8: the process's contiguous
  slice of the global batch of each discriminator update.
  """
  local = batch_size // process_count
  step = start_step
  while True:
    indices = step_indices(seed, step, len(images), d_steps * batch_size)
    indices = indices.reshape(d_steps, batch_size)[:, process_index * local:(process_index + 1) * local]
    yield images[indices]
    step += 1


def to_model_range(images):
  """uint8 [..., H, W, C] -> float32 in [-1, 1]."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def random_flip(key, images):
  """Flips each image of [..., B, H, W, C] left-right with probability 1/2."""
  flip = jax.random.bernoulli(key, 0.5, images.shape[:-3])
  return jnp.where(flip[..., None, None, None], images[..., ::-1, :], images)
