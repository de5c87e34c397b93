"""User-facing errors and the one error boundary every entry point (``infer.py``, ``evaluate.py``, ``train.py``)
runs inside: bioqa's own errors, the OS's and Hydra's composition/override errors become one line on stderr and
exit code 2; a full traceback only with ``HYDRA_FULL_ERROR=1`` or ``BIOQA_VERBOSE=1``."""

from __future__ import annotations

import difflib
import functools
import inspect
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
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


# Hydra's composition errors (a bad override, an unknown key or config option) are raised before any bioqa code
# runs, inside Hydra's ``run_and_report``, which prints them over several lines and exits 1 unless
# HYDRA_FULL_ERROR=1, when it re-raises them. `hydra_entry` therefore sets HYDRA_FULL_ERROR=1 for Hydra (only when
# the user did not ask for verbose output: then everything stays as Hydra does it) and turns what propagates into
# one line. Why not (b), parsing and composing the overrides up front with Hydra's compose API: it would duplicate
# what ``hydra.main`` does with the command line (-m sweeps, --config-name, --cfg, launchers), and could drift from
# it; here Hydra composes once, as always, and only its error is reported differently. No private Hydra function is
# called or patched. The user's environment is put back while the task function runs (HYDRA_FULL_ERROR unset, as
# the user had it), so `verbose` keeps meaning "the user asked" there, and so do subprocesses and the workers of
# the joblib / submitit launchers, which run the task function through the same wrapper.
_FULL_ERROR = "HYDRA_FULL_ERROR"
#: Set beside HYDRA_FULL_ERROR=1 when bioqa set it for Hydra (not the user); inherited by launcher workers.
_SET_FOR_HYDRA = "BIOQA_HYDRA_FULL_ERROR_SET"
GRAMMAR_URL = "https://hydra.cc/docs/advanced/override_grammar/basic/"


def hydra_entry(config_name: str) -> Callable[[Callable[[Any], Any]], Callable[..., Any]]:
    """The decorator of every entry point's ``main(cfg)``: ``@hydra.main`` on ``conf/<config_name>.yaml`` beside the
    script, the task inside :func:`error_boundary`, and Hydra's composition and override errors (single runs and
    ``-m`` sweeps) as one line and exit 2 too (:func:`describe_hydra`)."""

    def decorate(task: Callable[[Any], Any]) -> Callable[..., Any]:
        import hydra

        conf = Path(inspect.getfile(task)).resolve().parent / "conf"  # whatever name the script is imported under
        hydra_main = hydra.main(config_path=str(conf), config_name=config_name, version_base="1.3")(
            _in_user_environment(error_boundary(task))
        )

        @functools.wraps(hydra_main)
        def main(*args: Any, **kwargs: Any) -> Any:
            if args or kwargs or verbose():  # a config handed in (Hydra composes nothing), or Hydra's own reports
                return hydra_main(*args, **kwargs)
            try:
                with _hydra_raises():
                    return hydra_main()
            except Exception as error:
                message = None if getattr(error, "_bioqa_task", False) else describe_hydra(error)
                if message is None:
                    raise
                forget_unstarted_sweep()
                refuse(message)
            finally:
                _new_sweep_dirs.clear()

        return main

    return decorate


@contextmanager
def _hydra_raises() -> Iterator[None]:
    """HYDRA_FULL_ERROR=1 (marked as bioqa's) while Hydra runs; the environment as it was afterwards."""
    saved = {name: os.environ.get(name) for name in (_FULL_ERROR, _SET_FOR_HYDRA)}
    os.environ.update({_FULL_ERROR: "1", _SET_FOR_HYDRA: "1"})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _in_user_environment(task: F) -> F:
    """``task`` run without the HYDRA_FULL_ERROR=1 bioqa set for Hydra; an error escaping it is marked as the task's
    (a programming error, never reported as a composition error)."""

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ours = os.environ.pop(_SET_FOR_HYDRA, None) is not None
        if ours:
            os.environ.pop(_FULL_ERROR, None)
        try:
            return task(*args, **kwargs)
        except Exception as error:
            error._bioqa_task = True  # type: ignore[attr-defined]
            raise
        finally:
            if ours:
                os.environ.update({_FULL_ERROR: "1", _SET_FOR_HYDRA: "1"})

    return wrapper  # type: ignore[return-value]


#: The directories the current ``-m`` sweep creates (its sweep directory first), noted by
#: :class:`bioqa.config.sweep_dir.UnstartedSweepCleanup` before Hydra creates them.
_new_sweep_dirs: list[Path] = []


def note_sweep_dir(sweep_dir: Path, created: list[Path]) -> None:
    """Remember that the sweep about to start creates ``created`` (``sweep_dir`` and its missing parents)."""
    _new_sweep_dirs[:] = created if sweep_dir in created else []


def forget_unstarted_sweep() -> None:
    """Remove what a sweep refused before its first job created: its directory holding only Hydra's
    ``multirun.yaml``, then the parents it created, while empty. A sweep directory that existed before is kept."""
    if not _new_sweep_dirs or {p.name for p in _new_sweep_dirs[0].iterdir()} - {"multirun.yaml"}:
        return
    (_new_sweep_dirs[0] / "multirun.yaml").unlink(missing_ok=True)
    for folder in _new_sweep_dirs:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def describe_hydra(error: BaseException) -> str | None:
    """One actionable line for an error Hydra raised while parsing the overrides or composing the config, or
    ``None`` when ``error`` is not one (an instantiation error is the task's, not the command line's)."""
    from hydra.errors import HydraException, InstantiationException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(error, InstantiationException) or not isinstance(error, HydraException | OmegaConfBaseException):
        return None
    if isinstance(error, OverrideParseException):
        reason = [line for line in str(error).splitlines() if line.strip() and not line.startswith(("See ", "Error "))]
        return f"{error.override}: not a valid override ({' '.join(reason) or 'syntax'}); see {GRAMMAR_URL}"
    if isinstance(error, MissingConfigException) and error.options and error.missing_cfg_file:
        group, _, option = error.missing_cfg_file.rpartition("/")
        hint = did_you_mean(option, error.options)
        choices = ", ".join(error.options)
        return f"{group}={option}: no option '{option}' in group '{group}'; {hint}choose one of: {choices}"
    unknown = re.match(r"Could not override '([^']+)'\.\nTo append to your config use \+(.+)", str(error))
    cause = error.__cause__
    if unknown and isinstance(cause, OmegaConfBaseException):
        key, override = unknown.groups()
        parent, _, name = key.rpartition(".")
        known = list(cause.parent_node.keys()) if hasattr(cause.parent_node, "keys") else []
        hint = did_you_mean(name, [str(k) for k in known], prefix=f"{parent}." if parent else "")
        value = override.partition("=")[2]
        return f"{override}: no config key '{key}' ({hint}use +{key}={value or '...'} to add a new key)"
    lines = [line.strip() for line in str(error).split("\nConfig search path:")[0].splitlines() if line.strip()]
    if isinstance(cause, OmegaConfBaseException):
        lines.append(str(cause).splitlines()[0])
    return " ".join(lines) or type(error).__name__


def did_you_mean(name: str, known: Sequence[str], prefix: str = "") -> str:
    """``did you mean 'X'? `` for the known name closest to ``name`` (difflib), or ``""``."""
    match = difflib.get_close_matches(name, known, n=1)
    return f"did you mean '{prefix}{match[0]}'? " if match else ""
