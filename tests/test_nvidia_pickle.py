"""NVIDIA's StyleGAN2 network pickles read without torch and without running them
(facegan_jax/pretrained/nvidia_pickle.py), against genuine small pickles written by NVIDIA's
stylegan3 and stylegan2-ada-pytorch code and an R3GAN snapshot (tests/data/nvidia_pkl/): the
weights equal the reference state_dicts bit for bit, the construction arguments are those
NVIDIA's loader reports, the config comes from the file, and the networks converted through
convert_stylegan2 give NVIDIA's w, images and logits (atol = rtol = 1e-5) in a process where torch
cannot be imported. Files that would run code, and files that are not StyleGAN2 network pickles,
are refused with one line.
"""

import hashlib
import json
import os
import pickle
import subprocess

import numpy as np
import pytest

from configs import default
from facegan_jax.pretrained import convert_stylegan2
from facegan_jax.pretrained import nvidia_pickle
from facegan_jax.system.errors import UserError
from tests.helpers import multidevice
from tests.helpers import nvidia_pickle_writer as writer
from tests.helpers import reference_arrays

DATA = os.path.join(reference_arrays.DIRECTORY, 'nvidia_pkl')
with open(os.path.join(DATA, 'expected.json'), encoding='utf-8') as expected_file:
  EXPECTED = json.load(expected_file)
UNCONDITIONAL = ('sg3_stylegan2_res32', 'sg3_stylegan2_res64', 'ada_stylegan2_res32')
NVIDIA_FILES = UNCONDITIONAL + ('sg3_stylegan2_res32_cond4',)
# config.model of the fixture networks, but for the resolution and the w average's decay.
FIXTURE_FIELDS = dict(name='stylegan2', channels=3, latent_dim=64, w_dim=64, channel_base=512,
                      channel_max=32, mapping_layers=2, mapping_lr_multiplier=0.01,
                      mbstd_group_size=4, mbstd_num_channels=1, conv_clamp=256.0, c_dim=0)


def path(name):
  return os.path.join(DATA, f'{name}.pkl')


def read(name):
  return nvidia_pickle.read(path(name))


def digest(array):
  """sha256 of an array's dtype, shape and bytes, as tests/data/nvidia_pkl/expected.json has."""
  array = np.ascontiguousarray(array)
  return hashlib.sha256(f'{array.dtype.str}{array.shape}'.encode() + array.tobytes()).hexdigest()


def refusal(function, *args):
  """The one-line message of the UserError that function(*args) raises."""
  with pytest.raises(UserError) as error:
    function(*args)
  assert '\n' not in str(error.value)
  return str(error.value)


def module(class_name, children=(), **attributes):
  """A Module as the reader makes them, with `attributes` and `children` (name, Module)."""
  made = nvidia_pickle.Module.__new__(nvidia_pickle.Module)
  made.class_name = class_name
  made.__setstate__({'_modules': dict(children), '_init_args': (), '_init_kwargs': {},
                     **attributes})
  return made


def check_state_dicts(networks, name):
  arrays = networks.state_dicts()
  expected = EXPECTED[name]['state_dict_sha256']
  assert list(arrays) == list(expected)  # names in torch's state_dict order
  assert {key: digest(value) for key, value in arrays.items()} == expected


@pytest.mark.parametrize('name', NVIDIA_FILES + ('r3gan_small_snapshot',))
def test_weights_equal_the_reference_state_dicts_exactly(name):
  networks = read(name)
  assert networks.repo == EXPECTED[name]['repo']
  check_state_dicts(networks, name)
  assert networks.extra['training_set_kwargs'] == EXPECTED[name]['training_set_kwargs']


@pytest.mark.parametrize('name', NVIDIA_FILES)
def test_construction_arguments_are_those_nvidias_loader_reports(name):
  networks = read(name)
  for key, expected in EXPECTED[name]['construction_args'].items():
    if expected is None:
      assert key not in networks.networks
      continue
    built = networks.networks[key]
    assert built.class_name == expected['class_name']
    assert list(built.init_args) == expected['init_args']
    assert built.init_kwargs == expected['init_kwargs']
  # Every submodule has its own: a SynthesisLayer gets its channels positionally.
  conv = dict(networks.networks['G'].modules())['synthesis.b32.conv0']
  assert conv.init_args == (32, 16) and conv.init_kwargs['up'] == 2


