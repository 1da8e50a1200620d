"""The commands around training fail well (issue 26): every mistake is one line on stderr, exit
code 1, no traceback, checked before any work, and nothing written or lost."""

import json
import os
import re
import shutil
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from configs import lfw_demo
from facegan_jax import convert_inception
from facegan_jax import evaluate
from facegan_jax.metrics import inception
from facegan_jax.pretrained import convert_stylegan2
from facegan_jax.runs import checkpointing
from facegan_jax.system import command_line
from facegan_jax.system.errors import UserError
from facegan_jax.training import loop
from tests import test_checkpointing
from tests import test_evaluate
from tests import test_stylegan2_train
from tests.helpers import multidevice
from tests.helpers import reference_arrays


@pytest.fixture(scope='module')
def workdir(tmp_path_factory, tiny_weights):
  """The LFW demo's DCGAN trained 4 steps (checkpoints 2 and 4), its saved config evaluating
  with the tiny Inception (eval.every = 0: no evaluation during training)."""
  path = tmp_path_factory.mktemp('run')
  config = test_evaluate.demo_config_with_eval(tiny_weights, path / 'stats')
  config.eval.every = 0
  config.checkpoint.every = 2
  loop.train_and_evaluate(config, str(path / 'run'))
  return path / 'run'


@pytest.fixture(scope='module')
def stylegan2_workdir(tmp_path_factory):
  """Step 0 of a 32x32 StyleGAN2 (8 layers of styles) holding the fixture's networks."""
  path = tmp_path_factory.mktemp('stylegan2')
  weights = path / 'nvidia.npz'
  np.savez(weights, **reference_arrays.load('stylegan2_32_small.npz'))
  config = lfw_demo.get_config('stylegan2_test')
  for field, value in test_stylegan2_train.FIXTURE_MODEL.items():
    config.model[field.split('.')[1]] = value
  convert_stylegan2.write_workdir(config, str(weights), str(path / 'run'))
  return path / 'run'


def files_of(*folders):
  return {folder: test_checkpointing.snapshot(str(folder)) for folder in folders}


def assert_one_line(result, line):
  """The command stopped with exactly `line` as its last line on stderr, exit code 1."""
  assert 'Traceback' not in result.stderr and 'FATAL' not in result.stderr, result.stderr[-3000:]
  assert result.returncode == 1, result.stderr[-3000:]
  assert result.stderr.strip().splitlines()[-1] == line


def run_command(command, *flags):
  return multidevice.run_python(['-m', f'facegan_jax.{command}', *flags])


# Class 1: every output path is checked before anything is restored or generated.
@pytest.mark.parametrize('flags, line', [
    (['--out={tmp}/absent/grid.png'], 'error: --out={tmp}/absent/grid.png: the folder '
     '{tmp}/absent does not exist; create it (mkdir -p {tmp}/absent) or choose another path.'),
    (['--out={tmp}'], 'error: --out={tmp} is a directory; give a file name in it, e.g. '
     '--out={tmp}/out.png.'),
    (['--out={tmp}/grid.jpg'], 'error: --out={tmp}/grid.jpg: this command writes PNG files; '
     'name it {tmp}/grid.png.'),
    (['--out={tmp}/grid.png', '--images_dir={tmp}/file'], 'error: --images_dir={tmp}/file is '
     'a file, not a directory; give a directory (it is made if it does not exist).'),
    (['--out={tmp}/grid.png', '--interpolate=0,1', '--interpolation_out={tmp}/absent/s.png'],
     'error: --interpolation_out={tmp}/absent/s.png: the folder {tmp}/absent does not exist; '
     'create it (mkdir -p {tmp}/absent) or choose another path.'),
    (['--out={tmp}/grid.png', '--mixing_rows=1', '--mixing_columns=2',
      '--mixing_out={tmp}/file/m.png'], 'error: --mixing_out={tmp}/file/m.png: {tmp}/file is '
     'a file, not a folder; choose another path.'),
])
def test_sample_checks_its_outputs_before_generating(workdir, tmp_path, flags, line):
  (tmp_path / 'file').write_text('not a folder')
  before = files_of(workdir, tmp_path)
  result = run_command('sample', f'--workdir={workdir}',
                       *[flag.format(tmp=tmp_path) for flag in flags])
  assert_one_line(result, line.format(tmp=tmp_path))
  assert files_of(workdir, tmp_path) == before


