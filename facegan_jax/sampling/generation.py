"""The run's key streams, its latents, and the generator that samples, in one place.

Keys: `jax.random.key(config.seed)` is split by `fold_in` into fixed streams: INIT_STREAM (the
initial parameters), TRAIN_STREAM (the state's base key; step t draws from
`fold_in(state.key, t)`), SAMPLE_STREAM (the latents of the sample grids) and EVAL_STREAM (the
latents of FID/KID). A run is therefore a pure function of the config, the data and the device
count, and a checkpoint always gets the same grids and scores.

The generator samples in inference mode (BatchNorm's running statistics) with its EMA weights
when the run keeps them (config.ema), else its trained ones: training's grids and FID, the
`evaluate` command and the `sample` command all go through `generate` here.
"""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from facegan_jax import models
from facegan_jax.data import images as images_lib
from facegan_jax.models import stylegan2
from facegan_jax.runs import checkpointing
from facegan_jax.runs import storage
from facegan_jax.system.errors import UserError

INIT_STREAM, TRAIN_STREAM, SAMPLE_STREAM, EVAL_STREAM = 0, 1, 2, 3


def stream_key(seed: int, stream: int) -> jax.Array:
  """The key of `stream` of the run seeded with `seed`."""
  return jax.random.fold_in(jax.random.key(seed), stream)


def latents(key: jax.Array, count: int, latent_dim: int) -> jax.Array:
  """[count, latent_dim] standard normal latents drawn from `key`."""
  return jax.random.normal(key, (count, latent_dim))


def draw_labels(key: jax.Array, training_labels: np.ndarray, count: int) -> np.ndarray:
  """Labels [count, c_dim] of generated images for grids and FID: rows of the training labels
  [N, c_dim] drawn uniformly with replacement from `key`, as NVIDIA's code draws them."""
  rows = np.asarray(jax.random.randint(key, (count,), 0, len(training_labels)))
  return np.asarray(training_labels[rows], np.float32)


def uses_ema(ema: ml_collections.ConfigDict) -> bool:
  """Whether a run of config.ema keeps an EMA generator (and samples with it)."""
  return ema.halflife_images > 0


def sampling_params_field(ema: ml_collections.ConfigDict) -> str:
  """The TrainState field whose generator weights sample: 'g_ema_params' or 'g_params'."""
  return 'g_ema_params' if uses_ema(ema) else 'g_params'


def generate(generator, variables, latent_batch, truncation: float = 1.0,
             labels=None) -> jax.Array:
  """Images [N, H, W, C] float32 in [-1, 1] from `latent_batch` [N, latent_dim], inference mode
  (R3GAN's bfloat16 images cast).

  `variables` is {'params': the sampling weights, 'batch_stats': G's statistics}; `truncation`
  < 1 (StyleGAN2 only) pulls every w towards the run's tracked average w (the truncation trick:
  better-looking, less varied faces); `labels` [N, c_dim] condition a conditional generator
  (one-hot classes, or 0/1 attributes).
  """
  kwargs = {'truncation_psi': truncation} if truncation != 1 else {}
  if labels is not None:
    kwargs['c'] = labels
  return generator.apply(variables, latent_batch, train=False, **kwargs).astype(jnp.float32)


def _no_checkpoint(workdir: str) -> UserError:
  return UserError(f'no checkpoint in {checkpointing.checkpoint_dir(workdir)}; train first '
                   f'(python -m facegan_jax.main --workdir={workdir} ...) or pass the workdir '
                   'of a run.')


