"""A persistent Wikipedia cache (SQLite): introductions keyed by language + normalised title, with redirects
and misses recorded, and the titles an offline run wanted but lacked (for :func:`prefetch`); whole page texts
(``full=True``: ``retrieval.wikipedia.style=paper``) beside them in tables of the same shape, ``full_pages`` and
``full_wanted``.

Tables: ``pages(language, key, title, text, missing, fetched_at)`` — ``key`` is the requested title normalised
as MediaWiki does (underscores as spaces, runs of spaces collapsed, first letter upper-case); ``title`` is the
page it resolved to (a redirect when its own key differs); ``missing`` marks titles Wikipedia does not have.
``wanted(language, key, title, wanted_at)`` lists what offline runs asked for and did not find.
Transient failures (HTTP errors, timeouts) are never cached.
"""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bioqa.errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pages (
    language TEXT NOT NULL, key TEXT NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL,
    missing INTEGER NOT NULL, fetched_at TEXT NOT NULL, PRIMARY KEY (language, key));
CREATE TABLE IF NOT EXISTS wanted (
    language TEXT NOT NULL, key TEXT NOT NULL, title TEXT NOT NULL, wanted_at TEXT NOT NULL,
    PRIMARY KEY (language, key));
"""
_SCHEMA += _SCHEMA.replace("EXISTS pages", "EXISTS full_pages").replace("EXISTS wanted", "EXISTS full_wanted")


def _tables(full: bool) -> tuple[str, str]:
    """The (pages, wanted) tables of introductions or (``full``) whole texts."""
    return ("full_pages", "full_wanted") if full else ("pages", "wanted")


def normalise_title(title: str) -> str:
    """MediaWiki's title normalisation: ``"aspirin_ (drug)"`` → ``"Aspirin (drug)"``."""
    title = re.sub(r"[\s_]+", " ", title).strip()
    return title[:1].upper() + title[1:]


@dataclass(frozen=True)
class CachedPage:
    """A cache row: the resolved ``title`` (``redirected`` when it differs from the request), its text, or a miss."""

    requested: str
    title: str
    text: str
    missing: bool

    @property
    def redirected(self) -> bool:
        return normalise_title(self.requested) != normalise_title(self.title)


class WikipediaCache:
    """The SQLite file at ``path`` (created with its directory when absent)."""

    def __init__(self, path: str | os.PathLike, create: bool = True):
        self.path = Path(path)
        if self.path.is_dir():
            raise IsADirectoryError(21, "is a directory", str(self.path))
        if not create and not self.path.is_file():
            raise ConfigError(
                f"{self.path}: no Wikipedia cache here (offline runs need one; see bioqa.retrieval.wikipedia)"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:
            raise ConfigError(f"{self.path}: not a Wikipedia cache (SQLite says: {err})") from None

    def get(self, language: str, title: str, full: bool = False) -> CachedPage | None:
        pages, _ = _tables(full)
        row = self._db.execute(
            f"SELECT title, text, missing FROM {pages} WHERE language = ? AND key = ?",
            (language, normalise_title(title)),
        ).fetchone()
        return CachedPage(title, row[0], row[1], bool(row[2])) if row else None

    def put(self, language: str, requested: str, title: str | None, text: str, full: bool = False) -> CachedPage:
        """Record a fetched page (``title`` = where it resolved) or, with ``title=None``, a miss."""
        pages, wanted = _tables(full)
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        page = CachedPage(requested, title or requested, text if title else "", title is None)
        rows = [(language, normalise_title(requested), page.title, page.text, int(page.missing), now)]
        if page.redirected:
            rows.append((language, normalise_title(page.title), page.title, page.text, 0, now))
        with self._db:
            self._db.executemany(f"INSERT OR REPLACE INTO {pages} VALUES (?, ?, ?, ?, ?, ?)", rows)
            self._db.executemany(
                f"DELETE FROM {wanted} WHERE language = ? AND key = ?", [(language, row[1]) for row in rows]
            )
        return page

    def want(self, language: str, title: str, full: bool = False) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._db.execute(
            f"INSERT OR IGNORE INTO {_tables(full)[1]} VALUES (?, ?, ?, ?)",
            (language, normalise_title(title), title, now),
        )

    def wanted(self, language: str, full: bool = False) -> list[str]:
        rows = self._db.execute(
            f"SELECT title FROM {_tables(full)[1]} WHERE language = ? ORDER BY wanted_at, key", (language,)
        )
        return [r[0] for r in rows]

    def counts(self, language: str, full: bool = False) -> dict[str, int]:
        pages, missing, redirects = self._db.execute(
            f"SELECT COUNT(*), SUM(missing), SUM(key != title) FROM {_tables(full)[0]} WHERE language = ?",
            (language,),
        ).fetchone()
        return {
            "pages": pages,
            "missing": missing or 0,
            "redirects": redirects or 0,
            "wanted": len(self.wanted(language, full)),
        }

    def close(self) -> None:
        self._db.close()
