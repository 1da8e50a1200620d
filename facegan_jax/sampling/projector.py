"""Finding a real face in the generator: NVIDIA's projector (stylegan2-ada-pytorch), in JAX.

For StyleGAN2 the latent optimised is w [1, 1, w_dim] (broadcast to every layer), or with w+
one w per layer [1, num_ws, w_dim], together with the generator's constant noise maps (the
'noise_const' entries of its 'batch_stats', [R, R] each, noise mode 'const'). w starts at the
run's tracked average w; the noise maps start as standard normal draws of the seed. Each step,
at t = step / num_steps:

  learning rate  initial_learning_rate * ramp, ramp = (1 - cos(pi * min(1, (1 - t) / 0.25))) / 2
                 * min(1, t / 0.05)    (a cosine ramp-down over the last quarter, a linear
                 ramp-up over the first 5%)
  latent noise   w + N(0, 1) * w_std * 0.05 * max(0, 1 - t / 0.75)**2, w_std the root mean
                 squared distance of 10,000 mapped z from their mean
  loss           LPIPS(target, G(w, noise)) + 1e5 * sum over noise maps and their 2x2 box
                 downsamplings down to 8x8 of (mean(n * roll(n, 1, x))**2 + mean(n * roll(n, 1,
                 y))**2)   (the maps' autocorrelation at one pixel, which the prior says is 0)
  update         Adam (betas 0.9, 0.999, eps 1e-8) on the latent and the noise maps; then
                 each noise map is normalised to mean 0 and mean square 1

with images larger than 256 box-downsampled to 256 before LPIPS (VGG-16 was trained near 224)
and a grayscale model's images repeated to three channels. DCGAN and SNGAN have neither w nor
noise maps: the same steps optimise z [1, latent_dim], starting at 0 (the prior's mode) with
latent_std 1. StyleGAN2 in z (to compare with w) starts at the seed's first z instead, since the
mapping's 2nd-moment normalisation has no gradient worth the name at z = 0.

Everything the optimisation draws comes from `jax.random.key(seed)`, so the same seed gives
bit-identical results on the same machine.
"""

import dataclasses
import io
from typing import Any, Callable, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image

from facegan_jax.data import image_sources
from facegan_jax.data import images as images_lib
from facegan_jax.sampling import generation
from facegan_jax.system.errors import UserError

LPIPS_SIZE = 256  # larger images are box-downsampled to this before LPIPS
NOISE_REGULARIZATION_FLOOR = 8  # the noise penalty's pyramid stops at maps of this side
W_STATS_SAMPLES, W_STATS_SEED = 10_000, 123  # the mapped z that estimate w_std
INIT_STREAM, STEP_STREAM = 0, 1  # fold_in streams of the projection's key


@dataclasses.dataclass(frozen=True)
class Settings:
  """NVIDIA's projector's hyperparameters (its defaults)."""
  num_steps: int = 1000
  initial_learning_rate: float = 0.1
  initial_noise_factor: float = 0.05
  lr_rampdown_length: float = 0.25
  lr_rampup_length: float = 0.05
  noise_ramp_length: float = 0.75
  regularize_noise_weight: float = 1e5


def learning_rate(settings: Settings, step) -> jax.Array:
  """The learning rate of `step` (0 .. num_steps - 1): the ramp-up and cosine ramp-down."""
  t = step / settings.num_steps
  down = jnp.minimum(1.0, (1.0 - t) / settings.lr_rampdown_length)
  ramp = (0.5 - 0.5 * jnp.cos(down * jnp.pi)) * jnp.minimum(1.0, t / settings.lr_rampup_length)
  return settings.initial_learning_rate * ramp


def latent_noise_scale(settings: Settings, step, latent_std: float) -> jax.Array:
  """The std of the noise added to the latent at `step`: decays quadratically to 0 at 75%."""
  t = step / settings.num_steps
  return latent_std * settings.initial_noise_factor * jnp.maximum(
      0.0, 1.0 - t / settings.noise_ramp_length)**2


def box_downsample(images: jax.Array, size: int) -> jax.Array:
  """[N, H, H, C] -> [N, size, size, C], each pixel the mean of its (H / size)**2 block (PyTorch's
  'area' interpolation when size divides H)."""
  factor = images.shape[1] // size
  if factor * size != images.shape[1]:
    raise ValueError(f'{size} does not divide the image side {images.shape[1]}')
  n, _, _, c = images.shape
  return images.reshape(n, size, factor, size, factor, c).mean(axis=(2, 4))