class RestoredGenerator:
  """A generator restored from a checkpoint: only its sampling weights, its BatchNorm statistics
  and the run's saved config are read. It generates at most `batch_size` images at a time
  (default: all at once).

  A conditional run's generator (c_dim > 0) takes labels [N, c_dim] with its latents, or gives
  every image `label` [c_dim] when it is set (`sample` sets it: sampling/labels.py)."""

  def __init__(self, workdir: str, step: int | None = None, truncation: float = 1.0,
               batch_size: int | None = None):
    if not math.isfinite(truncation):
      raise UserError(f'--truncation={truncation} is not a finite number; use e.g. '
                      '--truncation=0.7 (1: no truncation).')
    self.batch_size = batch_size
    storage.check_reachable(workdir, '--workdir')
    directory = checkpointing.checkpoint_dir(workdir)
    if not directory.is_dir():
      raise _no_checkpoint(workdir)
    with checkpointing.make_manager(workdir, create=False) as manager:
      steps = sorted(manager.all_steps())
      if not steps:
        raise _no_checkpoint(workdir)
      if step is None:
        step = steps[-1]
      elif step not in steps:
        raise UserError(f'no checkpoint of step {step} in {directory}; steps there: '
                        f'{", ".join(map(str, steps))}.')
      self.step = step
      try:
        self._restore(manager, step)
      except UserError:
        raise
      except Exception as error:  # pylint: disable=broad-except
        others = [other for other in sorted(steps, reverse=True) if other != step]
        raise checkpointing.damaged(workdir, [step] + others, error, 'sample from') from error
    if truncation != 1:
      self.check_style_based(f'--truncation={truncation}', '(leave --truncation at 1)')
    self.c_dim = self.config.model.get('c_dim', 0)
    self.label = None
    self._generate = jax.jit(lambda v, z, c: generate(self.generator, v, z, truncation, c))
    self._map = jax.jit(lambda v, z, c: self.generator.apply(v, z, truncation, c, method='map'))
    self._synthesize = jax.jit(lambda v, ws, _: self.generator.apply(v, ws, method='synthesize'))

  def _restore(self, manager, step: int):
    """Reads the run's config and the generator's sampling variables of `step`."""
    self.config = ml_collections.ConfigDict(checkpointing.restore_run(manager, step)['config'])
    self.generator, _ = models.build_models(self.config.model)
    z = jax.ShapeDtypeStruct((1, self.config.model.latent_dim), jnp.float32)
    c_dim = self.config.model.get('c_dim', 0)
    labels = {'c': jax.ShapeDtypeStruct((1, c_dim), jnp.float32)} if c_dim else {}
    abstract = jax.eval_shape(
        lambda z, labels: self.generator.init(jax.random.key(0), z, train=False, **labels), z,
        labels)
    params = sampling_params_field(self.config.ema)
    restored = checkpointing.restore_fields(
        manager, step, {params: abstract['params'],
                        'g_batch_stats': abstract.get('batch_stats', {})})
    self.variables = {'params': restored[params], 'batch_stats': restored['g_batch_stats']}

  def _labels(self, count: int, labels):
    """Labels [count, c_dim] of a batch: `labels` if given, else `label` for every image; None
    for an unconditional run."""
    if not self.c_dim:
      return None
    if labels is None and self.label is None:
      raise UserError(f'this run is conditional (config.model.c_dim={self.c_dim}): give the '
                      'labels of the images to generate.')
    return jnp.broadcast_to(jnp.asarray(self.label if labels is None else labels, jnp.float32),
                            (count, self.c_dim))

  def seed_latents(self, seed: int, count: int) -> jax.Array:
    """[count, latent_dim] latents of `seed` (the `sample` command's --seed)."""
    return latents(jax.random.key(seed), count, self.config.model.latent_dim)

  def first_latents(self, seeds) -> jax.Array:
    """[len(seeds), latent_dim]: the first latent of each seed."""
    return jnp.stack([self.seed_latents(seed, 1)[0] for seed in seeds])

  def images(self, latent_batch, labels=None) -> np.ndarray:
    """latents [N, latent_dim] (and a conditional run's labels [N, c_dim], else `label`) ->
    uint8 images [N, H, W, C]."""
    return self._in_batches(self._generate, latent_batch,
                            self._labels(len(latent_batch), labels))

  def _in_batches(self, program, inputs, labels=None) -> np.ndarray:
    """uint8 images of `program(variables, rows, labels)` over `inputs` [N, ...] (and `labels`
    [N, c_dim] or None), `batch_size` rows at a time; the last batch is padded to full size, so
    that one compiled program serves all."""
    size = min(self.batch_size or len(inputs), len(inputs))
    padded = lambda rows: None if rows is None else jnp.concatenate(
        [rows, jnp.zeros((size - len(rows),) + rows.shape[1:], rows.dtype)])
    outputs = []
    for start in range(0, len(inputs), size):
      rows = jnp.asarray(inputs[start:start + size])
      row_labels = None if labels is None else labels[start:start + size]
      images = program(self.variables, padded(rows), padded(row_labels))[:len(rows)]
      outputs.append(images_lib.to_uint8(jax.device_get(images)))
    return np.concatenate(outputs)

  def num_styles(self) -> int:
    """StyleGAN2: the layers (styles) of its synthesis network, 0 the coarsest."""
    return stylegan2.num_ws(self.config.model.resolution)

  def check_style_based(self, what: str, instead: str):
    """UserError unless the run's generator is StyleGAN2's (it has a w space)."""
    if self.config.model.name != 'stylegan2':
      raise UserError(f'{what} needs a StyleGAN2 run; this one is '
                      f'{self.config.model.name!r} {instead}.')

  def styles(self, latent_batch) -> jax.Array:
    """StyleGAN2: ws [N, num_ws, w_dim] of latents [N, latent_dim] (and a conditional run's
    `label`), truncated as `images`."""
    return self._map(self.variables, latent_batch, self._labels(len(latent_batch), None))

  def images_of_styles(self, ws) -> np.ndarray:
    """StyleGAN2: ws [N, num_ws, w_dim] -> uint8 images [N, H, W, C] (constant noise, so
    `images_of_styles(styles(z))` equals `images(z)`)."""
    return self._in_batches(self._synthesize, ws)


def slerp(a, b, fractions):
  """Spherical interpolation between latents a, b [D] at `fractions` [F]: [F, D]."""
  cos = jnp.dot(a, b) / (jnp.linalg.norm(a) * jnp.linalg.norm(b))
  omega = jnp.arccos(jnp.clip(cos, -1.0, 1.0))
  t = jnp.asarray(fractions)[:, None]
  return (jnp.sin((1 - t) * omega) * a + jnp.sin(t * omega) * b) / jnp.sin(omega)