def test_r3gan_snapshot_keeps_its_optimiser_states_progress_and_sizes():
  networks = read('r3gan_small_snapshot')
  expected = EXPECTED['r3gan_small_snapshot']
  assert networks.extra['cur_nimg'] == expected['cur_nimg']
  for name in 'GD':
    states = networks.extra[f'{name}_opt_state']['state']
    assert [digest(states[index]['exp_avg_sq']) for index in sorted(states)] == (
        expected['optimizer_exp_avg_sq_sha256'][name])
  # Its modules are pickled by class reference and store no construction arguments; their
  # attributes say what they are.
  modules = dict(networks.networks['G'].modules())
  assert networks.networks['G'].attributes == {'z_dim': 64, 'c_dim': 0, 'img_resolution': 32}
  assert modules['Model.MainLayers.1.Layers.1.LinearLayer2.Layer'].class_name == (
      'torch.nn.modules.conv.Conv2d')
  assert modules['Model.MainLayers.1.Layers.1.LinearLayer2.Layer'].attributes['groups'] == 8
  assert modules['Model.MainLayers.3'].attributes['DataType'] == 'torch.float32'
  assert modules['Model'].init_kwargs is None
  assert 'R3GAN snapshot' in refusal(nvidia_pickle.stylegan2_model_fields, networks)


@pytest.mark.parametrize('name, changed', [
    ('sg3_stylegan2_res32', dict(resolution=32, w_avg_beta=0.998)),
    ('sg3_stylegan2_res64', dict(resolution=64, w_avg_beta=0.998)),
    ('ada_stylegan2_res32', dict(resolution=32, w_avg_beta=0.995)),
    # train.py --fp32: no clamping
    ('sg3_stylegan2_res32_cond4', dict(resolution=32, w_avg_beta=0.998, c_dim=4,
                                       conv_clamp=0.0))])
def test_config_comes_from_the_file_and_each_repos_class_defaults(name, changed):
  networks = read(name)
  assert nvidia_pickle.stylegan2_model_fields(networks) == dict(FIXTURE_FIELDS, **changed)
  # stylegan3's train.py passes neither conv_clamp nor num_fp16_res (but for --fp32): its class
  # defaults apply.
  kwargs = nvidia_pickle.construction_kwargs(networks)
  assert [kwargs[network][field] for network in ('G', 'D')
          for field in ('num_fp16_res', 'conv_clamp')] == (
              [0, None] * 2 if changed.get('c_dim') else [4, 256] * 2)


def test_class_defaults_are_those_of_the_repo_that_wrote_the_file():
  networks = read('ada_stylegan2_res32')
  del networks.networks['G'].init_kwargs['synthesis_kwargs']['conv_clamp']
  # stylegan2-ada-pytorch's default is no clamping, which its layers (built with 256) contradict.
  assert nvidia_pickle.construction_kwargs(networks)['G']['conv_clamp'] is None
  assert refusal(nvidia_pickle.stylegan2_model_fields, networks) == (
      'G.synthesis.b32.conv1.conv_clamp is 256, but the construction arguments with '
      'NVlabs/stylegan2-ada-pytorch\'s class defaults give None: the file comes from other '
      'code; set config.model by hand.')
  fp32 = nvidia_pickle.construction_kwargs(read('sg3_stylegan2_res32_cond4'))  # --fp32
  assert (fp32['G']['num_fp16_res'], fp32['G']['conv_clamp']) == (0, None)


@pytest.mark.slow
def test_images_w_and_logits_equal_nvidias_in_a_process_without_torch(tmp_path):
  out = tmp_path / 'outputs.npz'
  inputs = os.path.join(DATA, 'expected_outputs.npz')
  result = multidevice.run_python(['tests/helpers/nvidia_pickle_outputs.py', str(out), inputs]
                                  + [path(name) for name in NVIDIA_FILES])
  assert result.returncode == 0, result.stderr[-3000:]
  ours, expected = np.load(out), reference_arrays.load('nvidia_pkl/expected_outputs.npz')
  assert len(ours.files) == 8 * len(NVIDIA_FILES)
  for key in ours.files:
    np.testing.assert_allclose(ours[key], expected[key], atol=1e-5, rtol=1e-5, err_msg=key)


