"""Faces from a checkpoint: python -m facegan_jax.sample --workdir=DIR [--step=N] --num=64 --seed=0.

Writes a PNG grid of `--num` samples (`generation.RestoredGenerator`) from the latents of
`--seed` (StyleGAN2: truncated by `--truncation=0.7`), optionally each image as its own PNG, and
with `--interpolate=S1,S2,...` a strip of interpolations between consecutive seeds (spherical in
z, or for StyleGAN2 linear in w with `--interpolate_in=w`), and for StyleGAN2 with
`--mixing_rows=R1,... --mixing_columns=C1,...` the style-mixing figure (each row seed's w with
the `--mixing_styles` layers taken from each column seed). With `--from=a.npz --to=b.npz` (two
`project` outputs) the strip and the mixing figure go from one projected face to the other. The
same flags give byte-identical PNGs.
"""

import os

from absl import app
from absl import flags
import numpy as np

from facegan_jax.data import images as images_lib
from facegan_jax.runs import storage
from facegan_jax.sampling import generation
from facegan_jax.system import command_line
from facegan_jax.system import compile_cache
from facegan_jax.system import quiet_log
from facegan_jax.system.errors import UserError
from facegan_jax.system.errors import exit_on_user_error

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Workdir of a training run (holds checkpoints/).')
flags.DEFINE_integer('step', None, 'Checkpoint step to sample from; default: the newest.')
flags.DEFINE_integer('num', 64, 'Number of samples in the grid.')
flags.DEFINE_integer('batch', 32, 'Images generated at a time: lower it if the device runs out '
                     'of memory; the images do not depend on it.')
flags.DEFINE_integer('seed', 0, 'Seed of the sample latents.')
flags.DEFINE_float('truncation', 1.0, 'StyleGAN2: truncation psi, e.g. 0.7; w is pulled towards '
                   'the tracked average w (1: off).')
flags.DEFINE_string('out', 'samples.png', 'Path of the PNG grid (.png: images are written '
                    'losslessly).')
flags.DEFINE_string('images_dir', None, 'If set, also write each sample as DIR/NNNN.png.')
flags.DEFINE_list('interpolate', None, 'Seeds to interpolate between, e.g. 0,1,2: writes a '
                  'strip per consecutive pair to --interpolation_out.')
flags.DEFINE_integer('frames', 8, 'Images per interpolation strip, end points included.')
flags.DEFINE_string('interpolation_out', 'interpolation.png', 'Path of the interpolation PNG.')
flags.DEFINE_enum('interpolate_in', 'z', ['z', 'w'], 'Interpolate spherically in z, or '
                  '(StyleGAN2) linearly in w.')
flags.DEFINE_list('mixing_rows', None, 'StyleGAN2: row seeds of a style-mixing figure.')
flags.DEFINE_list('mixing_columns', None, 'StyleGAN2: column seeds, whose styles replace the '
                  'rows\' --mixing_styles layers.')
flags.DEFINE_string('mixing_styles', '0-3', 'Layers A-B (or A,B,...) taken from the column seeds; '
                    '0 is the coarsest (4x4). 0-3: pose, face shape, hair style.')
flags.DEFINE_string('mixing_out', 'style_mixing.png', 'Path of the style-mixing PNG.')
flags.DEFINE_string('from', None, 'A projected.npz (python -m facegan_jax.project): with --to, '
                    'the interpolation strip from it to --to (slerp in z, lerp in w) and, for '
                    'StyleGAN2, its style mixing with --to.')
flags.DEFINE_string('to', None, 'The projected.npz that --from morphs into.')
compile_cache.define_flag()
flags.DEFINE_integer('class', None, 'A conditional run: the class K (0 to c_dim - 1) of every '
                     'sample (one-hot label).')
flags.mark_flag_as_required('workdir')


def write_samples(restored: generation.RestoredGenerator, out: str, num: int, seed: int,
                  images_dir: str | None):
  """Writes the grid (and, if `images_dir`, each image); returns the uint8 images."""
  images = restored.images(restored.seed_latents(seed, num))
  images_lib.save_png(out, images_lib.make_grid(images))
  if images_dir:
    storage.makedirs(images_dir)
    for index, image in enumerate(images):
      images_lib.save_png(os.path.join(images_dir, f'{index:04d}.png'), image)
  return images


MAX_SEED = 2**32 - 1  # jax.random.key(seed) keeps 32 bits: 2**32 would draw seed 0's faces


def parse_seeds(values, flag: str = 'interpolate', least: int = 2) -> list[int]:
  """--FLAG values -> seeds; UserError unless at least `least` integers in [0, MAX_SEED]."""
  if len(values) < least or not all(value.strip().isdigit() for value in values):
    count = {1: 'one', 2: 'two'}[least]
    raise UserError(f'--{flag}={",".join(values)} needs {count} or more integer seeds, '
                    f'e.g. --{flag}={",".join(map(str, range(max(least, 2))))}.')
  seeds = [int(value) for value in values]
  for seed in seeds:
    command_line.check_range(flag, seed, 0, MAX_SEED)
  return seeds


