"""bioqa's error vocabulary and :func:`describe`, the one line a user sees for an error (bioqa's own, the OS's,
a config node Hydra could not build), with the error boundary that prints it and exits 2; a full traceback only
with ``HYDRA_FULL_ERROR=1`` or ``BIOQA_VERBOSE=1``. Driving Hydra (composition errors, sweeps) is
:mod:`bioqa.cli`'s."""

from __future__ import annotations

import argparse
import difflib
import functools
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

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


class MissingCredentials(BioQAError, OSError):
    """An API key (or other credential) the environment does not hold: name the variable to set."""


class BackendAuthError(BioQAError):
    """The model API refused the credentials: every further request would fail the same way."""


class TooManyFailures(BioQAError):
    """A run finished (outputs written) with more failed requests than ``errors.max_fraction`` allows."""

    exit_code = EXIT_FAILURES


class ArgumentParser(argparse.ArgumentParser):
    """``argparse`` for bioqa's ``python -m`` commands: a bad argument is one :class:`ConfigError` line (exit 2 in
    :func:`error_boundary`) instead of the usage block and the error."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see {self.prog} --help)")


def at_least_one(text: str) -> int:
    """An ``argparse`` type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


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
    if type(error).__name__ == "InstantiationException":  # hydra.errors, not imported unless Hydra raised it
        return _describe_instantiation(error)
    return None


#: A TypeError raised by binding a target's arguments (a config key or value the target does not take).
_SIGNATURE_MISMATCH = re.compile(r"unexpected keyword argument|missing \d+ required|takes \d+ positional")


def _describe_instantiation(error: BaseException) -> str | None:
    """Hydra could not build a config node (``full_key``): a value its target refused (ValueError, a bioqa or OS
    error) or arguments its signature does not take; anything else raised inside the target keeps its traceback."""
    cause = error.__cause__
    found = re.search(r"^full_key: (\S+)", str(error), re.MULTILINE)
    where = found.group(1) if found else "a config node"
    if isinstance(cause, TypeError) and _SIGNATURE_MISMATCH.search(str(cause)):
        return f"{where}: {cause}"
    if isinstance(cause, ValueError | BioQAError):
        return f"{where}: {describe(cause) or cause}"
    if isinstance(cause, ImportError) and str(error).startswith("Error locating target"):
        target = str(error).split("'")[1]
        return f"{where}._target_={target}: cannot be imported ({' '.join(str(cause).split())})"
    if isinstance(cause, OSError):  # a file, a connection, weights transformers cannot find: the first line says
        return f"{where}: {describe(cause) or str(cause).strip().splitlines()[0]}"
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
            refuse(message, getattr(error, "exit_code", EXIT_USAGE))

    return wrapper  # type: ignore[return-value]


def refuse(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``<script>: error: <message>`` (on one line) to stderr and exit with ``code``."""
    name = os.path.basename(sys.argv[0]) or "bioqa"
    print(f"{name}: error: {' '.join(message.split())}", file=sys.stderr)
    raise SystemExit(code) from None


def did_you_mean(name: str, known: Sequence[str], prefix: str = "") -> str:
    """``did you mean 'X'? `` for the known name closest to ``name`` (difflib), or ``""``."""
    match = difflib.get_close_matches(name, known, n=1)
    return f"did you mean '{prefix}{match[0]}'? " if match else ""
