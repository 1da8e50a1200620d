"""The labels a conditional run's generator is asked for by `sample`, and its training labels
(for `sample` and `fid` on a workdir; `evaluate` reads them with its real images).

Generated images take labels drawn uniformly from the training labels, as NVIDIA's code draws
them for its grids and metrics (`generation.draw_labels`); `sample --class=K` asks for class K
(one-hot), `sample --attributes=Smiling,-Male` for CelebA attributes set on (a name) or off (a
leading minus), the run's other attributes keeping the drawn values.
"""

import jax
import ml_collections
import numpy as np

from facegan_jax.data import image_sources
from facegan_jax.sampling import generation
from facegan_jax.system.errors import UserError


def training_labels(config: ml_collections.ConfigDict) -> np.ndarray | None:
  """The run's training labels [N, c_dim] float32 as the model saw them (from the data's cache,
  or prepared from config.data again), None for an unconditional run."""
  if not config.model.get('c_dim', 0):
    return None
  return image_sources.load_dataset(config).labels


def is_attribute_run(config: ml_collections.ConfigDict) -> bool:
  """Whether the run's labels are CelebA attributes (else one-hot classes or dataset vectors)."""
  return config.data.labels == 'celeba_attributes'


def class_rows(classes: list[int], config: ml_collections.ConfigDict) -> np.ndarray:
  """One-hot labels [len(classes), c_dim] of class ids; UserError for an unconditional run, an
  attribute run, or a class outside 0..c_dim-1."""
  c_dim = config.model.get('c_dim', 0)
  if not c_dim:
    raise UserError(f'--class={classes[0]} needs a conditional run; this one is unconditional '
                    '(config.model.c_dim=0): leave --class out.')
  if is_attribute_run(config):
    raise UserError(f'--class={classes[0]}: this run is conditioned on CelebA attributes, not '
                    'classes; use --attributes=NAME,-NAME (e.g. --attributes=Smiling,-Male).')
  for index in classes:
    if not 0 <= index < c_dim:
      raise UserError(f'--class={index} is not a class of this run; use 0 to {c_dim - 1}.')
  return np.eye(c_dim, dtype=np.float32)[classes]


def parse_attributes(text: str, names: tuple[str, ...]) -> dict[int, float]:
  """'Smiling,Eyeglasses,-Male' -> {column: 1.0 or 0.0} of the run's attribute `names`;
  UserError for an empty setting, a name the run was not trained on, or a repeated name."""
  setting = {}
  for item in (part.strip() for part in text.split(',')):
    name = item[1:] if item.startswith('-') else item
    if name not in names:
      raise UserError(f'--attributes={text}: {name!r} is not an attribute of this run; use '
                      f'names of {", ".join(names)}, a leading minus to turn one off.')
    if names.index(name) in setting:
      raise UserError(f'--attributes={text} names {name} twice; name each attribute once.')
    setting[names.index(name)] = 0.0 if item.startswith('-') else 1.0
  return setting


def attribute_rows(settings: list[str], config: ml_collections.ConfigDict) -> list[dict]:
  """The parsed --attributes settings of an attribute run; UserError for another run."""
  if not is_attribute_run(config):
    what = ('unconditional (config.model.c_dim=0)' if not config.model.get('c_dim', 0)
            else f'conditioned on config.data.labels={config.data.labels!r}')
    raise UserError(f'--attributes={settings[0]} needs a run trained on CelebA attributes '
                    f'(config.data.labels=\'celeba_attributes\'); this one is {what}.')
  names = image_sources.attribute_names(config.data)
  return [parse_attributes(text, names) for text in settings]


def with_attributes(drawn: np.ndarray, setting: dict[int, float]) -> np.ndarray:
  """Drawn labels [N, c_dim] with the columns of `setting` set to its values."""
  labels = np.array(drawn, np.float32)
  for column, value in setting.items():
    labels[:, column] = value
  return labels


def grid_inputs(restored: generation.RestoredGenerator, num: int, seed: int,
                classes: list[int] | None, settings: list[str] | None):
  """(latents, labels or None, columns: 0 for a square grid) of the grid: `num` samples of
  `seed`, or with R > 1 label settings (`classes` of --class, `settings` of --attributes) R rows
  of num // R samples sharing their latents and drawn labels; UserError for a setting the run
  cannot take. Sets restored.label to the first image's."""
  config = restored.config
  if classes and settings:
    raise UserError('--class and --attributes ask for labels of different kinds; pass one.')
  rows = len(classes or settings or [None])
  columns = num // rows
  if not columns:
    raise UserError(f'--num={num} gives no sample to each of the {rows} label settings; use '
                    f'--num={rows * 8} or more.')
  latents = np.tile(restored.seed_latents(seed, columns), (rows, 1))
  if classes:
    row_labels = class_rows(classes, config)
    labels = np.repeat(row_labels, columns, axis=0)
  elif settings or restored.c_dim:
    parsed = attribute_rows(settings, config) if settings else [{}]
    drawn = generation.draw_labels(jax.random.fold_in(jax.random.key(seed), 1),
                                   training_labels(config), columns)
    labels = np.concatenate([with_attributes(drawn, setting) for setting in parsed])
  else:
    labels = None
  restored.label = None if labels is None else labels[0]
  return latents, labels, columns if rows > 1 else 0
