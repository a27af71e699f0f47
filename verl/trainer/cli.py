"""The shared command-line entry of ``main_ppo`` and ``main_sft``: a bad override or config exits with status 2
and a readable message, never a traceback."""
from __future__ import annotations

import sys
from typing import Callable

from omegaconf import DictConfig

from verl.trainer.config_check import ConfigError, check_cli_overrides


def _exit_with_config_error(message: str) -> None:
    print(message, file=sys.stderr)
    sys.exit(2)


def run_or_exit_on_config_error(run: Callable[[DictConfig], object], config: DictConfig) -> None:
    """Call ``run(config)``; a ConfigError is printed to stderr and the process exits with status 2."""
    try:
        run(config)
    except ConfigError as e:
        _exit_with_config_error(f"\n{e}")


def main_with_checked_overrides(config_name: str, schema_path: str, hydra_main: Callable[[], None]) -> None:
    """Check ``sys.argv``'s overrides against ``schema_path`` (clear errors for unknown keys, old ``+key=`` forms
    fixed up), put the checked list back in ``sys.argv`` and call ``hydra_main``.

    ``hydra_main`` stays decorated with ``@hydra.main`` in the entry module itself, because hydra names the job
    (log file, output folder) after the module that defines the task function.
    """
    try:
        argv = check_cli_overrides(sys.argv[1:], config_name, schema_path)
    except ConfigError as e:
        _exit_with_config_error(str(e))
    sys.argv = [sys.argv[0], *argv]
    hydra_main()
