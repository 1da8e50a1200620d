"""The XLA flags the project adds itself: only on CPU, appended, never over the user's own."""

from facegan_jax.system import xla_flags

FLAG = xla_flags.CPU_CONVOLUTIONS[0]


def test_speed_flags_are_appended_to_the_users_flags_on_cpu():
  environ = {'XLA_FLAGS': '--xla_force_host_platform_device_count=8'}
  xla_flags.add_speed_flags(environ, platforms='cpu')
  assert environ['XLA_FLAGS'] == f'--xla_force_host_platform_device_count=8 {FLAG}'


def test_the_users_own_setting_of_the_flag_wins():
  mine = '--xla_cpu_experimental_ynn_fusion_type=individual_dot'
  environ = {'XLA_FLAGS': mine}
  xla_flags.add_speed_flags(environ, platforms='cpu')
  assert environ['XLA_FLAGS'] == mine


def test_no_cpu_flags_when_jax_runs_on_an_accelerator():
  environ = {}
  xla_flags.add_speed_flags(environ, platforms='cuda,cpu')
  assert not environ
  assert xla_flags.runs_on_cpu('cpu') and not xla_flags.runs_on_cpu('tpu')
