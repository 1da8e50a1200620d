"""What the test machine's CPU has, for tests that compare with numbers another machine wrote."""


def has_avx512() -> bool:
  """Whether this CPU has AVX-512: XLA:CPU generates code for the vector units it finds, and
  sums in another order without them, so results written on one kind of machine are
  bit-identical only on the same kind."""
  with open('/proc/cpuinfo') as cpuinfo:
    return 'avx512f' in cpuinfo.read().split()