def lpips_input(images: jax.Array) -> jax.Array:
  """[N, H, H, C] in [-1, 1] -> what LPIPS compares: RGB, at most LPIPS_SIZE a side."""
  if images.shape[1] > LPIPS_SIZE:
    images = box_downsample(images, LPIPS_SIZE)
  return jnp.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def noise_regularization(noise_maps: dict[str, jax.Array]) -> jax.Array:
  """The sum over maps [R, R] and their 2x2 box pyramids (down to 8x8, the first level always)
  of the squared mean products of each map with itself shifted by one pixel, in x and in y."""
  total = 0.0
  for noise in noise_maps.values():
    while True:
      total += jnp.mean(noise * jnp.roll(noise, 1, axis=1))**2
      total += jnp.mean(noise * jnp.roll(noise, 1, axis=0))**2
      if noise.shape[0] <= NOISE_REGULARIZATION_FLOOR:
        break
      noise = box_downsample(noise[None, :, :, None], noise.shape[0] // 2)[0, :, :, 0]
  return total


def normalize_noise(noise_maps: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """Each map shifted to mean 0 and scaled to mean square 1."""
  def normalize(noise):
    centered = noise - noise.mean()
    return centered * jax.lax.rsqrt(jnp.mean(centered**2))
  return {name: normalize(noise) for name, noise in noise_maps.items()}


def random_noise(batch_stats, key: jax.Array) -> dict[str, jax.Array]:
  """Standard normal draws of `key` in place of each 'noise_const' map [R, R] of a StyleGAN2
  generator's batch_stats, keyed by their '/'-joined paths."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(batch_stats))
  paths = sorted(path for path in flat if path[-1] == 'noise_const')
  keys = jax.random.split(key, len(paths))
  return {'/'.join(path): jax.random.normal(k, flat[path].shape) for path, k in zip(paths, keys)}


def with_noise(variables, noise_maps: dict[str, jax.Array]):
  """`variables` with the generator's constant noise maps replaced by `noise_maps`."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables['batch_stats']))
  flat.update({tuple(name.split('/')): noise for name, noise in noise_maps.items()})
  return dict(variables, batch_stats=flax.traverse_util.unflatten_dict(flat))


class Space(NamedTuple):
  """What a projection optimises: the latent's name ('w', 'w_plus' or 'z'), its start
  [1, ...], latent_std (for the latent noise), the initial noise maps ({} without), and
  synthesize(latent, noise_maps) -> images [1, H, W, C] in about [-1, 1]."""
  name: str
  start: jax.Array
  latent_std: float
  noise: dict[str, jax.Array]
  synthesize: Callable[[jax.Array, dict[str, jax.Array]], jax.Array]


def w_stats(generator, variables, latent_dim: int) -> tuple[jax.Array, float]:
  """StyleGAN2: (the tracked average w [w_dim], w_std of W_STATS_SAMPLES mapped z)."""
  z = jax.random.normal(jax.random.key(W_STATS_SEED), (W_STATS_SAMPLES, latent_dim))
  w = jax.jit(lambda z: generator.apply(variables, z, method='map')[:, 0])(z)
  w_std = float(jnp.sqrt(jnp.sum((w - w.mean(axis=0))**2) / W_STATS_SAMPLES))
  return variables['batch_stats']['mapping']['w_avg'], w_std


def make_space(generator, variables, model, space: str, seed: int) -> Space:
  """The Space `space` ('w', 'w_plus', 'z') of the generator of config.model `model`."""
  key = jax.random.fold_in(jax.random.key(seed), INIT_STREAM)
  if model.name != 'stylegan2':
    if space != 'z':
      raise UserError(f'projecting into {space} needs a StyleGAN2 run; this one is '
                      f'{model.name!r} (it projects into z).')
    return Space('z', jnp.zeros((1, model.latent_dim)), 1.0, {},
                 lambda z, _: generator.apply(variables, z, train=False))
  noise_key, z_key = jax.random.split(key)
  noise = random_noise(variables['batch_stats'], noise_key)
  if space == 'z':
    return Space('z', generation.latents(z_key, 1, model.latent_dim), 1.0, noise,
                 lambda z, maps: generator.apply(with_noise(variables, maps), z, train=False))
  w_avg, w_std = w_stats(generator, variables, model.latent_dim)
  count = jax.eval_shape(lambda: generator.apply(
      variables, jnp.zeros((1, model.latent_dim)), method='map')).shape[1]
  layers = 1 if space == 'w' else count

  def synthesize(w, maps):
    ws = jnp.broadcast_to(w, (1, count, w.shape[-1]))
    return generator.apply(with_noise(variables, maps), ws, method='synthesize')
  return Space(space, jnp.tile(w_avg[None, None], (1, layers, 1)), w_std, noise, synthesize)


class ProjectionState(NamedTuple):
  latent: jax.Array
  noise: dict[str, jax.Array]
  adam: Any


ADAM = optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8)


def initial_state(space: Space) -> ProjectionState:
  trainable = (space.start, space.noise)
  return ProjectionState(space.start, space.noise, ADAM.init(trainable))


def make_step(space: Space, settings: Settings, distance: Callable):
  """The jitted step(state, step, target, lpips_params, seed) -> (state, loss): one Adam update
  of the latent and the noise maps towards `target` [1, H, W, C] in [-1, 1], under
  `distance(lpips_params, a, b)` -> [B] (metrics.lpips.distance; an argument, as sampling sits
  below metrics). The target, the LPIPS weights and the seed are arguments, so one compilation
  serves every projection into `space`."""

  def loss_fn(trainable, step, target, lpips_params, seed):
    latent, noise = trainable
    scale = latent_noise_scale(settings, step, space.latent_std)
    step_key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), STEP_STREAM), step)
    jitter = jax.random.normal(step_key, latent.shape) * scale
    images = space.synthesize(latent + jitter, noise)
    perceptual = distance(lpips_params, lpips_input(target), lpips_input(images))[0]
    return perceptual + settings.regularize_noise_weight * noise_regularization(noise)

  @jax.jit
  def step_fn(state: ProjectionState, step, target, lpips_params, seed):
    trainable = (state.latent, state.noise)
    loss, grads = jax.value_and_grad(loss_fn)(trainable, step, target, lpips_params, seed)
    updates, adam = ADAM.update(grads, state.adam, trainable)
    rate = learning_rate(settings, step)
    latent, noise = jax.tree.map(lambda p, u: p - rate * u, trainable, updates)
    return ProjectionState(latent, normalize_noise(noise), adam), loss
  return step_fn