def test_convert_inception_refuses_a_directory_as_out(tmp_path):
  result = run_command('convert_inception', f'--out={tmp_path}')
  assert_one_line(result, f'error: --out={tmp_path} is a directory; give a file name in it, '
                  f'e.g. --out={tmp_path}/out.npz.')
  assert not os.listdir(tmp_path)


# Class 2: numbers that make no sense.
@pytest.mark.parametrize('command, flags, line', [
    ('sample', ['--truncation=nan'], 'error: --truncation=nan is not a finite number; use e.g. '
     '--truncation=0.7.'),
    ('evaluate', ['--truncation=inf'], 'error: --truncation=inf is not a finite number; use e.g. '
     '--truncation=0.7.'),
    ('sample', ['--num=0'], 'error: --num=0 is out of range; use a number at least 1.'),
    ('sample', ['--batch=0'], 'error: --batch=0 is out of range; use a number at least 1.'),
    ('sample', ['--interpolate=0,1', '--frames=1'], 'error: --frames=1 is out of range; use a '
     'number at least 2.'),
    ('sample', ['--seed=4294967296'], 'error: --seed=4294967296 is out of range; use a number '
     'from 0 to 4294967295.'),
    ('evaluate', ['--num_samples=1'], 'error: --num_samples=1 is out of range; use a number at '
     'least 2.'),
])
def test_nonsense_numbers_are_refused_before_any_work(workdir, tmp_path, command, flags, line):
  before = files_of(workdir, tmp_path)
  result = run_command(command, f'--workdir={workdir}', *flags,
                       *([f'--out={tmp_path}/grid.png'] if command == 'sample' else []))
  assert_one_line(result, line)
  assert files_of(workdir, tmp_path) == before


@pytest.mark.slow
def test_a_mixing_layer_outside_the_network_is_refused_with_the_valid_range(stylegan2_workdir,
                                                                           tmp_path):
  before = files_of(stylegan2_workdir, tmp_path)
  result = run_command('sample', f'--workdir={stylegan2_workdir}', f'--out={tmp_path}/g.png',
                       '--mixing_rows=1', '--mixing_columns=2', '--mixing_styles=6-9',
                       f'--mixing_out={tmp_path}/m.png')
  assert_one_line(result, 'error: --mixing_styles=6-9 names layer 8, but layers 0-7 exist for '
                  'this 32x32 network.')
  assert files_of(stylegan2_workdir, tmp_path) == before


def test_what_a_dcgan_cannot_do_is_refused_before_the_grid_is_written(workdir, tmp_path):
  result = run_command('sample', f'--workdir={workdir}', f'--out={tmp_path}/g.png',
                       '--interpolate=0,1', '--interpolate_in=w')
  assert_one_line(result, "error: --interpolate_in=w needs a StyleGAN2 run; this one is "
                  "'dcgan' (interpolate in z instead).")
  assert not os.listdir(tmp_path)


