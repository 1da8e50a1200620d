"""FID and KID of a trained run: python -m facegan_jax.evaluate --workdir=DIR [--step=N].

Restores the generator of the newest (or --step) checkpoint and the run's saved config, then
compares config.eval.num_samples generated images with the run's training images exactly as the
evaluation during training does (same latents, same cached reference features, so the numbers
agree). Prints one line and writes DIR/eval/step_NNNNNNN.json. For numbers to publish:
--num_samples=50000; the Inception weights are config.eval.inception_weights unless
--inception_weights is given (README, "Evaluation and TensorBoard", says how to get them).
"""

import functools
import json
import os

from absl import app
from absl import flags
from absl import logging

from facegan_jax import fid
from facegan_jax import generation
from facegan_jax import image_sources
from facegan_jax import parallel
from facegan_jax import quiet_log
from facegan_jax.errors import exit_on_user_error

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Workdir of a training run (holds checkpoints/).')
flags.DEFINE_integer('step', None, 'Checkpoint step to evaluate; default: the newest.')
flags.mark_flag_as_required('workdir')
flags.DEFINE_integer('num_samples', None, 'Generated images; default: the run\'s '
                     'config.eval.num_samples (10,000 unless changed). Papers use 50,000.')
flags.DEFINE_string('inception_weights', None, 'FID Inception .npz; default: the run\'s '
                    'config.eval.inception_weights.')


def evaluate_checkpoint(workdir: str, step: int | None = None, num_samples: int | None = None,
                        inception_weights: str | None = None) -> dict:
  """{'step', 'fid', 'kid', 'num_samples', 'num_real'} of a checkpoint in `workdir`.

  The generator samples as in training (`generation`): the EMA one when the run kept it.
  """
  restored = generation.RestoredGenerator(workdir, step)
  config = restored.config
  if num_samples is not None:
    config.eval.num_samples = num_samples
  if inception_weights is not None:
    config.eval.inception_weights = inception_weights
  extractor = fid.FeatureExtractor(config.eval, parallel.make_mesh())
  evaluator = fid.Evaluator(config, functools.partial(generation.generate, restored.generator),
                            extractor, image_sources.load_images(config))
  return dict(step=restored.step, **evaluator(restored.variables),
              num_samples=config.eval.num_samples, num_real=len(evaluator.real))


@exit_on_user_error
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  quiet_log.install(FLAGS.verbosity)
  result = evaluate_checkpoint(FLAGS.workdir, FLAGS.step, FLAGS.num_samples,
                               FLAGS.inception_weights)
  path = os.path.join(FLAGS.workdir, 'eval', f'step_{result["step"]:07d}.json')
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    json.dump(result, f, indent=2)
  logging.info('Wrote %s', path)
  print(f'step {result["step"]}: FID {result["fid"]:.4f} KID {result["kid"]:.6f} '
        f'({result["num_samples"]} generated vs {result["num_real"]} real images)')


if __name__ == '__main__':
  app.run(main)
