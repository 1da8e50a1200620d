"""FID, KID, precision, recall, density and coverage of a trained run.

  python -m facegan_jax.evaluate --workdir=DIR [--step=N] [--num_samples=50000] [--truncation=0.7]

Restores the generator of the newest (or --step) checkpoint and the run's saved config, then
compares config.eval.num_samples generated images with the run's training images exactly as the
evaluation during training does (same latents, same cached reference features, so the numbers
agree; a StyleGAN2 run may be evaluated truncated, as some published numbers are).
Prints one line with the protocol and sample counts and writes them, with the data
split and the Inception weights' digest, to DIR/eval/step_NNNNNNN-PROTOCOL-nCOUNT[-psiT].json
(results of different protocols, counts or truncations are kept apart). The Inception weights
are config.eval.inception_weights unless --inception_weights is given (README, "Evaluation and
TensorBoard", says how to get them); eval fields that a run's saved config lacks (runs older
than the field) take the current defaults.
"""

import functools
import json
import os

from absl import app
from absl import flags

from facegan_jax.data import image_sources
from facegan_jax.metrics import fid
from facegan_jax.metrics import inception
from facegan_jax.runs import storage
from facegan_jax.sampling import generation
from facegan_jax.system import command_line
from facegan_jax.system import compile_cache
from facegan_jax.system import parallel
from facegan_jax.system import quiet_log
from facegan_jax.system.errors import UserError
from facegan_jax.system.errors import exit_on_user_error

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Workdir of a training run (holds checkpoints/).')
flags.DEFINE_integer('step', None, 'Checkpoint step to evaluate; default: the newest.')
compile_cache.define_flag()
flags.mark_flag_as_required('workdir')
flags.DEFINE_integer('num_samples', None, 'Generated images; default: the run\'s '
                     'config.eval.num_samples (10,000 unless changed). Papers use 50,000.')
flags.DEFINE_string('inception_weights', None, 'FID Inception .npz; default: the run\'s '
                    'config.eval.inception_weights.')
flags.DEFINE_enum('protocol', None, list(inception.PROTOCOLS), 'Resizing to 299x299; default: '
                  'the run\'s config.eval.protocol (README, "Evaluation" says which published '
                  'numbers each one compares with).')
flags.DEFINE_float('truncation', 1.0, 'StyleGAN2: truncation psi of the generated images (1: '
                   'none); written with the result.')


def restore(workdir: str, step: int | None = None, num_samples: int | None = None,
            inception_weights: str | None = None, protocol: str | None = None,
            truncation: float = 1.0) -> generation.RestoredGenerator:
  """The generator of a checkpoint in `workdir`, its config.eval overridden by the arguments
  that are not None. UserError for a non-finite `truncation` or fewer than 2 samples."""
  if num_samples is not None:
    command_line.check_range('num_samples', num_samples, 2)
  try:
    restored = generation.RestoredGenerator(workdir, step, truncation)
  except generation.ClassNeeded as error:
    raise UserError(f'{workdir} is a conditional run: evaluate does not draw its labels yet; '
                    'its FID during training (config.eval.every) draws them from the data.'
                    ) from error
  overrides = {'num_samples': num_samples, 'inception_weights': inception_weights,
               'protocol': protocol}
  restored.config.eval.update({field: value for field, value in overrides.items()
                               if value is not None})
  return restored


def evaluate_restored(restored: generation.RestoredGenerator, truncation: float = 1.0) -> dict:
  """{'step', 'fid', 'kid', 'precision', 'recall', 'density', 'coverage'} of `restore`'s
  generator, with what they were computed on (fid.Evaluator.context: 'protocol',
  'num_generated', 'num_real', 'source', 'split', 'inception'; and 'truncation').

  The generator samples as in training (`generation`): the EMA one when the run kept it;
  `truncation` < 1 (StyleGAN2 only, else UserError) pulls its w towards the tracked average.
  """
  config = restored.config
  extractor = fid.make_extractor(config.eval, parallel.make_mesh())
  evaluator = fid.make_evaluator(config, functools.partial(generation.generate,
                                                           restored.generator,
                                                           truncation=truncation),
                                 extractor, image_sources.load_images(config))
  return dict(step=restored.step, **evaluator(restored.variables), **evaluator.context,
              truncation=truncation)


def evaluate_checkpoint(workdir: str, step: int | None = None, num_samples: int | None = None,
                        inception_weights: str | None = None,
                        protocol: str | None = None, truncation: float = 1.0) -> dict:
  """`evaluate_restored` of `restore(...)`: the scores of a checkpoint in `workdir`."""
  return evaluate_restored(restore(workdir, step, num_samples, inception_weights, protocol,
                                   truncation), truncation)


def result_path(workdir: str, step: int, eval_config, truncation: float) -> str:
  """WORKDIR/eval/step_NNNNNNN-PROTOCOL-nCOUNT[-psiT].json: results of different protocols,
  sample counts or truncations never replace each other."""
  name = f'step_{step:07d}-{eval_config.protocol}-n{eval_config.num_samples}'
  if truncation != 1:
    name += f'-psi{truncation:g}'
  return os.path.join(workdir, 'eval', f'{name}.json')


@exit_on_user_error
def main(argv):
  command_line.check_no_arguments(argv)
  quiet_log.install(FLAGS.verbosity)
  command_line.check_finite('truncation', FLAGS.truncation, '0.7')
  compile_cache.enable(FLAGS.compilation_cache, FLAGS.workdir)
  restored = restore(FLAGS.workdir, FLAGS.step, FLAGS.num_samples, FLAGS.inception_weights,
                     FLAGS.protocol, FLAGS.truncation)
  path = result_path(FLAGS.workdir, restored.step, restored.config.eval, FLAGS.truncation)
  command_line.check_output_dir('workdir', os.path.dirname(path))
  result = evaluate_restored(restored, FLAGS.truncation)
  storage.makedirs(os.path.dirname(path))
  storage.write_text(path, json.dumps(result, indent=2))
  print(f'step {result["step"]}: FID {result["fid"]:.4f} KID {result["kid"]:.6f} '
        f'precision {result["precision"]:.4f} recall {result["recall"]:.4f} '
        f'density {result["density"]:.4f} coverage {result["coverage"]:.4f} '
        f'({fid.describe(result)}, truncation {result["truncation"]:g}); wrote {path}')


if __name__ == '__main__':
  app.run(main, flags_parser=command_line.parse_flags)