def parse_layers(text: str) -> list[int]:
  """'A-B' or 'A,B,...' -> layer indices; UserError otherwise."""
  parts = text.split('-') if '-' in text else text.split(',')
  if not text or not all(part.strip().isdigit() for part in parts) or (
      '-' in text and (len(parts) != 2 or int(parts[0]) > int(parts[1]))):
    raise UserError(f'--mixing_styles={text} is not a layer range; use e.g. 0-3 or 0,2,4.')
  numbers = [int(part) for part in parts]
  return list(range(numbers[0], numbers[1] + 1)) if '-' in text else numbers


def check_flags():
  """UserError for a bad number or output path, before anything is read or generated; returns
  (interpolation seeds or None, (mixing row seeds, column seeds, layers) or None)."""
  command_line.check_range('num', FLAGS.num, 1)
  command_line.check_range('batch', FLAGS.batch, 1)
  command_line.check_range('frames', FLAGS.frames, 2)
  command_line.check_range('seed', FLAGS.seed, 0, MAX_SEED)
  command_line.check_finite('truncation', FLAGS.truncation, '0.7')
  command_line.check_output_file('out', FLAGS.out)
  if FLAGS.images_dir:
    command_line.check_output_dir('images_dir', FLAGS.images_dir)
  seeds = parse_seeds(FLAGS.interpolate) if FLAGS.interpolate is not None else None
  if seeds:
    command_line.check_output_file('interpolation_out', FLAGS.interpolation_out)
  mixing = None
  if FLAGS.mixing_rows is not None or FLAGS.mixing_columns is not None:
    mixing = (parse_seeds(FLAGS.mixing_rows or [], 'mixing_rows', 1),
              parse_seeds(FLAGS.mixing_columns or [], 'mixing_columns', 1),
              parse_layers(FLAGS.mixing_styles))
    command_line.check_output_file('mixing_out', FLAGS.mixing_out)
  if (FLAGS['from'].value is None) != (FLAGS.to is None):
    raise UserError('--from and --to go together: pass both projected.npz files.')
  if FLAGS.to:
    command_line.check_output_file('interpolation_out', FLAGS.interpolation_out)
  return seeds, mixing


def check_model(restored: generation.RestoredGenerator, seeds, mixing):
  """UserError for what the restored network cannot do, before anything is generated."""
  if seeds and FLAGS.interpolate_in == 'w':
    restored.check_style_based('--interpolate_in=w', '(interpolate in z instead)')
  if mixing:
    restored.check_style_based('style mixing', '(it has no per-layer styles)')
    layers, resolution = restored.num_styles(), restored.config.model.resolution
    outside = [layer for layer in mixing[2] if layer >= layers]
    if outside:
      raise UserError(f'--mixing_styles={FLAGS.mixing_styles} names layer {outside[0]}, but '
                      f'layers 0-{layers - 1} exist for this {resolution}x{resolution} network.')


@exit_on_user_error
def main(argv):
  command_line.check_no_arguments(argv)
  quiet_log.install(FLAGS.verbosity)
  seeds, mixing = check_flags()
  compile_cache.enable(FLAGS.compilation_cache, FLAGS.workdir)
  restored = generation.RestoredGenerator(FLAGS.workdir, FLAGS.step, FLAGS.truncation,
                                          FLAGS.batch, FLAGS['class'].value)
  check_model(restored, seeds, mixing)
  write_samples(restored, FLAGS.out, FLAGS.num, FLAGS.seed, FLAGS.images_dir)
  print(f'Wrote {FLAGS.out} ({FLAGS.num} samples of step {restored.step}, seed {FLAGS.seed}).')
  if seeds:
    if FLAGS.interpolate_in == 'w':
      strip = restored.images_of_styles(
          generation.interpolation_styles(restored, seeds, FLAGS.frames))
    else:
      strip = restored.images(generation.interpolation_latents(restored, seeds, FLAGS.frames))
    images_lib.save_png(FLAGS.interpolation_out, images_lib.make_grid(strip, FLAGS.frames))
    print(f'Wrote {FLAGS.interpolation_out}.')
  if mixing:
    rows, columns, layers = mixing
    figure = generation.style_mixing_grid(restored, rows, columns, layers)
    images_lib.save_png(FLAGS.mixing_out, images_lib.make_grid(figure, 1 + len(columns)))
    print(f'Wrote {FLAGS.mixing_out}.')
  if FLAGS.to:
    write_morph(restored, FLAGS['from'].value, FLAGS.to)


def write_morph(restored: generation.RestoredGenerator, first: str, second: str):
  """The strip from projection `first` to `second` and, for StyleGAN2, their mixing figure."""
  space, ends = generation.projection_pair(restored, first, second)
  if space == 'z':
    strip = restored.images(generation.slerp(ends[0], ends[1], np.linspace(0.0, 1.0,
                                                                          FLAGS.frames)))
  else:
    strip = restored.images_of_styles(generation.lerp(ends[0], ends[1], FLAGS.frames))
  images_lib.save_png(FLAGS.interpolation_out, images_lib.make_grid(strip, FLAGS.frames))
  print(f'Wrote {FLAGS.interpolation_out} ({first} to {second} in {space}).')
  if space == 'w':
    figure = generation.style_mixing_figure(restored, ends[:1], ends[1:],
                                            parse_layers(FLAGS.mixing_styles))
    images_lib.save_png(FLAGS.mixing_out, images_lib.make_grid(figure, 2))
    print(f'Wrote {FLAGS.mixing_out}.')


if __name__ == '__main__':
  app.run(main, flags_parser=command_line.parse_flags)
