"""facegan_jax: reproducible, data-parallel GANs for human faces in JAX/Flax."""

__version__ = "0.1.0"
