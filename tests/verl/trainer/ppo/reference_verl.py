"""PyPI verl's ``core_algos``, loaded from its wheel under the package name ``pypi_verl`` (ours is also ``verl``).

The wheel (pinned with its hash in scripts/requirements-reference-verl.txt) is downloaded, not installed, by
scripts/setup_env.sh into ``<venv>/reference/``. Modules are read straight from the zip; every absolute ``verl``
import in them is rewritten to ``pypi_verl`` (on the syntax tree), so the reference and our package never meet.

Everything ``core_algos`` imports runs as shipped (torch_functional, groupwise, the real ActorConfig / AlgoConfig
dataclasses and the config modules they import), except three package ``__init__`` files whose imports this
environment lacks and the loss functions never use: ``verl/__init__.py`` (DataProto, ray, plugin entry points),
``verl/utils/profiler/__init__.py`` (needs ``codetiming``) and ``verl/utils/qat/__init__.py`` (vLLM weight-loading
patches). Those packages load empty; the names other modules import from them (ProfilerConfig, QATConfig) resolve
to the submodule that defines them, which runs as shipped.
"""
from __future__ import annotations

import ast
import functools
import importlib
import importlib.abc
import importlib.util
import os
import sys
import zipfile
from pathlib import Path

ALIAS = "pypi_verl"
VERSION = "0.9.1"
WHEEL = Path(sys.prefix) / "reference" / f"verl-{VERSION}-py3-none-any.whl"

# package (path inside verl/) -> {name: submodule defining it}; the package's own __init__ is not run
_SKIPPED_INITS = {"": {}, "utils/profiler": {"ProfilerConfig": "config"}, "utils/qat": {"QATConfig": "core"}}


class _WheelAliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``pypi_verl.x.y`` from ``verl/x/y.py`` (or ``verl/x/y/__init__.py``) inside the wheel."""

    def __init__(self, wheel: Path):
        self.zip = zipfile.ZipFile(wheel)
        self.names = set(self.zip.namelist())

    def _locate(self, fullname: str):
        rel = fullname[len(ALIAS):].lstrip(".").replace(".", "/")
        base = f"verl/{rel}" if rel else "verl"
        if f"{base}/__init__.py" in self.names:
            return f"{base}/__init__.py", True, rel
        if f"{base}.py" in self.names:
            return f"{base}.py", False, rel
        return None

    def find_spec(self, fullname, path=None, target=None):
        if fullname != ALIAS and not fullname.startswith(ALIAS + "."):
            return None
        found = self._locate(fullname)
        return None if found is None else importlib.util.spec_from_loader(fullname, self, is_package=found[1])

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        path, is_package, rel = self._locate(module.__name__)
        module.__file__ = f"{WHEEL}/{path}"
        if is_package:
            module.__path__ = []
        if is_package and rel in _SKIPPED_INITS:
            module.__getattr__ = functools.partial(_from_submodule, module.__name__, _SKIPPED_INITS[rel])
            return
        tree = ast.parse(self.zip.read(path).decode(), module.__file__)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    alias.name = _renamed(alias.name)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                node.module = _renamed(node.module)
        exec(compile(tree, module.__file__, "exec"), module.__dict__)


def _renamed(name: str) -> str:
    return ALIAS + name[len("verl"):] if name == "verl" or name.startswith("verl.") else name


def _from_submodule(package: str, table: dict, attr: str):
    if attr not in table:
        raise AttributeError(f"{package}.{attr} (this package's __init__ is not loaded; see reference_verl)")
    return getattr(importlib.import_module(f"{package}.{table[attr]}"), attr)


@functools.cache
def core_algos():
    """PyPI verl's ``verl.trainer.ppo.core_algos`` module (imported once per process)."""
    if not WHEEL.is_file():
        raise FileNotFoundError(f"{WHEEL} is missing: run scripts/setup_env.sh, which downloads the reference verl "
                                f"wheel pinned in scripts/requirements-reference-verl.txt")
    sys.meta_path.insert(0, _WheelAliasFinder(WHEEL))
    environ = dict(os.environ)
    try:
        module = importlib.import_module(f"{ALIAS}.trainer.ppo.core_algos")
    finally:  # its imports set defaults (e.g. TORCHINDUCTOR_CACHE_DIR) that other tests must not inherit
        os.environ.clear()
        os.environ.update(environ)
    assert module.__file__.startswith(str(WHEEL)), module.__file__
    return module


def actor_config(**fields):
    """PyPI verl's own ``ActorConfig`` dataclass (what its policy losses assert and read) with ``fields`` set."""
    cfg_cls = core_algos().ActorConfig
    base = {"strategy": "fsdp", "rollout_n": 1, "ppo_micro_batch_size_per_gpu": 1}
    return cfg_cls(**{**base, **fields})
