"""The cost of ADA's augment pipe: the pipe alone per image, and the train step with and without it.

  python benchmarks/augment_pipe.py [--configs=lfw_demo,celeba] [--pipe=bgc]
      [--batch_size=64] [--steps=5]

For each config: the pipe's forward pass (jitted, on a batch of the config's image shape, at
p = 1, where every transform is drawn; its cost does not depend on p, which only gates the
draws), and the median time (of --steps calls, step_timing's flag) of the train step
(step_timing's compiled step, warmed up) with config.augment.pipe = '' and = PIPE. A step runs
the pipe forward on the reals and fakes of each D update (again for R1 when it is in D's loss)
and on the fakes of G's update, and backward through the fakes.
"""

import os
import statistics
import sys
import time

if not __package__:  # run as `python benchmarks/FILE.py`: make the repository root importable
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
from absl import app
from absl import flags

from benchmarks import step_timing
from facegan_jax.training import augment_pipe

flags.DEFINE_list('configs', ['lfw_demo', 'celeba'], "Configs 'NAME[:variant]'.")
flags.DEFINE_string('pipe', 'bgc', 'The augment pipe preset to time.')
flags.DEFINE_integer('batch_size', 64, 'Global batch size of the pipe and the steps.')
FLAGS = flags.FLAGS


def median_seconds(function, count):
  """Median wall time of `count` calls of function() (which blocks until its result is ready)."""
  seconds = []
  for _ in range(count):
    start = time.perf_counter()
    function()
    seconds.append(time.perf_counter() - start)
  return statistics.median(seconds)


def pipe_seconds(image_shape, settings, count):
  """Median seconds of the jitted pipe on a batch of `image_shape` [N, H, W, C], after warm-up."""
  images = jax.random.uniform(jax.random.key(0), image_shape, minval=-1, maxval=1)
  pipe = jax.jit(lambda key, x: augment_pipe.augment_with_key(key, x, 1.0, settings))
  run = lambda: pipe(jax.random.key(1), images).block_until_ready()
  run()
  return median_seconds(run, count)


def step_seconds(config, count):
  trainer, compiled, state, batch, _ = step_timing.compile_step(config, FLAGS.batch_size)
  seconds, _ = step_timing.timed_steps(trainer, compiled, state, batch, count)
  return statistics.median(seconds)


def main(argv):
  del argv
  print(f'{jax.devices()[0].device_kind}, batch {FLAGS.batch_size}, pipe {FLAGS.pipe!r}')
  print('| config | image | pipe ms/image | step ms/image without | with | pipe share |')
  print('| --- | --- | --- | --- | --- | --- |')
  for name in FLAGS.configs:
    config = step_timing.load_config(name)
    size, channels = config.model.resolution, config.model.channels
    pipe = pipe_seconds((FLAGS.batch_size, size, size, channels),
                        augment_pipe.preset(FLAGS.pipe), FLAGS.steps)
    without = step_seconds(config, FLAGS.steps)
    config.augment.update(policy='', pipe=FLAGS.pipe)
    with_pipe = step_seconds(config, FLAGS.steps)
    per_image = lambda seconds: f'{1000 * seconds / FLAGS.batch_size:.3f}'
    print(f'| {name} | {size}x{size}x{channels} | {per_image(pipe)} | {per_image(without)} | '
          f'{per_image(with_pipe)} | {(with_pipe - without) / with_pipe:.0%} |', flush=True)


if __name__ == '__main__':
  app.run(main)
