"""The entry points' Hydra shell: ``@hydra_entry("infer")`` runs ``@hydra.main`` on ``conf/infer.yaml`` with the task
inside :func:`bioqa.errors.error_boundary`, and turns Hydra's own composition and override errors (single runs and
``-m`` sweeps) into one line and exit 2 as well; a sweep refused before its first job leaves no directory behind
(:class:`UnstartedSweepCleanup`).

Hydra's composition errors are raised before any bioqa code runs, inside Hydra's ``run_and_report``, which prints
them over several lines and exits 1 unless HYDRA_FULL_ERROR=1, when it re-raises them. :func:`hydra_entry` therefore
sets HYDRA_FULL_ERROR=1 for Hydra (only when the user did not ask for verbose output: then everything stays as Hydra
does it) and turns what propagates into one line. Why not parse and compose the overrides up front with Hydra's
compose API: it would duplicate what ``hydra.main`` does with the command line (-m sweeps, --config-name, --cfg,
launchers), and could drift from it; here Hydra composes once, as always, and only its error is reported
differently. No private Hydra function is called or patched. The user's environment is put back while the task
function runs (HYDRA_FULL_ERROR unset, as the user had it), so ``verbose`` keeps meaning "the user asked" there, and
so do subprocesses and the workers of the joblib / submitit launchers, which run the task function through the same
wrapper. The messages parsed below are Hydra 1.3's.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bioqa.errors import did_you_mean, error_boundary, refuse, verbose

F = TypeVar("F", bound=Callable[..., Any])
_FULL_ERROR = "HYDRA_FULL_ERROR"
#: Set beside HYDRA_FULL_ERROR=1 when bioqa set it for Hydra (not the user); inherited by launcher workers.
_SET_FOR_HYDRA = "BIOQA_HYDRA_FULL_ERROR_SET"
GRAMMAR_URL = "https://hydra.cc/docs/advanced/override_grammar/basic/"
#: The directories the ``-m`` sweep of the current entry-point call is about to create (its sweep directory first),
#: noted by :class:`UnstartedSweepCleanup`; set (to a fresh list) and reset by each :func:`hydra_entry` call.
_sweep_notes: ContextVar[list[Path] | None] = ContextVar("bioqa_sweep_notes", default=None)


def hydra_entry(config_name: str) -> Callable[[Callable[[Any], Any]], Callable[..., Any]]:
    """The decorator of every entry point's ``main(cfg)``: ``@hydra.main`` on ``conf/<config_name>.yaml`` beside the
    script, the task inside :func:`~bioqa.errors.error_boundary`, and Hydra's composition and override errors
    (single runs and ``-m`` sweeps) as one line and exit 2 too (:func:`describe_hydra`)."""

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
            notes = _sweep_notes.set([])
            try:
                with _hydra_raises():
                    return hydra_main()
            except Exception as error:
                message = None if getattr(error, "_bioqa_task", False) else describe_hydra(error)
                if message is None:
                    raise
                forget_unstarted_sweep(_sweep_notes.get() or [])
                refuse(message)
            finally:
                _sweep_notes.reset(notes)

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


class UnstartedSweepCleanup(Callback):
    """A Hydra callback (``conf/hydra/default.yaml``): Hydra's sweeper creates the sweep directory and writes
    ``multirun.yaml`` into it BEFORE it composes the jobs' configs; a bad sweep value (``-m model=a,typo``) then fails
    with only that file written. This notes which directories the sweep is about to create, for the entry point
    that started it (:func:`forget_unstarted_sweep`)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        notes = _sweep_notes.get()
        if notes is None:  # not started through hydra_entry: nothing will clean up
            return
        sweep_dir = Path(config.hydra.sweep.dir).absolute()  # resolved once: ${now:} is cached for the sweeper too
        notes[:] = [d for d in (sweep_dir, *sweep_dir.parents) if not d.exists()]


def forget_unstarted_sweep(created: list[Path]) -> None:
    """Remove what a sweep refused before its first job created (``created``: its directory first, then the parents
    it created): the sweep directory holding only Hydra's ``multirun.yaml``, then the parents, while empty. A sweep
    directory that existed before is not in ``created`` and is kept."""
    if not created or {p.name for p in created[0].iterdir()} - {"multirun.yaml"}:
        return
    (created[0] / "multirun.yaml").unlink(missing_ok=True)
    for folder in created:
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
        options = [o for o in error.options if not o.startswith("_")]  # _base, _wikipedia: parts, not options
        hint = did_you_mean(option, options)
        choices = ", ".join(options)
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
