"""Where run files live: a local path or a Google Cloud Storage URL (gs://bucket/path).

Local paths keep plain file calls. For gs://, files go through `etils.epath` (its fsspec backend,
gcsfs), the arrays of Orbax checkpoints through tensorstore's gcs driver, TensorBoard events
through this module (`metric_writer`), and the workdir lock through google-cloud-storage
(`workdir_lock`). All of them find credentials the same way (Application
Default Credentials: a TPU or GCE VM's service account, `gcloud auth application-default login`,
or GOOGLE_APPLICATION_CREDENTIALS), and all can be pointed at another server by environment
variables alone: STORAGE_EMULATOR_HOST=http://HOST:PORT (gcsfs, google-cloud-storage) and
TENSORSTORE_GCS_HTTP_URL=http://HOST:PORT (tensorstore). That is how the tests use
fake-gcs-server.

epath would read gs:// through tf.io.gfile whenever TensorFlow is installed (the 'data' extra
installs it); this module makes it use gcsfs everywhere (EPATH_USE_TF=false unless set), so a
run behaves the same with or without TensorFlow: tf.io.gfile's GCS client has a fixed endpoint
and retries a missing bucket for minutes. It also turns off gcsfs's cache of listings, which
never expires by default: other hosts and tensorstore write objects that a process's gcsfs does
not see, and Orbax lists the checkpoint steps to find the newest. And it keeps gcsfs's plain
file system (GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false unless set): the experimental one asks the
storage-control API for each bucket's layout, and repeats the question before every request
when the answer does not come (an emulator, or an account without that permission).
"""

import functools
import os

from etils import epath
import fsspec.config

from facegan_jax.system.errors import UserError

os.environ.setdefault('EPATH_USE_TF', 'false')  # before epath picks a gs:// backend (cached)
os.environ.setdefault('GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT', 'false')  # before gcsfs is imported
fsspec.config.conf.setdefault('gs', {}).setdefault('use_listings_cache', False)

GCS_PREFIX = 'gs://'
INSTALL_HINT = "pip install -e '.[gcs]'"
# Seconds that the first request to a bucket retries a connection that fails (an unreachable
# endpoint, a dropped network) before the run stops with a message; $FACEGAN_GCS_TIMEOUT.
DEFAULT_TIMEOUT = 60


def is_gcs(path) -> bool:
  return str(path).startswith(GCS_PREFIX)


def bucket_name(url: str) -> str:
  """'gs://bucket/a/b' -> 'bucket'."""
  return url[len(GCS_PREFIX):].split('/', 1)[0]


def object_name(url: str) -> str:
  """'gs://bucket/a/b' -> 'a/b' (the object's name in its bucket)."""
  parts = url[len(GCS_PREFIX):].split('/', 1)
  return parts[1].strip('/') if len(parts) > 1 else ''


def endpoint() -> str:
  """The GCS server that requests go to: STORAGE_EMULATOR_HOST if set, else Google's."""
  return os.environ.get('STORAGE_EMULATOR_HOST') or 'https://storage.googleapis.com'


def timeout() -> float:
  value = os.environ.get('FACEGAN_GCS_TIMEOUT', str(DEFAULT_TIMEOUT))
  try:
    return float(value)
  except ValueError:
    raise UserError(f'FACEGAN_GCS_TIMEOUT={value!r} is not a number of seconds; '
                    f'unset it (default {DEFAULT_TIMEOUT}) or set e.g. 120.') from None


def gcs_modules():
  """(google.cloud.storage, google.api_core.exceptions, google.auth.exceptions); UserError
  naming the extra to install if they are missing."""
  try:
    # pylint: disable=g-import-not-at-top
    import gcsfs  # pylint: disable=unused-import  (epath's gs:// backend)
    from google.api_core import exceptions as api_exceptions
    from google.auth import exceptions as auth_exceptions
    from google.cloud import storage as gcs
    # pylint: enable=g-import-not-at-top
  except ImportError as error:
    raise UserError(f'gs:// paths need gcsfs and google-cloud-storage ({error.name} is '
                    f'missing); install them with: {INSTALL_HINT}') from None
  return gcs, api_exceptions, auth_exceptions


@functools.cache
def client():
  """The process's google-cloud-storage client (Application Default Credentials)."""
  gcs, _, auth_exceptions = gcs_modules()
  try:
    return gcs.Client()
  except auth_exceptions.GoogleAuthError as error:
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    raise UserError(f'no Google Cloud credentials to use gs:// ({first_line}); on a TPU or GCE '
                    'VM its service account is used, elsewhere run `gcloud auth '
                    'application-default login` or set GOOGLE_APPLICATION_CREDENTIALS to a '
                    'key file.') from None


def blob(url: str):
  """The google-cloud-storage Blob of `url`."""
  return client().bucket(bucket_name(url)).blob(object_name(url))


