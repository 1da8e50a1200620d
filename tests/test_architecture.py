"""The package layout (docs/architecture.md): every package says what lives in it, and no module
imports from a layer above its own, so the dependencies form the ladder the page draws."""

import ast
import pathlib

import facegan_jax

PACKAGE = pathlib.Path(facegan_jax.__file__).parent
# Lower layers never import higher ones; packages on one rung do not import each other.
LAYERS = {'system': 0, 'runs': 1, 'data': 2, 'models': 2, 'sampling': 3, 'metrics': 4,
          'training': 5, 'pretrained': 6}
COMMANDS_LAYER = 7  # the modules at the top: `python -m facegan_jax.<command>`


def layer_of(module: str) -> int:
  """The layer of a dotted facegan_jax module name (a top-level module is a command)."""
  parts = module.split('.')
  if len(parts) == 1:
    return -1  # the package root: only its version string
  return LAYERS.get(parts[1], COMMANDS_LAYER)


def imported_modules(path: pathlib.Path) -> set[str]:
  """The facegan_jax modules that the file imports, wherever the import statement is."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names if alias.name.startswith('facegan_jax'))
    elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith('facegan_jax'):
      for alias in node.names:  # `from facegan_jax.x import y`: y may be a module of x
        candidate = f'{node.module}.{alias.name}'
        is_module = (PACKAGE.parent / (candidate.replace('.', '/') + '.py')).exists() or (
            PACKAGE.parent / candidate.replace('.', '/')).is_dir()
        found.add(candidate if is_module else node.module)
  return found


def module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def test_no_module_imports_from_a_layer_above_its_own():
  upward = []
  for path in sorted(PACKAGE.rglob('*.py')):
    name = module_name(path)
    for target in imported_modules(path):
      same_package = target.split('.')[:2] == name.split('.')[:2]
      if layer_of(target) > layer_of(name) or (
          layer_of(target) == layer_of(name) < COMMANDS_LAYER and not same_package):
        upward.append(f'{name} imports {target}')
  assert not upward, upward


def test_the_root_defines_only_the_version():
  assert imported_modules(PACKAGE / '__init__.py') == set()


def test_every_package_has_a_docstring_saying_what_lives_there():
  packages = [p for p in PACKAGE.iterdir() if p.is_dir() and p.name != '__pycache__']
  assert sorted(p.name for p in packages) == sorted(LAYERS)
  for package in packages:
    docstring = ast.get_docstring(ast.parse((package / '__init__.py').read_text()))
    assert docstring and len(docstring.split()) >= 10, package.name


def test_modules_at_the_top_are_commands():
  for path in PACKAGE.glob('*.py'):
    if path.name != '__init__.py':
      assert "__name__ == '__main__'" in path.read_text(), f'{path.name} is not a command'


def test_the_ladder_is_checked_for_real():
  """The check above sees an upward import when there is one."""
  assert layer_of('facegan_jax.training.loop') > layer_of('facegan_jax.data.images')
  assert 'facegan_jax.training.step' in imported_modules(PACKAGE / 'training' / 'loop.py')
