"""The projector on held-out LFW faces: LPIPS and pixel MSE before and after, w against z.

  python benchmarks/projector.py --workdir=/tmp/proj/sg2 --faces=92-99 --num_steps=200 \
      --out=/tmp/proj/bench_sg2

Projects the LFW faces of skimage's lfw_subset with the given indices (prepared as the
'lfw_subset' source prepares training images; repeated to RGB for an RGB model) into each space
(StyleGAN2: w and z; others: z) with one compiled step per space, and prints per space the mean
LPIPS and pixel MSE (the [0, 1] scale) at the start and after --num_steps, and the time per step
after the first (compilation excluded). Writes OUT/side_by_side.png: one row per face, target |
projection in w | projection in z.
"""

import time

from absl import app
from absl import flags
import jax
import numpy as np

from facegan_jax.data import image_sources
from facegan_jax.data import images as images_lib
from facegan_jax.metrics import lpips
from facegan_jax.runs import storage
from facegan_jax.sampling import generation
from facegan_jax.sampling import projector

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'A StyleGAN2 (or DCGAN/SNGAN) run.')
flags.DEFINE_string('faces', '92-99', 'Indices A-B of lfw_subset\'s 100 faces to project.')
flags.DEFINE_integer('num_steps', 200, 'Optimisation steps per face.')
flags.DEFINE_string('out', '/tmp/proj/bench', 'Output directory.')
flags.mark_flag_as_required('workdir')


def main(_):
  restored = generation.RestoredGenerator(FLAGS.workdir)
  model = restored.config.model
  first, last = (int(part) for part in FLAGS.faces.split('-'))
  faces = image_sources.lfw_faces(model.resolution)[first:last + 1]
  if model.channels == 3:
    faces = np.repeat(faces, 3, axis=-1)
  params = lpips.load()
  settings = projector.Settings(num_steps=FLAGS.num_steps)
  spaces = ('w', 'z') if model.name == 'stylegan2' else ('z',)
  columns = [faces]
  for name in spaces:
    space = projector.make_space(restored.generator, restored.variables, model, name, seed=0)
    step_fn = projector.make_step(space, settings, lpips.distance)
    before, after, finals, seconds = [], [], [], []
    for face in faces:
      target = projector.target_array(face)
      start = time.perf_counter()
      state, progress, _ = projector.project(space, lpips.distance, params, target, settings, 0, 2,
                                                  step_fn)
      jax.block_until_ready(state)
      seconds.append(time.perf_counter() - start)
      before.append((projector.perceptual_distance(lpips.distance, params, target, progress[:1]),
                     projector.pixel_mse(target, progress[:1])))
      after.append((projector.perceptual_distance(lpips.distance, params, target, progress[-1:]),
                    projector.pixel_mse(target, progress[-1:])))
      finals.append(images_lib.to_uint8(jax.device_get(progress[-1])))
    columns.append(np.stack(finals))
    # The first face's time includes compiling the step; the others' do not.
    per_step = np.mean(seconds[1:]) / FLAGS.num_steps if len(seconds) > 1 else float('nan')
    (lpips0, mse0), (lpips1, mse1) = np.mean(before, 0), np.mean(after, 0)
    print(f'{FLAGS.workdir} {name}: {len(faces)} faces, {FLAGS.num_steps} steps: LPIPS '
          f'{lpips0:.4f} -> {lpips1:.4f}, pixel MSE {mse0:.4f} -> {mse1:.4f}; '
          f'{per_step * 1000:.1f} ms/step (first face with compilation: {seconds[0]:.1f} s); '
          f'per face LPIPS after: {" ".join(f"{x:.3f}" for x, _ in after)}')
  storage.makedirs(FLAGS.out)
  grid = np.stack(columns, axis=1).reshape((-1,) + faces.shape[1:])
  images_lib.save_png(f'{FLAGS.out}/side_by_side.png', images_lib.make_grid(grid, len(columns)))
  print(f'Wrote {FLAGS.out}/side_by_side.png (rows: faces; columns: target, '
        f'{", ".join(spaces)}).')


if __name__ == '__main__':
  app.run(main)
