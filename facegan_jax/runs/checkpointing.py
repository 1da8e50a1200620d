"""Orbax checkpoints in `workdir/checkpoints`: save, resume with config checks, partial restore.

Each step is a directory with two items: `state` (the TrainState as a state dict) and `run` (the
resolved config and the versions of jax, flax and facegan_jax, as JSON). Orbax writes a step
into a temporary directory and renames it when complete, so a crash at any moment leaves either
a complete checkpoint or none that `all_steps` lists.
"""

import contextlib
import copy
import errno
import importlib.metadata
import os
import re
from typing import Any

import flax
import jax
import ml_collections
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

import facegan_jax
from configs import default
from facegan_jax.runs import storage
from facegan_jax.system.errors import StopRun
from facegan_jax.system.errors import UserError

CHECKPOINTS = 'checkpoints'

# Fields (or whole sections, ending in '.') that may differ between a run and its resumption:
# they change how long it runs, what it reports, or where inputs live, not what is trained;
# and the learning rates, the way to continue a run that diverged (README, 'When things go
# wrong'): Adam's state does not depend on them, the run from there on is a new one (no longer
# equal to an uninterrupted run of either config), and metrics.jsonl records the rates in use.
RESUMABLE_CHANGES = ('train.num_steps', 'train.log_every', 'samples.', 'checkpoint.', 'eval.',
                     'data.data_dir', 'data.cache_dir', 'data.threads', 'data.prefetch',
                     'deterministic', 'compilation_cache', 'optim.g_learning_rate',
                     'optim.d_learning_rate')

# TrainState fields added since checkpoints were first written (StyleGAN2's path-length mean,
# ADA's p and accumulators): an older checkpoint lacks them, and resumes with their initial
# values, which it never changed.
ADDED_STATE_FIELDS = ('pl_mean', 'ada_p', 'ada_sign_sum', 'ada_count')

# Config fields renamed since checkpoints were first written: old dotted name -> new one. A saved
# config is read with the new names, so old workdirs resume and sample.
RENAMED_FIELDS = {'train.sample_every': 'samples.every', 'train.num_samples': 'samples.count',
                  'eval.eval_every': 'eval.every'}


def is_resumable_change(field: str) -> bool:
  return any(field == allowed or (allowed.endswith('.') and field.startswith(allowed))
             for allowed in RESUMABLE_CHANGES)


def checkpoint_dir(workdir: str) -> epath.Path:
  directory = epath.Path(workdir)
  return (directory if storage.is_gcs(workdir) else directory.absolute()) / CHECKPOINTS


def make_manager(workdir: str, keep: int = 1, create: bool = True) -> ocp.CheckpointManager:
  """The run's CheckpointManager; keeps the newest `keep` checkpoints."""
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def versions() -> dict[str, str]:
  return {'jax': jax.__version__, 'jaxlib': importlib.metadata.version('jaxlib'),
          'flax': flax.__version__, 'orbax-checkpoint': importlib.metadata.version(
              'orbax-checkpoint'), 'facegan_jax': facegan_jax.__version__}


# What TensorStore's status codes stand for when a file write fails (absl's ErrnoToStatusCode):
STATUS_OF_FAILED_WRITE = {'OUT_OF_RANGE': os.strerror(errno.EFBIG),
                          'RESOURCE_EXHAUSTED': 'No space left on device, or over quota',
                          'PERMISSION_DENIED': os.strerror(errno.EACCES)}


def write_error_reason(error: BaseException) -> str:
  """The OS's words for why a write failed: the errno that Python or TensorStore reports anywhere
  in the error's chain, else the meaning of TensorStore's status code, else the first line."""
  chain = []
  while error is not None and error not in chain:
    chain.append(error)
    error = error.__cause__ or error.__context__
  text = '\n'.join(str(link) for link in chain)
  codes = [link.errno for link in chain if isinstance(link, OSError) and link.errno]
  codes += [int(code) for code in re.findall(r'os_error_code=\W?(\d+)', text)]
  if codes:
    return os.strerror(codes[0])
  status = re.match(r'\s*([A-Z_]+): ', text)
  if status and status.group(1) in STATUS_OF_FAILED_WRITE:
    return STATUS_OF_FAILED_WRITE[status.group(1)]
  return (text.strip().splitlines() or [type(chain[0]).__name__])[0][:200]