def test_the_import_checks_the_config_against_the_file():
  config = default.get_config()
  config.model.update(FIXTURE_FIELDS, resolution=32, w_avg_beta=0.998)
  assert refusal(convert_stylegan2.read_networks, config, path('ada_stylegan2_res32')) == (
      f'config.model.w_avg_beta=0.998, but {path("ada_stylegan2_res32")} holds a network built '
      'with 0.995; set --config.model.w_avg_beta=0.995.')
  config.model.update(w_avg_beta=0.995, conv_clamp=0.0)
  assert refusal(convert_stylegan2.read_weights, path('sg3_stylegan2_res32_cond4'),
                 config.model) == (
      f'config.model.w_avg_beta=0.995, but {path("sg3_stylegan2_res32_cond4")} holds a network '
      'built with 0.998; set --config.model.w_avg_beta=0.998.')
  config.model.w_avg_beta = 0.998
  assert refusal(convert_stylegan2.read_weights, path('sg3_stylegan2_res32_cond4'),
                 config.model) == (
      f'config.model.c_dim=0, but {path("sg3_stylegan2_res32_cond4")} holds a network built '
      'with 4; set --config.model.c_dim=4.')


@pytest.mark.parametrize('protocol', [2, 3, 5])
def test_pickles_of_protocols_2_to_5_read_the_same(protocol):
  networks = nvidia_pickle.loads(writer.network_pickle(read('ada_stylegan2_res32'), protocol))
  check_state_dicts(networks, 'ada_stylegan2_res32')
  assert networks.networks['G'].init_kwargs == (
      EXPECTED['ada_stylegan2_res32']['construction_args']['G']['init_kwargs'])


def snapshot_with_weight(weight):
  """A snapshot whose G has the one parameter `weight` (a writer tensor)."""
  generator = module('Generator', _parameters={'weight': weight})
  return writer.dumps({'G': writer.persistent_object(generator)})


def test_tensors_are_read_at_their_offset_and_strides():
  values = np.arange(40, dtype=np.float32)
  weight = writer.tensor(values, size=(3, 4), stride=(1, 5), offset=2)
  read_weight = nvidia_pickle.loads(snapshot_with_weight(weight)).state_dicts()['G/weight']
  expected = [[values[2 + row + 5 * column] for column in range(4)] for row in range(3)]
  np.testing.assert_array_equal(read_weight, expected)
  outside = writer.tensor(values, size=(3, 4), stride=(1, 13), offset=2)
  assert 'reaches past its storage of 40 elements' in refusal(
      nvidia_pickle.loads, snapshot_with_weight(outside))


def payload(function, marker):
  """An object whose unpickling calls `function` to create the file `marker`."""
  arguments = {'system': f'touch {marker}', 'exec': f'open({str(marker)!r}, "w").close()',
               'call': ['touch', str(marker)]}[function.__name__]

  class Payload:

    def __reduce__(self):
      return function, (arguments,)

  return Payload()


@pytest.mark.parametrize('function', [os.system, exec, subprocess.call])
def test_pickles_that_would_run_code_are_refused_and_run_nothing(tmp_path, function):
  # The payload works: plain unpickling creates its file.
  pickle.loads(pickle.dumps(payload(function, tmp_path / 'control')))
  assert (tmp_path / 'control').exists()
  marker = tmp_path / 'created'
  snapshot = pickle.dumps({'G': payload(function, marker)})
  name = f'{function.__module__}.{function.__name__}'
  assert refusal(nvidia_pickle.loads, snapshot, 'evil.pkl') == (
      f'evil.pkl: refusing to load the global {name}: StyleGAN2 network pickles never '
      'reference it, and unpickling it could run code from the file.')
  assert not marker.exists()


def test_code_in_a_tensor_storage_is_refused_and_runs_nothing(tmp_path):
  marker = tmp_path / 'created'
  blob = writer.storage_blob([1.0], header=(writer.Global('os', 'system')(f'touch {marker}'),
                                            1001))
  weight = writer.Global('torch._utils', '_rebuild_tensor_v2')(
      writer.Global('torch.storage', '_load_from_bytes')(blob), 0, (1,), (1,))
  assert 'references the global os.system' in refusal(nvidia_pickle.loads,
                                                      snapshot_with_weight(weight))
  assert not marker.exists()


