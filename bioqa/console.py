"""What the entry points print on stderr: bioqa's own log lines, and other libraries' only when they matter.

Hydra's job logging (``conf/hydra/default.yaml``) writes every record, in full, to the run's ``<task>.log``; its
console handler uses :class:`LibraryLines` and :class:`OneLineFormatter`, so that on stderr
- bioqa's records (``bioqa.*``, the scripts' ``__main__``) show as they are;
- another library's records show only from WARNING up, once each, as one line that names the library (its
  traceback and continuation lines stay in the log file);
- Python warnings (``warnings.warn``) take the same route while a job runs (:class:`RouteWarnings`, a Hydra callback:
  ``logging.captureWarnings``).
"""

from __future__ import annotations

import logging
from typing import Any

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

#: Loggers whose records are bioqa's own.
OWN = ("bioqa", "__main__")


def _own(record: logging.LogRecord) -> bool:
    return record.name in OWN or record.name.startswith("bioqa.")


class LibraryLines(logging.Filter):
    """Keeps bioqa's records; another library's only at WARNING or above, the first time each message is seen."""

    def __init__(self, name: str = ""):
        super().__init__(name)
        self.seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if _own(record):
            return True
        if record.levelno < logging.WARNING:
            return False
        key = (record.name, _first_line(record.getMessage()))
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


class OneLineFormatter(logging.Formatter):
    """Hydra's console format; another library's record is cut to its first line (no traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        if _own(record):
            return super().format(record)
        message = _first_line(record.getMessage())
        if record.name == "py.warnings":  # "file.py:12: FutureWarning: text" → "FutureWarning: text"
            message = message.split(": ", 1)[-1] if ": " in message else message
        line = logging.LogRecord(record.name, record.levelno, record.pathname, record.lineno, message, None, None)
        line.created, line.msecs = record.created, record.msecs
        return super().format(line)


class RouteWarnings(Callback):
    """Python warnings become log records (``py.warnings``) while a Hydra job runs, and go where log records go."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        logging.captureWarnings(True)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        logging.captureWarnings(False)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
