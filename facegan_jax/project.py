"""Find a real face in a generator: python -m facegan_jax.project --workdir=DIR --target=face.png --out=OUT/.

NVIDIA's projector (`sampling.projector`): from the run's tracked average w, Adam optimises w
(or with --w_plus one w per layer) and the constant noise maps of a StyleGAN2 run for
--num_steps steps so that the generated image is near the target in LPIPS (VGG-16); DCGAN and
SNGAN runs (and StyleGAN2 with --z) are optimised in z. The target is cropped and resized as the
run's training images were. Writes to --out:

  projected.npz      the latent ('w' [1 or num_ws, w_dim] or 'z' [latent_dim]), StyleGAN2's noise
                     maps ('noise/<layer path>'), and 'space', 'step', 'seed'
  projected.png      the generated image of the projection
  side_by_side.png   the target (as the model sees it) | the projection
  progress.png       the projection at 8 evenly spaced steps, from the start to the end

The same flags on the same machine give byte-identical files.
"""

import io
import os
import time

from absl import app
from absl import flags
import jax
import numpy as np

from facegan_jax.data import images as images_lib
from facegan_jax.metrics import lpips
from facegan_jax.runs import storage
from facegan_jax.sampling import generation
from facegan_jax.sampling import projector
from facegan_jax.system import command_line
from facegan_jax.system import compile_cache
from facegan_jax.system import quiet_log
from facegan_jax.system.errors import UserError
from facegan_jax.system.errors import exit_on_user_error

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Workdir of a training run or an imported network.')
flags.DEFINE_string('target', None, 'The face image to project (PNG or JPEG).')
flags.DEFINE_integer('step', None, 'Checkpoint step; default: the newest.')
flags.DEFINE_integer('num_steps', projector.Settings.num_steps, 'Optimisation steps.')
flags.DEFINE_integer('seed', 0, 'Seed of the initial noise maps and the latent noise.')
flags.DEFINE_bool('w_plus', False, 'StyleGAN2: optimise one w per layer (w+) instead of one w.')
flags.DEFINE_bool('z', False, 'StyleGAN2: optimise z through the mapping network instead of w '
                  '(DCGAN and SNGAN always project into z).')
flags.DEFINE_string('lpips_weights', lpips.DEFAULT_WEIGHTS, 'The converted LPIPS weights '
                    '(python -m facegan_jax.convert_lpips).')
flags.DEFINE_string('out', None, 'Output directory.')
compile_cache.define_flag()
flags.mark_flags_as_required(['workdir', 'target', 'out'])


def space_name(model_name: str) -> str:
  if FLAGS.w_plus and FLAGS.z:
    raise UserError('--w_plus and --z exclude each other; pass one.')
  if model_name != 'stylegan2':
    if FLAGS.w_plus:
      raise UserError(f'--w_plus needs a StyleGAN2 run; this one is {model_name!r} (drop it: '
                      'it projects into z).')
    return 'z'
  return 'z' if FLAGS.z else 'w_plus' if FLAGS.w_plus else 'w'


def save_latent(path: str, state: projector.ProjectionState, space: str, step: int, seed: int):
  """projected.npz: the latent, the noise maps, and what they belong to."""
  arrays = {'w' if space != 'z' else 'z': np.asarray(state.latent[0]),
            'space': np.asarray(space), 'step': np.asarray(step), 'seed': np.asarray(seed)}
  arrays.update({f'noise/{name}': np.asarray(noise) for name, noise in state.noise.items()})
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  storage.write_bytes(path, buffer.getvalue())


@exit_on_user_error
def main(argv):
  command_line.check_no_arguments(argv)
  quiet_log.install(FLAGS.verbosity)
  command_line.check_range('num_steps', FLAGS.num_steps, 1)
  command_line.check_output_dir('out', FLAGS.out)
  lpips_params = lpips.load(FLAGS.lpips_weights)
  compile_cache.enable(FLAGS.compilation_cache, FLAGS.workdir)
  restored = generation.RestoredGenerator(FLAGS.workdir, FLAGS.step)
  if restored.c_dim:
    raise UserError(f'{FLAGS.workdir} is a conditional run: the projector does not search its '
                    'labels yet; project into an unconditional run.')
  config = restored.config
  space = space_name(config.model.name)
  target_uint8 = projector.read_target(FLAGS.target, config.data.crop, config.model.resolution,
                                       config.model.channels)
  if config.model.resolution < lpips.MIN_SIZE:
    raise UserError(f'LPIPS needs images of at least {lpips.MIN_SIZE}x{lpips.MIN_SIZE}; this '
                    f'run draws {config.model.resolution}x{config.model.resolution}.')
  storage.makedirs(FLAGS.out)
  target = projector.target_array(target_uint8)
  latent_space = projector.make_space(restored.generator, restored.variables, config.model,
                                      space, FLAGS.seed)
  settings = projector.Settings(num_steps=FLAGS.num_steps)
  start = time.perf_counter()
  state, progress, losses = projector.project(latent_space, lpips.distance, lpips_params,
                                              target, settings, FLAGS.seed)
  seconds = time.perf_counter() - start
  save_latent(os.path.join(FLAGS.out, 'projected.npz'), state, space, restored.step, FLAGS.seed)
  pictures = images_lib.to_uint8(jax.device_get(progress))
  images_lib.save_png(os.path.join(FLAGS.out, 'projected.png'), pictures[-1])
  images_lib.save_png(os.path.join(FLAGS.out, 'side_by_side.png'),
                      images_lib.make_grid(np.stack([target_uint8, pictures[-1]]), 2))
  images_lib.save_png(os.path.join(FLAGS.out, 'progress.png'),
                      images_lib.make_grid(pictures, len(pictures)))
  first, last = progress[:1], progress[-1:]
  print(f'Projected {FLAGS.target} into {space} of step {restored.step} in {FLAGS.num_steps} '
        f'steps ({seconds:.1f} s, compilation included): LPIPS '
        f'{projector.perceptual_distance(lpips.distance, lpips_params, target, first):.4f} -> '
        f'{projector.perceptual_distance(lpips.distance, lpips_params, target, last):.4f}, pixel MSE '
        f'{projector.pixel_mse(target, first):.4f} -> {projector.pixel_mse(target, last):.4f}; '
        f'loss {losses[0]:.4f} -> {losses[-1]:.4f}. Wrote {FLAGS.out}.')


if __name__ == '__main__':
  app.run(main, flags_parser=command_line.parse_flags)