def retry():
  """google-cloud-storage's retry policy, bounded by `timeout()` seconds."""
  from google.cloud.storage import retry as gcs_retry  # pylint: disable=g-import-not-at-top
  return gcs_retry.DEFAULT_RETRY.with_timeout(timeout())


def gcs_error(url: str, error: Exception, what: str) -> UserError:
  """One line for a failed request on `url` (`what`: the flag or field that named it)."""
  _, api_exceptions, auth_exceptions = gcs_modules()
  bucket = bucket_name(url)
  first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
  if isinstance(error, api_exceptions.NotFound):
    return UserError(f'bucket gs://{bucket} does not exist ({what}); create it (gcloud storage '
                     f'buckets create gs://{bucket}) or fix the bucket name.')
  if isinstance(error, (api_exceptions.Forbidden, api_exceptions.Unauthorized)):
    return UserError(f'no permission to use gs://{bucket} ({what}: {first_line}); grant the '
                     'account in use roles/storage.objectAdmin on the bucket '
                     '(storage.objects.create/get/list/delete; launch/README.md).')
  if isinstance(error, auth_exceptions.GoogleAuthError):
    return UserError(f'the Google Cloud credentials were refused for gs://{bucket} ({what}: '
                     f'{first_line}); run `gcloud auth application-default login` or check '
                     'GOOGLE_APPLICATION_CREDENTIALS.')
  return UserError(f'cannot reach Google Cloud Storage at {endpoint()} for gs://{bucket} '
                   f'({what}) within {timeout():g} s ({type(error).__name__}: {first_line}); '
                   'check the network, the bucket name and STORAGE_EMULATOR_HOST if set, or '
                   'raise FACEGAN_GCS_TIMEOUT.')


def check_reachable(path: str, what: str):
  """For a gs:// `path`: UserError (`gcs_error`) unless its bucket exists and can be listed with
  the credentials in use, retrying connection failures for at most `timeout()` seconds. Runs
  before anything else touches the bucket, so that a typo stops at once (gcsfs would also
  create a missing bucket on the first directory it makes). Local paths: nothing to check."""
  if not is_gcs(path):
    return
  gcs_client = client()
  try:
    list(gcs_client.list_blobs(bucket_name(path), prefix=object_name(path), max_results=1,
                               retry=retry(), timeout=timeout()))  # one request
  except Exception as error:  # pylint: disable=broad-except
    raise gcs_error(path, error, what) from None


def path(location: str) -> epath.Path:
  return epath.Path(location)


def makedirs(directory: str):
  """A local directory and its parents; nothing for gs://, where directories are implicit."""
  if not is_gcs(directory):
    os.makedirs(directory, exist_ok=True)


def write_bytes(location: str, data: bytes):
  """Writes `data` to a local file or a GCS object (replacing it)."""
  if is_gcs(location):
    epath.Path(location).write_bytes(data)
  else:
    with open(location, 'wb') as f:
      f.write(data)


def write_text(location: str, text: str):
  write_bytes(location, text.encode())


def append_text(location: str, text: str):
  """Appends `text` to a local file, or rewrites a GCS object with `text` added (objects cannot
  be appended to: each call reads and writes the whole object, fine for a log of lines)."""
  if is_gcs(location):
    target = epath.Path(location)
    target.write_text((target.read_text() if target.exists() else '') + text)
  else:
    with open(location, 'a') as f:
      f.write(text)


def read_bytes(location: str) -> bytes:
  """The bytes of a local file or a GCS object; FileNotFoundError if there is none. An object
  is read in one request, so a concurrent rewrite yields the old or the new bytes, never the new
  cut to the old size (gcsfs asks for the size first, then for that many bytes)."""
  if not is_gcs(location):
    return epath.Path(location).read_bytes()
  _, api_exceptions, _ = gcs_modules()
  try:
    return blob(location).download_as_bytes(retry=retry(), timeout=timeout())
  except api_exceptions.NotFound as error:
    raise FileNotFoundError(f'{location} does not exist') from error


def list_objects(url: str) -> dict[str, str]:
  """Every object under the gs:// `url`, recursively: {name relative to url: version}, where
  the version (size and generation) changes whenever the object does. One listing request per
  1000 objects, not one per object."""
  prefix = object_name(url)
  prefix = prefix + '/' if prefix else ''
  objects = client().list_blobs(bucket_name(url), prefix=prefix, retry=retry(),
                                timeout=timeout())
  return {item.name[len(prefix):]: f'{item.size}\0{item.generation}' for item in objects
          if not item.name.endswith('/')}


def move_command(source: str, destination: str) -> str:
  """The shell command that renames `source` (a file or directory) to `destination`."""
  return (f'gcloud storage mv {source} {destination}' if is_gcs(source)
          else f'mv {source} {destination}')
