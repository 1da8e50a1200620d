"""One check of the whole config: every field's type and range, before the workdir is touched."""

import os

import ml_collections
import pytest

from configs import celeba
from configs import default
from configs import lfw_demo
from configs import toy2x2
from facegan_jax.runs import workdir_lock
from facegan_jax.system.errors import UserError
from facegan_jax.training import config_check
from tests.helpers import multidevice


def test_the_checker_knows_every_field_of_the_default_config():
  assert set(config_check.FIELDS) == set(config_check.flatten(default.get_config().to_dict()))


@pytest.mark.parametrize('module, variant', [
    (celeba, None), (celeba, 'test'), (celeba, 'best'), (celeba, 'best_3k'),
    (lfw_demo, None), (lfw_demo, 'test'), (lfw_demo, 'best'), (toy2x2, None)])
def test_every_shipped_config_passes(module, variant):
  config_check.check(module.get_config(variant))


@pytest.mark.parametrize('field, value, message', [
    ('seed', -1, 'config.seed=-1 is out of range; use an integer in [0, 4294967296).'),
    ('seed', 2**40, 'config.seed=1099511627776 is out of range; use an integer in '
     '[0, 4294967296).'),
    ('optim.g_learning_rate', float('nan'),
     'config.optim.g_learning_rate=nan is not finite; use a finite number > 0.'),
    ('optim.d_learning_rate', -2e-4,
     'config.optim.d_learning_rate=-0.0002 is out of range; use a finite number > 0.'),
    ('optim.b1', 1.0, 'config.optim.b1=1.0 is out of range; use a finite number in [0, 1).'),
    ('optim.b2', float('inf'), 'config.optim.b2=inf is not finite; use a finite number in [0, 1).'),
    ('model.latent_dim', 0, 'config.model.latent_dim=0 is out of range; use an integer >= 1.'),
    ('model.channels', 2, 'config.model.channels=2 is not supported; use one of (1, 3).'),
    ('train.batch_size', '8', "config.train.batch_size='8' has type str; use an integer."),
    ('data.random_flip', 1, 'config.data.random_flip=1 has type int; use True or False.'),
    ('samples.count', True, 'config.samples.count=True has type bool; use an integer.'),
    ('eval.num_samples', 1, 'config.eval.num_samples=1 is out of range; use an integer >= 2.'),
    ('data.source', 'mnist', "config.data.source='mnist' is unknown; use one of ('toy2x2', "
     "'lfw_subset', 'celeb_a', 'folder', 'zip')."),
    ('train.compute_dtype', 'float16', "config.train.compute_dtype='float16' is unknown; use "
     "one of ('float32', 'bfloat16')."),
])
def test_each_bad_value_is_one_line_naming_the_field_and_what_to_use(field, value, message):
  # As a config file could set it: ConfigDict's own type checks apply to overrides only.
  config = ml_collections.ConfigDict(lfw_demo.get_config('test').to_dict(), type_safe=False)
  section, _, name = field.rpartition('.')
  (config[section] if section else config)[name] = value
  with pytest.raises(UserError) as error:
    config_check.check(config)
  assert str(error.value) == message


def test_unknown_and_missing_fields_are_named_with_the_nearest_known_one():
  config = lfw_demo.get_config('test')
  config.train.batch_sise = 8
  with pytest.raises(UserError, match=r'^config.train.batch_sise is not a config field \(did you '
                     r'mean config.train.batch_size\?\); use the fields of configs/default.py.$'):
    config_check.check(config)
  del config.train['batch_sise']
  del config.train['batch_size']
  with pytest.raises(UserError, match=r'^config.train.batch_size is missing'):
    config_check.check(config)


def test_the_mlp_needs_a_hidden_width():
  config = toy2x2.get_config()
  config.model.hidden = 0
  with pytest.raises(UserError, match=r"^config.model.hidden=0 is out of range; use the width"):
    config_check.check(config)


@pytest.mark.parametrize('inside_file, reason', [('', 'File exists'), ('run', 'Not a directory')])
def test_an_unusable_workdir_is_one_line(tmp_path, inside_file, reason):
  (tmp_path / 'file').write_text('')
  workdir = str(tmp_path / 'file' / inside_file).rstrip('/')
  with pytest.raises(UserError, match=rf'^workdir {workdir} cannot be used \({reason}: .*\); use '
                     'a directory that you can write to as --workdir.$'):
    with workdir_lock.hold(workdir):
      pass
  assert os.listdir(tmp_path) == ['file'] and not (tmp_path / 'file').read_text()


# The line of configs/lfw_demo.py that refuses an unknown variant.
CHECK_VARIANT_LINE = next(
    number for number, text in enumerate(open(lfw_demo.__file__, encoding='utf-8'), start=1)
    if 'default.check_variant(' in text)


@pytest.mark.parametrize('flags, line', [
    (['--config=configs/lfw_demo.py:test', '--config.seed=-1'],
     'error: config.seed=-1 is out of range; use an integer in [0, 4294967296).'),
    (['--config=configs/lfw_demo.py:test', '--config.model.latent_dim=0'],
     'error: config.model.latent_dim=0 is out of range; use an integer >= 1.'),
    (['--config=configs/lfw_demo.py:test', '--config.data.source=folder',
      '--config.data.path=/nonexistent'],
     "error: config.data.path='/nonexistent' is not a directory; set config.data.path to a "
     'folder of JPEG/PNG face images.'),
    (['--config=configs/missing.py'], 'error: --config=configs/missing.py: no such file; use a '
     'config file such as configs/lfw_demo.py (with an optional :variant).'),
    (['--config=configs/lfw_demo.py:fast'],
     f"error: configs/lfw_demo.py:{CHECK_VARIANT_LINE}: ValueError: configs/lfw_demo.py has no "
     f"variant 'fast'; use one of {lfw_demo.VARIANTS} or none."),
    (['--config=configs/lfw_demo.py:test', '--config.nonexistent=1'],
     'error: --config.nonexistent: config.nonexistent is not a config field; use a field of '
     'configs/default.py.'),
    (['--config=configs/lfw_demo.py:test', '--config.optim.g_learnig_rate=1'],
     'error: --config.optim.g_learnig_rate: config.optim.g_learnig_rate is not a config field '
     '(did you mean config.optim.g_learning_rate?); use a field of configs/default.py.'),
])
def test_main_refuses_a_bad_config_in_one_line_and_creates_nothing(tmp_path, flags, line):
  workdir = tmp_path / 'run'
  result = multidevice.run_python(['-m', 'facegan_jax.main', *flags, f'--workdir={workdir}'])
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == line
  assert not workdir.exists()


def test_a_config_file_with_a_syntax_error_is_named_with_its_line(tmp_path):
  path = tmp_path / 'broken.py'
  path.write_text('def get_config():\n  return {\n\n')
  result = multidevice.run_python(['-m', 'facegan_jax.main', f'--config={path}',
                                   f'--workdir={tmp_path / "run"}'])
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith(f'error: {path}:2: ')
  assert os.listdir(tmp_path) == ['broken.py']
