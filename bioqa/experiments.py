"""What a sweep will run, before it runs: ``python -m bioqa.experiments EXPERIMENT [override ...]``.

Expands ``conf/experiment/EXPERIMENT.yaml`` (its ``hydra.sweeper.params`` plus the command line's overrides) into
the jobs ``python infer.py -m experiment=EXPERIMENT ...`` would start, composes each job's config, checks it with the
very function ``infer.py`` runs before building a model (:func:`bioqa.pipeline.app.plan_run`: values, questions
file, question selection, snippets, few-shot pool), builds its model backend without calling it, and prints one row
per job: what it runs and whether it can. What cannot be known without running is said, not promised: an API key
that is present is "key present, not verified"; online Wikipedia context "needs network". Exit code 0 when every
job can run, 2 otherwise.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from bioqa.cli import describe_hydra
from bioqa.errors import EXIT_USAGE, ConfigError, describe
from bioqa.runs import register_resolvers

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


@dataclass
class Job:
    """One combination of a sweep: its overrides, its composed config, and why it cannot run (``None``: it can)."""

    overrides: list[str]
    config: DictConfig | None
    problem: str | None
    notes: tuple[str, ...] = ()  # what a ready job still depends on (a key not verified, the network)

    @property
    def ready(self) -> bool:
        return self.problem is None


def experiment_names() -> list[str]:
    """The experiments in ``conf/experiment/``."""
    return sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def job_overrides(experiment: str, overrides: Sequence[str] = ()) -> list[list[str]]:
    """The override list of every job of ``experiment``, as Hydra's basic sweeper expands them: the experiment's
    ``hydra.sweeper.params`` with the command line's overrides taking precedence, cartesian product in order."""
    if experiment not in experiment_names():
        raise ConfigError(f"experiment={experiment}: no such experiment; choose one of {', '.join(experiment_names())}")
    register_resolvers()
    parser = OverridesParser.create()
    fixed_only = [o.input_line for o in parser.parse_overrides(list(overrides)) if not o.is_sweep_override()]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        hydra_cfg = compose("infer", overrides=[f"experiment={experiment}", *fixed_only], return_hydra_config=True)
    params = OmegaConf.to_container(hydra_cfg.hydra.sweeper.params or {}, resolve=False)
    merged: dict[str, list[str]] = {}
    for key, values in params.items():
        override = parser.parse_override(f"{key}={values}")
        merged[key] = list(override.sweep_string_iterator()) if override.is_sweep_override() else [str(values)]
    fixed = []
    for override in parser.parse_overrides(list(overrides)):
        if override.is_sweep_override():
            merged[override.get_key_element()] = list(override.sweep_string_iterator())
        elif override.get_key_element() in merged:
            merged[override.get_key_element()] = [override.get_value_element_as_str()]
        else:
            fixed.append(override.input_line)
    keys = list(merged)
    return [
        [f"experiment={experiment}", *fixed, *(f"{k}={v}" for k, v in zip(keys, combo, strict=True))]
        for combo in itertools.product(*(merged[k] for k in keys))
    ]


def compose_job(overrides: Sequence[str]) -> DictConfig:
    """The resolved config of one ``infer.py`` job (Hydra's own keys set as a run would set them)."""
    from hydra.core.hydra_config import HydraConfig

    register_resolvers()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "infer", overrides=[*overrides, f"hydra.runtime.output_dir={Path.cwd()}"], return_hydra_config=True
        )
    HydraConfig.instance().set_config(cfg)
    job = OmegaConf.create({k: v for k, v in OmegaConf.to_container(cfg).items() if k != "hydra"})
    OmegaConf.resolve(job)
    return job