def test_the_embedded_source_text_is_never_run(tmp_path):
  marker = tmp_path / 'created'
  source = f'open({str(marker)!r}, "w").close()\n'
  snapshot = writer.network_pickle(read('sg3_stylegan2_res32'), module_src=source)
  check_state_dicts(nvidia_pickle.loads(snapshot), 'sg3_stylegan2_res32')
  assert not marker.exists()


PNG = b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR'


@pytest.mark.parametrize('content, message', [
    (b'', 'is empty; expected an NVIDIA network pickle (.pkl).'),
    (b'G = "generator"\n', 'is not a pickle of protocol 2 to 5 (starts with b\'G = "gen'),
    (PNG, 'is not a pickle of protocol 2 to 5 (a PNG image)'),
    (b'PK\x03\x04archive', 'is not a pickle of protocol 2 to 5 (a zip archive (torch.save?))'),
    ('truncated', 'is not a readable pickle, truncated or corrupt (UnpicklingError: pickle '
     'data was truncated)'),
    (pickle.dumps([1, 2]), 'is a pickle but not a network snapshot: expected a dict whose G is '
     'a network, found list.'),
    (writer.dumps(writer.Global('dnnlib.tflib.network', 'Network')(), 3),
     ': this is a TensorFlow-era StyleGAN pickle (it references dnnlib.tflib.network.Network);'
     ' convert it to a PyTorch one first with NVIDIA\'s legacy.py'),
])
def test_files_that_are_not_network_pickles_are_one_line_errors(tmp_path, content, message):
  if content == 'truncated':
    with open(path('sg3_stylegan2_res64'), 'rb') as file:
      content = file.read()[:600_000]
  bad = tmp_path / 'bad.pkl'
  bad.write_bytes(content)
  error = refusal(nvidia_pickle.read, str(bad))
  assert error.startswith(str(bad)) and message in error


def test_a_missing_file_is_a_one_line_error(tmp_path):
  assert refusal(nvidia_pickle.read, str(tmp_path / 'G.pkl')) == (
      f'{tmp_path / "G.pkl"}: no such file; give the path of an NVIDIA network pickle (.pkl).')


def rewritten(name, change):
  """The file `name`, read, changed by change(networks) and read back from a new pickle."""
  networks = read(name)
  change(networks)
  return nvidia_pickle.loads(writer.network_pickle(networks))


def add_synthesis_input(networks):
  """G as StyleGAN3's: its synthesis network starts with a SynthesisInput layer."""
  networks.networks['G'].children['synthesis'].children['input'] = module(
      'SynthesisInput', sampling_rate=16)


def use_orig_discriminator(networks):
  networks.networks['D'].init_kwargs['architecture'] = 'orig'
  networks.networks['D'].children['b32'].attributes['architecture'] = 'orig'


def use_other_label_mapping(networks):
  """D's label mapping with 2 layers instead of NVIDIA's default 8."""
  networks.networks['D'].init_kwargs['mapping_kwargs'] = {'num_layers': 2}
  networks.networks['D'].children['mapping'].attributes['num_layers'] = 2


@pytest.mark.parametrize('name, change, message', [
    ('sg3_stylegan2_res32_cond4', use_other_label_mapping, 'D.mapping.num_layers is 2, but the '
     'construction arguments with NVlabs/stylegan3\'s class defaults give 8: the file comes '
     'from other code; set config.model by hand.'),
    ('sg3_stylegan2_res32', add_synthesis_input, 'this is a StyleGAN3 (-T/-R) generator (it has '
     'a SynthesisInput layer); facegan_jax builds StyleGAN2 only: use a stylegan2-*.pkl.'),
    ('ada_stylegan2_res32', use_orig_discriminator, 'D has the \'orig\' architecture; '
     'facegan_jax\'s StyleGAN2 builds D \'resnet\' only.'),
])
def test_networks_the_port_cannot_build_are_refused_with_one_line(name, change, message):
  networks = rewritten(name, change) if change else read(name)
  assert refusal(nvidia_pickle.stylegan2_model_fields, networks) == message