def write_failed(manager: ocp.CheckpointManager, error: Exception) -> UserError:
  """One line for a checkpoint that could not be written (a full disk, a quota, a size limit; in
  GCS also a refusal or a lost network): the directory, the reason, and the newest checkpoint
  that is intact."""
  reason = write_error_reason(error)
  in_gcs = storage.is_gcs(str(manager.directory))
  # Orbax writes into *.orbax-checkpoint-tmp and renames when complete (in GCS it writes
  # commit_success.txt last): what is listed is whole.
  try:
    manager.reload()
    steps = manager.all_steps()
    intact = (f'the newest checkpoint there, step {max(steps)}, is intact' if steps
              else 'no earlier checkpoint was written')
  except Exception:  # pylint: disable=broad-except
    intact = 'its checkpoints could not be listed either'  # the bucket cannot be reached
  if jax.process_index() == 0 and not in_gcs:  # the partial write only takes space: remove it
    for partial in epath.Path(manager.directory).glob('*.orbax-checkpoint-tmp*'):
      try:
        partial.rmtree()
      except OSError:
        pass  # what is left is only taken space
  fix = ('Check the network and the bucket (permissions, quota), then run the same command to '
         'resume' if in_gcs else 'Free space there (or lower config.checkpoint.keep) and run the '
         'same command to resume')
  return UserError(f'could not write a checkpoint in {manager.directory} ({reason}); {intact}. '
                   f'{fix}.')


@contextlib.contextmanager
def reporting_write_errors(manager: ocp.CheckpointManager):
  """Turns an error of a checkpoint write (raised by orbax at a later call) into `write_failed`."""
  try:
    yield
  except StopRun:
    raise
  except Exception as error:  # pylint: disable=broad-except
    raise write_failed(manager, error) from None


def save(manager: ocp.CheckpointManager, state, config: ml_collections.ConfigDict):
  """Starts an asynchronous save of `state` at its step (then call `wait_until_finished`).

  UserError (`write_failed`) if this or an earlier save could not be written.
  """
  run = {'config': config.to_dict(), 'versions': versions()}
  with reporting_write_errors(manager):
    manager.save(int(state.step), args=ocp.args.Composite(
        state=ocp.args.PyTreeSave(flax.serialization.to_state_dict(state)),
        run=ocp.args.JsonSave(run)))


def wait_until_finished(manager: ocp.CheckpointManager):
  """Waits for the saves in flight; UserError (`write_failed`) if one could not be written."""
  with reporting_write_errors(manager):
    manager.wait_until_finished()


@contextlib.contextmanager
def training_manager(workdir: str, keep: int):
  """`make_manager` for the run, closed at the end; a write error found on closing is reported
  as `write_failed` unless another error is already on its way."""
  manager = make_manager(workdir, keep)
  try:
    yield manager
  except BaseException:
    try:
      manager.close()
    except Exception:  # pylint: disable=broad-except
      pass  # the error already raised says what happened first
    raise
  with reporting_write_errors(manager):
    manager.close()


def _restore_args(template):
  return ocp.args.PyTreeRestore(
      item=template, restore_args=ocp.checkpoint_utils.construct_restore_args(template))


def restore_state(manager: ocp.CheckpointManager, step: int, state):
  """The checkpoint of `step`, restored into the structure and shardings of `state`.

  A checkpoint written before a field of ADDED_STATE_FIELDS existed keeps `state`'s value of it.
  """
  template = flax.serialization.to_state_dict(state)
  try:
    restored = manager.restore(step, args=ocp.args.Composite(state=_restore_args(template)))
  except ValueError as error:
    # Orbax names each field the checkpoint lacks on a line of its own, as 'name:'.
    missing = [field for field in ADDED_STATE_FIELDS if f'{field}:' in str(error).split()]
    if not missing:
      raise
    older = {name: value for name, value in template.items() if name not in missing}
    restored = manager.restore(step, args=ocp.args.Composite(state=_restore_args(older)))
    return flax.serialization.from_state_dict(state, dict(template, **restored['state']))
  return flax.serialization.from_state_dict(state, restored['state'])


def restore_fields(manager: ocp.CheckpointManager, step: int, abstract: dict[str, Any]):
  """Only the named TrainState fields, e.g. {'g_params': tree of ShapeDtypeStruct}, as numpy."""
  args = ocp.args.PyTreeRestore(
      item=abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
      partial_restore=True)
  return manager.restore(step, args=ocp.args.Composite(state=args))['state']


def upgrade_saved_config(saved: dict[str, Any]) -> dict[str, Any]:
  """A saved config dict with today's field names (RENAMED_FIELDS), and the fields added since
  at their configs/default.py values (which reproduce what runs did before a field existed);
  the input is not changed."""
  upgraded = copy.deepcopy(saved)
  for old, new in RENAMED_FIELDS.items():
    old_section, old_name = old.split('.')
    if old_name in upgraded.get(old_section, {}):
      new_section, new_name = new.split('.')
      upgraded.setdefault(new_section, {})[new_name] = upgraded[old_section].pop(old_name)
  for section, fields in default.get_config().to_dict().items():
    if isinstance(fields, dict):
      for name, value in fields.items():
        upgraded.setdefault(section, {}).setdefault(name, value)
    else:
      upgraded.setdefault(section, fields)
  return upgraded