def project(space: Space, distance: Callable, lpips_params, target: jax.Array,
            settings: Settings, seed: int, snapshots: int = 8, step_fn=None):
  """Runs the projection (with `step_fn`, `make_step(space, settings, distance)`'s, if given;
  `distance` and `lpips_params` as make_step's). Returns
  (the final state, the images [snapshots, H, W, C] of the latent (without the latent noise) at
  `snapshots` evenly spaced steps, the last the final, the losses [num_steps] float32)."""
  step_fn = step_fn or make_step(space, settings, distance)
  render = jax.jit(space.synthesize)
  state = initial_state(space)
  shown = set(np.linspace(0, settings.num_steps, snapshots).round().astype(int).tolist())
  progress, losses = [], []
  for step in range(settings.num_steps + 1):
    if step in shown:
      progress.append(render(state.latent, state.noise)[0])
    if step < settings.num_steps:
      state, loss = step_fn(state, jnp.asarray(step, jnp.int32), target, lpips_params,
                            jnp.asarray(seed, jnp.int32))
      losses.append(loss)
  return state, jnp.stack(progress), np.asarray(jax.device_get(losses), np.float32)


def read_target(path: str, crop: int, resolution: int, channels: int) -> np.ndarray:
  """The image file `path`, cropped and resized as training images are
  (`image_sources.crop_box`, Lanczos): uint8 [resolution, resolution, channels]. UserError if it
  is not an image, its crop is smaller than `resolution`, or it is grayscale for an RGB model
  (or colour for a grayscale one)."""
  try:
    with open(path, 'rb') as file:
      encoded = file.read()
  except OSError as error:
    raise UserError(f'--target={path} cannot be read ({error.strerror}); pass a face image.') \
        from error
  try:
    with Image.open(io.BytesIO(encoded)) as image:
      grayscale = Image.getmodebase(image.mode) == 'L'
      image = image_sources.to_8bit_upright(image)
      image = image.convert('L' if grayscale else 'RGB')
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
    raise UserError(f'--target={path} is not an image PIL can read; pass a PNG or JPEG '
                    'face.') from error
  if grayscale != (channels == 1):
    kind, model_kind = ('grayscale', 'RGB') if grayscale else ('colour', 'grayscale')
    raise UserError(f'--target={path} is a {kind} image, but the model draws {model_kind} '
                    f'images; convert it first (PIL: image.convert('
                    f'{"RGB" if channels == 3 else "L"!r})).')
  box = image_sources.crop_box(image.height, image.width, crop)
  if box[2] - box[0] < resolution:
    raise UserError(f'--target={path} is {image.width}x{image.height}: its crop of '
                    f'{box[2] - box[0]} pixels is smaller than the model\'s {resolution}; pass '
                    f'an image of at least {resolution}x{resolution}.')
  return image_sources.resize_square(image.crop(box), resolution)


def pixel_mse(a, b) -> float:
  """Mean squared difference of two images on the [0, 1] scale, each clipped to [-1, 1] first
  (the pixels a PNG shows)."""
  a, b = (np.clip(np.asarray(x, np.float64), -1, 1) for x in (a, b))
  return float(np.mean(((a - b) / 2)**2))


def target_array(target_uint8: np.ndarray) -> jax.Array:
  """uint8 [H, W, C] -> float32 [1, H, W, C] in [-1, 1]."""
  return images_lib.to_model_range(jnp.asarray(target_uint8))[None]


def perceptual_distance(distance: Callable, lpips_params, a, b) -> float:
  """`distance` (make_step's) of two [1, H, W, C] images in [-1, 1], as the projection measures
  it."""
  return float(distance(lpips_params, lpips_input(a), lpips_input(b))[0])

