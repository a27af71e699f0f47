"""Import user code named in a config: a dotted module name or a ``.py`` file, with errors that name the config key."""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType


def import_module_or_file(target: str, what: str) -> ModuleType:
    """Import a dotted module name, or execute a ``.py`` file as a module; ``what`` (e.g. the config key and value)
    starts every error message."""
    path = os.path.expanduser(target)
    if target.endswith(".py") or os.path.sep in target:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{what}: no such file {path!r}")
        module_name = "custom_module_" + os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            raise RuntimeError(f"{what}: error while loading {path!r}: {e}") from e
        return module
    try:
        return importlib.import_module(target)
    except ImportError as e:
        raise ImportError(f"{what}: cannot import module {target!r}: {e}") from e


def import_external_libs(external_libs, key: str = "model.external_lib") -> list[ModuleType]:
    """Import verl's ``model.external_lib`` (a module name or a list of them; None: nothing) for its side effects,
    typically registering a custom architecture with transformers' Auto classes, before a model is loaded.

    Raises ImportError (or RuntimeError for a ``.py`` file that fails) naming ``key`` and the module.
    """
    if not external_libs:
        return []
    names = [external_libs] if isinstance(external_libs, str) else list(external_libs)
    return [import_module_or_file(str(name), what=f"{key}={str(name)!r}") for name in names]