def plan_jobs(experiment: str, overrides: Sequence[str] = ()) -> list[Job]:
    """Compose and check every job of ``experiment`` as ``infer.py`` will, and build its backend (no model call,
    no weights loaded, nothing downloaded: a model that is not on disk is reported as such)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from bioqa.models.registry import build_backend

    jobs, backends = [], {}
    for job in job_overrides(experiment, overrides):
        try:
            cfg = compose_job(job)
        except Exception as error:  # a bad override: the job cannot run
            jobs.append(Job(job, None, describe_hydra(error) or f"{type(error).__name__}: {error}"))
            continue
        problem = _check_problem(cfg)
        if problem is not None:
            jobs.append(Job(job, cfg, problem))
            continue
        key = OmegaConf.to_yaml(cfg.model, resolve=False)
        if key not in backends:
            try:
                backend = build_backend(cfg.model)
                backends[key] = (None, _backend_notes(backend))
                backend.close()
            except Exception as error:  # hydra wraps what the constructor raised
                cause = error.__cause__ or error
                backends[key] = (describe(cause) or f"{type(cause).__name__}: {cause}", ())
        problem, notes = backends[key]
        jobs.append(Job(job, cfg, problem, (*notes, *_wikipedia_notes(cfg)) if problem is None else ()))
    return jobs


def _check_problem(cfg: DictConfig) -> str | None:
    """Why ``infer.py`` would refuse this config before building its model (``None``: it would not)."""
    if cfg.task.name == "ensemble":
        return None
    from bioqa.pipeline.app import plan_run

    try:
        plan_run(cfg)
    except Exception as error:
        cause = error.__cause__ or error
        return describe(cause) or f"{type(cause).__name__}: {cause}"
    return None


def _backend_notes(backend: Any) -> tuple[str, ...]:
    """What a built API backend still depends on: the key (present, never sent here) or the local server."""
    if getattr(backend, "kind", None) != "litellm":
        return ()
    if backend.api_base is not None:
        return (f"needs the server at {backend.api_base}",)
    return ("key present, not verified",)


def _wikipedia_notes(cfg: DictConfig) -> tuple[str, ...]:
    """Online Wikipedia context needs the network (an offline one reads its cache only)."""
    wiki = OmegaConf.select(cfg, "retrieval.wikipedia", default=None)
    if not wiki or not wiki.get("max_articles"):
        return ()
    return ("Wikipedia offline: cache only",) if wiki.get("offline") else ("needs network (Wikipedia)",)


def describe_job(job: Job) -> dict[str, Any]:
    """The row the plan prints for ``job``."""
    cfg = job.config
    pick = (lambda key: OmegaConf.select(cfg, key, default="?", throw_on_resolution_failure=False)) if cfg else None
    return {
        "model": pick("model.name") if pick else "?",
        "shots": pick("prompt.n_shots") if pick else "?",
        "task": pick("task.name") if pick else "?",
        "retrieval": _retrieval_name(cfg) if cfg else "?",
        "batch": Path(str(pick("data.golden"))).name if pick else "?",
        "ready": (f"yes ({'; '.join(job.notes)})" if job.notes else "yes") if job.ready else f"no: {job.problem}",
    }


def _retrieval_name(cfg: DictConfig) -> str:
    wiki = OmegaConf.select(cfg, "retrieval.wikipedia.max_articles", default=0)
    index = OmegaConf.select(cfg, "retrieval.index._target_", default=None)
    parts = [index.rsplit(".", 1)[-1] if index else "golden snippets"]
    return " + ".join([*parts, f"wikipedia×{wiki}"] if wiki else parts)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = (
        f"usage: python -m bioqa.experiments EXPERIMENT [override ...]; experiments: {', '.join(experiment_names())}"
    )
    if argv[:1] in (["-h"], ["--help"]):
        print(usage)
        return 0
    if not argv or argv[0].startswith("-"):
        given = f"{argv[0]}: not an experiment" if argv else "no experiment given"
        print(f"bioqa.experiments: error: {given} ({usage})", file=sys.stderr)
        return EXIT_USAGE
    try:
        jobs = plan_jobs(argv[0], argv[1:])
    except Exception as error:
        message = describe(error) or describe_hydra(error)  # composing the experiment is Hydra's work here
        if message is None:
            raise
        print(f"bioqa.experiments: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"experiment={argv[0]}: {len(jobs)} jobs")
    for column in ("#", "model", "shots", "task", "retrieval", "batch", "ready"):
        table.add_column(column)
    for number, job in enumerate(jobs):
        table.add_row(str(number), *(str(v) for v in describe_job(job).values()))
    Console(width=200).print(table)
    blocked = sum(not job.ready for job in jobs)
    print(f"{len(jobs) - blocked} of {len(jobs)} jobs can run", file=sys.stderr)
    return 0 if not blocked else EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