def interpolation_latents(restored: RestoredGenerator, seeds, frames: int):
  """[(len(seeds) - 1) * frames, latent_dim]: one row of `frames` per consecutive seed pair."""
  ends = restored.first_latents(seeds)
  fractions = np.linspace(0.0, 1.0, frames)
  return jnp.concatenate([slerp(a, b, fractions) for a, b in zip(ends[:-1], ends[1:])])


def interpolation_styles(restored: RestoredGenerator, seeds, frames: int):
  """StyleGAN2: like `interpolation_latents`, linear in w (where StyleGAN2 interpolates):
  ws [(len(seeds) - 1) * frames, num_ws, w_dim], each row from w(seed i) to w(seed i + 1),
  both ends exact."""
  restored.check_style_based('interpolation in w', '(interpolate in z instead)')
  ends = restored.styles(restored.first_latents(seeds))
  return jnp.concatenate([lerp(a, b, frames) for a, b in zip(ends[:-1], ends[1:])])


def lerp(a, b, frames: int):
  """`frames` points from a to b (arrays of one shape), both ends exact: [frames, *a.shape]."""
  t = jnp.asarray(np.linspace(0.0, 1.0, frames)).reshape((frames,) + (1,) * a.ndim)
  return (1 - t) * a + t * b


def style_mixing_grid(restored: RestoredGenerator, row_seeds, column_seeds,
                      mixed_styles) -> np.ndarray:
  """StyleGAN2's style-mixing figure of seeds: `style_mixing_figure` of their first latents' ws."""
  restored.check_style_based('style mixing', '(it has no per-layer styles)')
  rows, columns = (restored.styles(restored.first_latents(seeds))
                   for seeds in (row_seeds, column_seeds))
  return style_mixing_figure(restored, rows, columns, mixed_styles)


def style_mixing_figure(restored: RestoredGenerator, rows, columns, mixed_styles) -> np.ndarray:
  """StyleGAN2's style-mixing figure: uint8 images [(1 + R) * (1 + C), H, W, ch] for a grid
  of 1 + C columns, from ws rows [R, num_ws, w_dim] and columns [C, num_ws, w_dim]. The first
  row is a black cell and the columns' images, each next row the row's image and then its ws
  with the styles `mixed_styles` (layer indices, 0 the coarsest) taken from each column."""
  taken = np.isin(np.arange(rows.shape[1]), list(mixed_styles))[None, None, :, None]
  mixed = jnp.where(taken, columns[None], rows[:, None])  # [R, C, num_ws, w_dim]
  # Each row: the row's ws, then its mixes; above them the columns' ws.
  table = jnp.concatenate([rows[:, None], mixed], axis=1)
  images = restored.images_of_styles(
      jnp.concatenate([columns, table.reshape((-1,) + rows.shape[1:])]))
  return np.concatenate([np.zeros_like(images[:1]), images])


def read_projection(restored: RestoredGenerator, path: str) -> tuple[str, jax.Array]:
  """A `project` command's projected.npz for `restored`'s generator: ('z', z [latent_dim]) or
  ('w', ws [num_ws, w_dim]) (a w of one layer broadcast to all). UserError when it is no such
  file or its latent does not fit the generator."""
  try:
    with np.load(storage.path(path).open('rb')) as arrays:
      space = str(arrays['space'])
      latent = np.asarray(arrays['z' if space == 'z' else 'w'], np.float32)
  except (OSError, ValueError, KeyError) as error:
    raise UserError(f'{path} is not a projection; make one with python -m facegan_jax.project '
                    f'--workdir=... --target=face.png --out=DIR/ (DIR/projected.npz).') from error
  model = restored.config.model
  if space == 'z':
    expected = (model.latent_dim,)
  else:
    restored.check_style_based(f'{path} (a w projection)', '(project into z for it)')
    expected = restored.styles(jnp.zeros((1, model.latent_dim))).shape[1:]
    latent = np.broadcast_to(latent, expected) if latent.shape[-1:] == expected[-1:] else latent
  if latent.shape != tuple(expected):
    raise UserError(f'{path} holds a {space} of shape {latent.shape}, but this generator\'s is '
                    f'{tuple(expected)}: project with the same --workdir.')
  return ('z' if space == 'z' else 'w'), jnp.asarray(latent)


def projection_pair(restored: RestoredGenerator, first: str, second: str):
  """Two projections as latents [2, latent_dim] ('z', both in z) or ws [2, num_ws, w_dim]
  ('w': StyleGAN2, a z projection mapped to its ws)."""
  (space_a, a), (space_b, b) = (read_projection(restored, path) for path in (first, second))
  if space_a == space_b == 'z':
    return 'z', jnp.stack([a, b])
  as_ws = lambda space, latent: restored.styles(latent[None])[0] if space == 'z' else latent
  return 'w', jnp.stack([as_ws(space_a, a), as_ws(space_b, b)])