# Class 3: files that are not what the flag asks for.
def foreign_files(folder):
  """{what: path} of files that are not weights: empty, text, a PNG, a lone .npy, an .npz of
  pickled objects, a damaged .npz, another network's .npz."""
  paths = {name: str(folder / name) for name in ('empty.npz', 'text.npz', 'image.png',
                                                 'array.npy', 'objects.npz', 'damaged.npz',
                                                 'other.npz')}
  open(paths['empty.npz'], 'wb').close()
  with open(paths['text.npz'], 'w') as f:
    f.write('hello: the weights are in the README\n')  # torch.load: a KeyError
  Image.fromarray(np.zeros((4, 4), np.uint8)).save(paths['image.png'])
  np.save(paths['array.npy'], np.zeros(3))
  np.savez(paths['objects.npz'], layers=np.array([{'conv': 1}], dtype=object))
  np.savez(paths['damaged.npz'], weight=np.zeros(1000, np.float32))
  with open(paths['damaged.npz'], 'r+b') as f:
    f.truncate(os.path.getsize(paths['damaged.npz']) // 2)
  np.savez(paths['other.npz'], **{'G/mapping.fc0.weight': np.zeros((2, 2), np.float32)})
  return paths


KINDS = {'empty.npz': 'an empty file', 'text.npz': 'a text file', 'image.png': 'a PNG image',
         'array.npy': 'a single NumPy array (.npy)',
         'objects.npz': 'an .npz holding pickled objects',
         'damaged.npz': 'a damaged or truncated zip archive'}


@pytest.mark.parametrize('name', sorted(KINDS))
def test_files_that_are_not_inception_or_stylegan2_weights_say_what_they_are(tmp_path, name):
  path = foreign_files(tmp_path)[name]
  source = f'config.eval.inception_weights={path!r}'
  with pytest.raises(UserError, match=re.escape(
      f"{source} is {KINDS[name]}, not an .npz of the FID Inception's weights; "
      f'{inception.WEIGHTS_HELP}.')):
    inception.load(path)
  with pytest.raises(UserError, match=re.escape(
      f'--weights={path} is {KINDS[name]}, not an .npz of StyleGAN2 networks')):
    convert_stylegan2.read_weights(path)


def test_a_damaged_npz_archive_is_named_as_one(tmp_path):
  path = tmp_path / 'weights.npz'
  np.savez(path, a=np.zeros(1000, np.float32), b=np.zeros(1000, np.float32))
  with zipfile.ZipFile(path) as archive:
    offset = archive.getinfo('b.npy').header_offset
  with open(path, 'r+b') as f:  # the second member's bytes overwritten, the directory kept
    f.seek(offset + 300)
    f.write(b'\xff' * 200)
  with pytest.raises(UserError, match=r"is a damaged .npz \(\w+\), not an .npz of the FID"):
    inception.load(str(path))


def test_other_networks_are_not_taken_for_the_inception_or_stylegan2(tmp_path, tiny_weights):
  paths = foreign_files(tmp_path)
  with pytest.raises(UserError, match=re.escape(
      f"config.eval.inception_weights={paths['other.npz']!r} holds other weights "
      "(G/mapping.fc0.weight, ...), not the FID Inception's; get the weights")):
    inception.load(paths['other.npz'])
  with pytest.raises(UserError, match=re.escape(
      'the weights hold no arrays keyed G/... (batch_stats/Conv2d_1a_3x3/bn/mean, '
      'batch_stats/Conv2d_1a_3x3/bn/var, ...): they are not StyleGAN2 networks; export')):
    convert_stylegan2.convert_state_dict(convert_stylegan2.read_weights(tiny_weights), 'G/')


def test_evaluate_says_in_one_line_that_a_png_is_not_inception_weights(workdir, tmp_path):
  png = foreign_files(tmp_path)['image.png']
  before = files_of(workdir, tmp_path)
  result = run_command('evaluate', f'--workdir={workdir}', f'--inception_weights={png}')
  assert_one_line(result, f'error: config.eval.inception_weights={png!r} is a PNG image, not '
                  f"an .npz of the FID Inception's weights; {inception.WEIGHTS_HELP}.")
  assert files_of(workdir, tmp_path) == before


@pytest.mark.parametrize('name, line', [
    ('text.npz', "--pth='{path}' is a text file, not a PyTorch state dict of the FID Inception"),
    ('empty.npz', "--pth='{path}' is an empty file, not a PyTorch state dict of the FID "
     'Inception'),
    ('no_dots.pth', "--pth='{path}' is not the FID Inception: unexpected tensor weight."),
    ('model.pth', "--pth='{path}' holds a list, not a state dict of tensors of the FID "
     'Inception'),
])
def test_convert_inception_pth_refuses_what_is_not_pytorch_fids_state_dict(tmp_path, name,
                                                                            line):
  paths = foreign_files(tmp_path)
  paths['no_dots.pth'] = str(tmp_path / 'no_dots.pth')
  torch.save({'weight': torch.zeros(2)}, paths['no_dots.pth'])
  paths['model.pth'] = str(tmp_path / 'model.pth')
  torch.save([torch.zeros(2)], paths['model.pth'])
  with pytest.raises(UserError, match=re.escape(line.format(path=paths[name]))):
    convert_inception.convert(str(tmp_path / 'out.npz'), pth=paths[name])
  assert not (tmp_path / 'out.npz').exists()


def test_convert_inception_says_a_state_dict_is_not_torchscript(tmp_path):
  path = str(tmp_path / 'state.pth')
  torch.save({'conv.weight': torch.zeros(2)}, path)
  with pytest.raises(UserError, match=re.escape(
      f"--torchscript='{path}' holds a dict, not a TorchScript module; a state dict such as pytorch-fid's .pth goes to --pth.")):
    convert_inception.convert(str(tmp_path / 'out.npz'), torchscript=path)
  assert not (tmp_path / 'out.npz').exists()


# Class 4: large --num in batches, the same images whatever the batch.
def test_sample_in_batches_writes_the_same_pngs(workdir, tmp_path):
  written = []
  for batch in (3, 10):
    folder = tmp_path / f'batch{batch}'
    result = run_command('sample', f'--workdir={workdir}', '--num=10', '--seed=3',
                         f'--batch={batch}', f'--out={folder}.png', f'--images_dir={folder}')
    assert result.returncode == 0, result.stderr[-3000:]
    written.append([(folder.parent / f'{folder.name}.png').read_bytes()] +
                   [path.read_bytes() for path in sorted(folder.iterdir())])
  assert len(written[0]) == 11 and written[0] == written[1]


# Class 5: evaluate's results are kept apart by what they measured.
@pytest.mark.slow
def test_evaluate_names_its_result_by_protocol_count_and_truncation(workdir):
  eval_dir = workdir / 'eval'
  eval_dir.mkdir(exist_ok=True)
  earlier = eval_dir / 'step_0000004-clean-n24.json'
  earlier.write_text('{"fid": 1.0}')  # a result of 24 samples, to be kept
  result = run_command('evaluate', f'--workdir={workdir}', '--num_samples=16')
  assert result.returncode == 0, result.stderr[-3000:]
  path = eval_dir / 'step_0000004-clean-n16.json'
  assert result.stdout.strip().endswith(f'; wrote {path}')
  assert json.loads(path.read_text())['num_generated'] == 16
  assert earlier.read_text() == '{"fid": 1.0}'
  shutil.rmtree(eval_dir)


def test_result_names_include_truncation_only_when_truncated():
  config = lfw_demo.get_config('test').eval
  config.num_samples = 1000
  assert evaluate.result_path('W', 100, config, 1.0) == 'W/eval/step_0000100-clean-n1000.json'
  assert evaluate.result_path('W', 100, config, 0.7) == (
      'W/eval/step_0000100-clean-n1000-psi0.7.json')


# Class 6: flag errors, damaged checkpoints, the config's path.
@pytest.mark.parametrize('command, flags, line', [
    ('sample', ['--num=abc'], "error: flag --num=abc: invalid literal for int() with base 10: "
     "'abc'; see --help."),
    ('evaluate', [], 'error: --workdir is required; see --help.'),
    ('sample', ['{workdir}'], "error: unexpected argument '{workdir}': this command takes only "
     '--flags, e.g. --workdir={workdir}; see --help.'),
    ('convert_inception', ['--pht=x.pth'], 'error: Unknown command line flag \'pht\'. Did you '
     "mean: pth ?; see --help."),
])
def test_flag_errors_are_one_line(workdir, command, flags, line):
  result = run_command(command, *[flag.format(workdir=workdir) for flag in flags])
  assert_one_line(result, line.format(workdir=workdir))


def test_the_only_checkpoint_damaged_offers_a_way_forward(workdir, tmp_path):
  damaged = tmp_path / 'run'
  shutil.copytree(workdir, damaged)
  shutil.rmtree(damaged / 'checkpoints' / '2')
  test_checkpointing.damage_checkpoint(str(damaged), 4)
  before = files_of(damaged)
  result = run_command('sample', f'--workdir={damaged}', f'--out={tmp_path / "g.png"}')
  assert_one_line(result, result.stderr.strip().splitlines()[-1])
  line = result.stderr.strip().splitlines()[-1]
  checkpoint = f'{damaged}/checkpoints/4'
  assert line.startswith(f'error: the latest checkpoint in {checkpoint} cannot be read (')
  assert line.endswith(f'); it is the only checkpoint: restore it from a backup, or move it aside '
                       f'(mv {checkpoint} {checkpoint}.damaged) and train the run again from '
                       'step 0. Nothing was changed in the workdir.')
  assert files_of(damaged) == before and not (tmp_path / 'g.png').exists()


def test_the_damaged_checkpoint_message_cuts_its_cause_between_words(tmp_path):
  cause = ValueError('word ' * 100)
  message = str(checkpointing.damaged(str(tmp_path), [4, 2], cause))
  assert '(ValueError: ' + 'word ' * 39 + 'word ...); to resume from step 2' in message


def test_a_run_that_stops_before_writing_its_config_does_not_name_it(tmp_path):
  result = run_command('main', '--config=configs/lfw_demo.py:test', f'--workdir={tmp_path}',
                       '--config.eval.every=2',
                       f'--config.eval.inception_weights={tmp_path}/absent.npz')
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert 'config.json' not in result.stderr and not os.listdir(tmp_path)


def test_output_checks_leave_gcs_to_storage_but_check_the_suffix():
  command_line.check_output_file('out', 'gs://bucket/absent/grid.png')
  with pytest.raises(UserError, match=r'--out=gs://bucket/g.jpg: this command writes PNG'):
    command_line.check_output_file('out', 'gs://bucket/g.jpg')
