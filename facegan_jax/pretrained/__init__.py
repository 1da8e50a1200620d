"""Networks from elsewhere: NVIDIA's StyleGAN2 weights converted into this project's parameters
and into step 0 of a run."""
