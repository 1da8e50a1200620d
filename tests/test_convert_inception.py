"""The weight conversion command: a missing .pth names where to download it."""

from facegan_jax import inception
from tests import multidevice


def test_missing_pth_is_a_one_line_error_with_the_download(tmp_path):
  result = multidevice.run_python(['-m', 'facegan_jax.convert_inception',
                                   f'--pth={tmp_path}/absent.pth', f'--out={tmp_path}/out.npz'])
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      f"error: --pth='{tmp_path}/absent.pth' is not a file; download {inception.WEIGHTS_URL}")
  assert not (tmp_path / 'out.npz').exists()
