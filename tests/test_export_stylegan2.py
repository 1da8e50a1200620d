"""The way back to NVIDIA's code: a run's G, G_ema and D as NVIDIA state_dicts (.npz, and .pt
for torch.load written without torch). Import -> export reproduces the fixture pickles'
state_dicts exactly: names, order, shapes and values."""

import io
import os

import numpy as np
import pytest
import torch

from configs import default
from facegan_jax.pretrained import convert_stylegan2
from facegan_jax.pretrained import export_stylegan2
from facegan_jax.pretrained import nvidia_pickle
from facegan_jax.pretrained import torch_save
from facegan_jax.system.errors import UserError
from tests.helpers import multidevice
from tests.test_import_stylegan2 import import_without_config
from tests.test_import_stylegan2 import run_without_torch
from tests.test_nvidia_pickle import EXPECTED
from tests.test_nvidia_pickle import NVIDIA_FILES
from tests.test_nvidia_pickle import digest
from tests.test_nvidia_pickle import path


def assert_same_state_dicts(ours, theirs):
  """Same names in the same order, same dtypes and shapes (0-d ones too), equal values."""
  assert list(ours) == list(theirs)
  for name, value in theirs.items():
    assert (ours[name].dtype, ours[name].shape) == (value.dtype, value.shape), name
    np.testing.assert_array_equal(ours[name], value, err_msg=name)


@pytest.mark.parametrize('name', NVIDIA_FILES)
def test_import_then_export_gives_the_files_state_dicts_exactly(name):
  networks = nvidia_pickle.read(path(name))
  config = default.get_config()
  config.model.update(nvidia_pickle.stylegan2_model_fields(networks))
  ours = convert_stylegan2.read_networks(config, path(name))
  exported = export_stylegan2.state_dicts(ours.generator['params'],
                                          ours.generator['batch_stats'], ours.ema_params,
                                          ours.discriminator['params'])
  theirs = {key: value for key, value in networks.state_dicts().items()
            if not key.startswith('augment_pipe/')}
  assert_same_state_dicts(exported, theirs)
  expected = {key: value for key, value in EXPECTED[name]['state_dict_sha256'].items()
              if not key.startswith('augment_pipe/')}
  assert {key: digest(value) for key, value in exported.items()} == expected


def test_torch_loads_the_pt_file_as_state_dicts():
  arrays = {'weight': np.arange(6, dtype=np.float32).reshape(2, 3),
            'noise_strength': np.asarray(0.5, np.float32), 'const': np.ones((2, 4, 4), np.float32)}
  for weights_only in (True, False):
    loaded = torch.load(io.BytesIO(torch_save.dumps({'G': arrays, 'D': {}})),
                        weights_only=weights_only)
    assert list(loaded) == ['G', 'D'] and list(loaded['G']) == list(arrays)
    for name, value in arrays.items():
      assert loaded['G'][name].dtype == torch.float32 and loaded['G'][name].is_contiguous()
      np.testing.assert_array_equal(loaded['G'][name].numpy(), value)


@pytest.mark.slow
def test_the_command_exports_an_imported_run_for_torch_without_torch(tmp_path):
  name = 'sg3_stylegan2_res32_cond4'
  import_without_config(path(name), tmp_path / 'run')
  theirs = {key: value for key, value in nvidia_pickle.read(path(name)).state_dicts().items()
            if not key.startswith('augment_pipe/')}
  for out in (tmp_path / 'networks.npz', tmp_path / 'networks.pt'):
    result = run_without_torch('export_stylegan2', f'--workdir={tmp_path / "run"}',
                               f'--out={out}')
    assert result.returncode == 0, result.stderr[-3000:]
  with np.load(tmp_path / 'networks.npz') as exported:
    assert_same_state_dicts(dict(exported), theirs)
  loaded = torch.load(tmp_path / 'networks.pt', weights_only=True)
  assert_same_state_dicts({f'{network}/{key}': value.numpy() for network, state in loaded.items()
                           for key, value in state.items()}, theirs)


def test_a_run_of_another_model_or_a_bad_name_is_one_line(tmp_path):
  result = multidevice.run_python(['-m', 'facegan_jax.export_stylegan2',
                                   f'--workdir={tmp_path}', f'--out={tmp_path / "G.pkl"}'])
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1].endswith(
      f'--out={tmp_path / "G.pkl"}: write .npz (numpy) or .pt (torch.load); the name must end '
      'with one of them.')
  with pytest.raises(UserError, match='no checkpoint in'):
    export_stylegan2.read_run(str(tmp_path))
  assert not os.listdir(tmp_path)
