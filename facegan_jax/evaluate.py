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
from facegan_jax.metrics import lpips
from facegan_jax.metrics import ppl
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
flags.DEFINE_bool('ppl', False, 'Also the perceptual path length under the run\'s '
                  'config.eval.ppl_* fields (StyleGAN\'s definition; needs the LPIPS weights).')
flags.DEFINE_integer('ppl_samples', None, 'Path lengths; default: config.eval.ppl_samples.')
flags.DEFINE_enum('ppl_space', None, ['w', 'z'], 'Default: config.eval.ppl_space.')
flags.DEFINE_enum('ppl_sampling', None, ['end', 'full'], 'Default: config.eval.ppl_sampling.')
flags.DEFINE_bool('fid', True, 'FID, KID, precision/recall, density/coverage (--nofid with '
                  '--ppl: PPL alone, without the Inception weights).')
flags.DEFINE_float('truncation', 1.0, 'StyleGAN2: truncation psi of the generated images (1: '
                   'none); written with the result.')


def restore(workdir: str, step: int | None = None, num_samples: int | None = None,
            inception_weights: str | None = None, protocol: str | None = None,
            truncation: float = 1.0,
            ppl_overrides: dict | None = None) -> generation.RestoredGenerator:
  """The generator of a checkpoint in `workdir`, its config.eval overridden by the arguments
  that are not None (`ppl_overrides`: {'ppl_samples': ...}). UserError for a non-finite
  `truncation` or fewer than 2 samples."""
  if num_samples is not None:
    command_line.check_range('num_samples', num_samples, 2)
  restored = generation.RestoredGenerator(workdir, step, truncation)
  overrides = {'num_samples': num_samples, 'inception_weights': inception_weights,
               'protocol': protocol, **(ppl_overrides or {})}
  restored.config.eval.update({field: value for field, value in overrides.items()
                               if value is not None})
  return restored


def evaluate_restored(restored: generation.RestoredGenerator, truncation: float = 1.0,
                      with_fid: bool = True, with_ppl: bool = False) -> dict:
  """{'step', 'fid', 'kid', 'precision', 'recall', 'density', 'coverage'} of `restore`'s
  generator, with what they were computed on (fid.Evaluator.context: 'protocol',
  'num_generated', 'num_real', 'source', 'split', 'inception'; and 'truncation').

  The generator samples as in training (`generation`): the EMA one when the run kept it, a
  conditional run's with labels drawn from its training labels (`fid.generator_inputs`);
  `truncation` < 1 (StyleGAN2 only, else UserError) pulls its w towards the tracked average.
  `with_ppl` adds ppl.of_generator's fields (the untruncated generator, config.eval.ppl_*);
  `with_fid` False leaves out the Inception metrics; `ppl_overrides` {'ppl_samples': ...}
  replace config.eval's fields where not None.
  """
  config = restored.config
  result = dict(step=restored.step)
  if with_ppl:
    ppl.check_applies(config.model, config.eval)  # before the LPIPS weights are read
    result.update(ppl.of_generator(restored.generator, restored.variables, config.model,
                                   config.eval, config.seed,
                                   lpips.load(config.eval.lpips_weights)))
  if not with_fid:
    return result
  extractor = fid.make_extractor(config.eval, parallel.make_mesh())
  dataset = image_sources.load_dataset(config)
  evaluator = fid.make_evaluator(config, functools.partial(generation.generate,
                                                           restored.generator,
                                                           truncation=truncation),
                                 extractor, dataset.images, dataset.labels)
  return dict(result, **evaluator(restored.variables), **evaluator.context,
              truncation=truncation)


def evaluate_checkpoint(workdir: str, step: int | None = None, num_samples: int | None = None,
                        inception_weights: str | None = None,
                        protocol: str | None = None, truncation: float = 1.0,
                        with_fid: bool = True, with_ppl: bool = False,
                        ppl_overrides: dict | None = None) -> dict:
  """`evaluate_restored` of `restore(...)`: the scores of a checkpoint in `workdir`."""
  return evaluate_restored(restore(workdir, step, num_samples, inception_weights, protocol,
                                   truncation, ppl_overrides), truncation, with_fid, with_ppl)


def result_path(workdir: str, step: int, eval_config, truncation: float) -> str:
  """WORKDIR/eval/step_NNNNNNN-PROTOCOL-nCOUNT[-psiT].json: results of different protocols,
  sample counts or truncations never replace each other."""
  name = f'step_{step:07d}-{eval_config.protocol}-n{eval_config.num_samples}'
  if truncation != 1:
    name += f'-psi{truncation:g}'
  return os.path.join(workdir, 'eval', f'{name}.json')


def ppl_result_path(workdir: str, step: int, eval_config) -> str:
  """WORKDIR/eval/step_NNNNNNN-ppl-SPACE-SAMPLING-nCOUNT.json, beside the FID results."""
  return os.path.join(workdir, 'eval', f'step_{step:07d}-ppl-{eval_config.ppl_space}-'
                      f'{eval_config.ppl_sampling}-n{eval_config.ppl_samples}.json')


@exit_on_user_error
def main(argv):
  command_line.check_no_arguments(argv)
  quiet_log.install(FLAGS.verbosity)
  if not (FLAGS.fid or FLAGS.ppl):
    raise UserError('--nofid without --ppl leaves nothing to evaluate; add --ppl.')
  command_line.check_finite('truncation', FLAGS.truncation, '0.7')
  compile_cache.enable(FLAGS.compilation_cache, FLAGS.workdir)
  restored = restore(FLAGS.workdir, FLAGS.step, FLAGS.num_samples, FLAGS.inception_weights,
                     FLAGS.protocol, FLAGS.truncation,
                     dict(ppl_samples=FLAGS.ppl_samples, ppl_space=FLAGS.ppl_space,
                          ppl_sampling=FLAGS.ppl_sampling))
  paths = {}
  if FLAGS.fid:
    paths['fid'] = result_path(FLAGS.workdir, restored.step, restored.config.eval,
                               FLAGS.truncation)
  if FLAGS.ppl:
    paths['ppl'] = ppl_result_path(FLAGS.workdir, restored.step, restored.config.eval)
  for path in paths.values():
    command_line.check_output_dir('workdir', os.path.dirname(path))
  result = evaluate_restored(restored, FLAGS.truncation, FLAGS.fid, FLAGS.ppl)
  for kind, path in paths.items():
    fields = {name: value for name, value in result.items()
              if name == 'step' or name.startswith('ppl') == (kind == 'ppl')}
    storage.makedirs(os.path.dirname(path))
    storage.write_text(path, json.dumps(fields, indent=2))
  if FLAGS.fid:
    print(f'step {result["step"]}: FID {result["fid"]:.4f} KID {result["kid"]:.6f} '
          f'precision {result["precision"]:.4f} recall {result["recall"]:.4f} '
          f'density {result["density"]:.4f} coverage {result["coverage"]:.4f} '
          f'({fid.describe(result)}, truncation {result["truncation"]:g}); wrote {paths["fid"]}')
  if FLAGS.ppl:
    print(f'step {result["step"]}: PPL {result["ppl"]:.2f} ({result["ppl_samples"]} samples, '
          f'space {result["ppl_space"]}, sampling {result["ppl_sampling"]}, epsilon '
          f'{result["ppl_epsilon"]:g}, crop {result["ppl_crop"]}); wrote {paths["ppl"]}')


if __name__ == '__main__':
  app.run(main, flags_parser=command_line.parse_flags)
