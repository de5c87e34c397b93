"""User-facing errors and the one error boundary every entry point (``infer.py``, ``evaluate.py``, ``train.py``)
runs inside: bioqa's own errors and the OS's become one line on stderr and exit code 2; a full traceback only with
``HYDRA_FULL_ERROR=1`` or ``BIOQA_VERBOSE=1``."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

#: Exit code of a run refused for its input (config, files, data) — as argparse does for usage errors.
EXIT_USAGE = 2
#: Exit code of a run that finished and wrote its outputs, but with more failed requests than allowed.
EXIT_FAILURES = 3


class BioQAError(Exception):
    """An error the user can act on; its message is the one line they see (say what, where and what to do)."""


class ConfigError(BioQAError, ValueError):
    """A config value that is missing, of the wrong type, out of range, or incompatible with another."""


class DataFileError(ConfigError):
    """A file named by a config value (questions, submission, training data) that is missing, a directory, empty,
    not UTF-8, not valid JSON or not of the expected shape; the message names the config key and the file."""


class RunConflictError(BioQAError):
    """A run directory that belongs to another config, or that another live process holds."""


class BackendAuthError(BioQAError):
    """The model API refused the credentials: every further request would fail the same way."""


class TooManyFailures(BioQAError):
    """A run finished (outputs written) with more failed requests than ``errors.max_fraction`` allows."""

    exit_code = EXIT_FAILURES


F = TypeVar("F", bound=Callable[..., Any])


def verbose() -> bool:
    """Whether the user asked for full tracebacks."""
    return any(os.environ.get(name, "") not in ("", "0") for name in ("HYDRA_FULL_ERROR", "BIOQA_VERBOSE"))


def describe(error: BaseException) -> str | None:
    """The one line a user sees for ``error``, or ``None`` when it is a programming error (keep its traceback)."""
    from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

    if isinstance(error, BioQAError):  # bioqa.data's BioASQFormatError and training's ExampleError included
        return str(error)
    if isinstance(error, MissingMandatoryValue):
        return f"{error.full_key} is missing (???): pass {error.full_key}=..."
    if isinstance(error, InterpolationResolutionError):
        return f"{error.full_key}: {str(error).splitlines()[0]}"
    if isinstance(error, IsADirectoryError):
        return f"{error.filename}: is a directory, expected a file"
    if isinstance(error, NotADirectoryError):
        return f"{error.filename}: is not a directory"
    if isinstance(error, FileNotFoundError):
        return f"{error.filename or error}: no such file or directory"
    if isinstance(error, PermissionError):
        return f"{error.filename or error}: permission denied"
    if isinstance(error, OSError) and error.filename:
        return f"{error.filename}: {error.strerror or error}"
    if isinstance(error, UnicodeDecodeError):
        return f"a file is not valid UTF-8 ({error.reason} at byte {error.start})"
    if isinstance(error, json.JSONDecodeError):
        return f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
    if isinstance(error, RecursionError):
        return "input nested too deeply to read (recursion limit)"
    return None


def error_boundary(entry: F) -> F:
    """Run ``entry``; turn a user-facing error into ``<entry>: error: <one line>`` on stderr and ``SystemExit``
    (2, or the error's own ``exit_code``). Programming errors keep their traceback."""

    @functools.wraps(entry)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return entry(*args, **kwargs)
        except Exception as error:
            message = describe(error)
            if message is None or verbose():
                raise
            name = os.path.basename(sys.argv[0]) or "bioqa"
            print(f"{name}: error: {' '.join(message.split())}", file=sys.stderr)
            raise SystemExit(getattr(error, "exit_code", EXIT_USAGE)) from None

    return wrapper  # type: ignore[return-value]