def restore_run(manager: ocp.CheckpointManager, step: int) -> dict[str, Any]:
  """{'config': dict with today's field names, 'versions': dict} saved with `step`."""
  run = manager.restore(step, args=ocp.args.Composite(run=ocp.args.JsonRestore()))['run']
  return dict(run, config=upgrade_saved_config(run['config']))


def _flatten(tree, prefix=''):
  if isinstance(tree, dict):
    items = {}
    for key, value in tree.items():
      items.update(_flatten(value, f'{prefix}{key}.'))
    return items
  return {prefix[:-1]: tree}


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
  """'field: saved -> current' for each field that differs and would change the training."""
  old, new = _flatten(saved), _flatten(current)
  missing = object()
  return [f'{field}: {old.get(field, missing)!r} -> {new.get(field, missing)!r}'.replace(
      repr(missing), '(absent)')
          for field in sorted(set(old) | set(new))
          if old.get(field, missing) != new.get(field, missing)
          and not is_resumable_change(field)]


def check_resumable(workdir: str, saved_config: dict[str, Any],
                    config: ml_collections.ConfigDict):
  """UserError listing every field whose change cannot continue the run in `workdir`."""
  differences = config_differences(saved_config, config.to_dict())
  if differences:
    raise UserError(f'cannot resume the run in {workdir}: the config differs in '
                    f'{len(differences)} field(s) that change training: '
                    f'{"; ".join(differences)}. Restore these values, or use a new --workdir.')


def damaged(workdir: str, steps: list[int], error: Exception,
            purpose: str = 'resume from') -> UserError:
  """The message for an unreadable checkpoint steps[0] (the newest unless asked for): which
  one, its cause (cut at a word, not in one), and the way forward: fall back to steps[1] for
  `purpose` ('resume from', 'sample from'), or, when it is the only one, restore it from a
  backup or move it aside and start again."""
  directory = checkpoint_dir(workdir)
  damaged_dir = str(directory / str(steps[0]))
  move = storage.move_command(damaged_dir, f'{damaged_dir}.damaged')
  message = (f'the latest checkpoint in {damaged_dir} cannot be read '
             f'({type(error).__name__}: {_first_words(error)})')
  if len(steps) > 1:
    message += f'; to {purpose} step {steps[1]}, move it aside: {move}'
  else:
    message += (f'; it is the only checkpoint: restore it from a backup, or move it aside '
                f'({move}) and train the run again from step 0')
  return UserError(message + '. Nothing was changed in the workdir.')


def _first_words(error: Exception, limit: int = 200) -> str:
  """The first line of `error`'s message, at most `limit` characters, cut after a whole word."""
  line = (str(error).strip().splitlines() or [''])[0]
  if len(line) <= limit:
    return line
  return line[:limit].rsplit(' ', 1)[0].rstrip(' ,;:') + ' ...'


def check_can_resume(manager: ocp.CheckpointManager, workdir: str,
                     config: ml_collections.ConfigDict) -> int | None:
  """The newest checkpoint's step (None if there is none) after checking, from its saved config
  alone, that `config` can continue the run: cheap, so that it comes before anything compiles.
  Raises UserError, changing nothing on disk, when it cannot or the checkpoint is damaged."""
  steps = sorted(manager.all_steps(), reverse=True)
  if not steps:
    return None
  try:
    saved_config = restore_run(manager, steps[0])['config']
  except Exception as error:  # pylint: disable=broad-except
    raise damaged(workdir, steps, error) from error
  check_resumable(workdir, saved_config, config)
  return steps[0]


def resume(manager: ocp.CheckpointManager, workdir: str, config: ml_collections.ConfigDict,
           state):
  """`state` restored from the newest checkpoint in `workdir`, or `state` itself if none.

  Raises UserError, changing nothing on disk, when the config cannot continue the run or the
  newest checkpoint is damaged.
  """
  steps = sorted(manager.all_steps(), reverse=True)
  if not steps:
    return state
  check_can_resume(manager, workdir, config)
  try:
    state = restore_state(manager, steps[0], state)
  except Exception as error:  # pylint: disable=broad-except
    raise damaged(workdir, steps, error) from error
  logging.info('Resumed from the checkpoint of step %d in %s.', steps[0], checkpoint_dir(workdir))
  return state
