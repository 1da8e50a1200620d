"""facegan_jax: reproducible, data-parallel GANs for human faces in JAX/Flax."""
