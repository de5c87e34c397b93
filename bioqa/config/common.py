"""What the config schemas share: typed sections, value types, the one-line error, and file readers that name
the config key and the file in every error."""

from __future__ import annotations

import dataclasses
import glob
import inspect
import json
import os
import typing
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from bioqa.data import BioASQFormatError, Question, load_questions
from bioqa.errors import BioQAError, ConfigError, DataFileError, did_you_mean
from bioqa.parsing import joined, problems
from bioqa.prompts.config import PromptConfig, PromptSettings

#: A count of at least one (strict: ``abc``, ``1.5`` and ``true`` are refused, not converted).
Count = Annotated[int, Field(strict=True, ge=1)]
#: Zero or more.
NonNegative = Annotated[int, Field(strict=True, ge=0)]
Seed = Annotated[int, Field(strict=True)]
Flag = Annotated[bool, Field(strict=True)]


def _existing_file(value: str) -> str:
    path = Path(value)
    if path.is_dir():
        raise ValueError("is a directory, expected a file")
    if not path.is_file():
        raise ValueError("no such file")
    return value


#: A path that must name an existing file (not a directory).
ExistingFile = Annotated[str, AfterValidator(_existing_file)]


def _adapter_dir(value: str) -> str:
    if not (Path(value).expanduser() / "adapter_config.json").is_file():
        raise ValueError("not a PEFT adapter directory (no adapter_config.json)")
    return value


#: A directory holding a PEFT adapter (what ``train.py`` writes to ``<run>/adapter``).
AdapterDir = Annotated[str, AfterValidator(_adapter_dir)]


class Section(BaseModel):
    """A closed, frozen config node: the keys it declares are typed and checked, any other key (a typo, or a
    ``+key=...`` nothing reads) is refused, naming the closest known key (:func:`check_keys`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class OpenSection(Section):
    """A config node whose other keys are someone else's to check: the keyword arguments of a ``_target_`` it builds
    (its signature refuses unknown ones when built, before any weights load) or settings passed through verbatim
    (LiteLLM's ``extra_params``, the Lightning Trainer's arguments). Declared keys are still typed and checked."""

    model_config = ConfigDict(extra="allow", frozen=True)


def unread(description: str) -> Any:
    """A field whose key names are checked (:func:`check_keys`) but whose values are not read by the schema: other
    code checks them (``prompt``: :func:`check_prompt`), or they hold interpolations that resolve only inside a run
    (``${hydra:runtime.output_dir}``)."""
    return Field(None, description=description, json_schema_extra={"unread": True})


class Root(Section):
    """An entry point's whole config: closed, but ``hydra`` (present when composed with ``return_hydra_config``)
    is Hydra's to check."""

    hydra: OpenSection | None = unread("Hydra's own settings (Hydra checks them)")
    task_name: str


class Paths(Section):
    """``conf/paths``: where a run finds data and writes logs and caches."""

    root_dir: str | None = None
    shared_dir: str | None = None
    log_dir: str | None = None
    cache_dir: str | None = None
    output_dir: str | None = None


class Loggers(OpenSection):
    """``conf/logger``: one ``_target_`` node per experiment logger (named freely: wandb, csv) and ``log_texts``."""

    log_texts: Flag = False


#: ``conf/prompt``: shot count, selection, pool and every template, parsed whole.
PromptSection = PromptSettings


S = TypeVar("S", bound=BaseModel)


def validated(schema: type[S], cfg: DictConfig, prefix: str = "") -> S:
    """``cfg``'s keys that ``schema`` declares, resolved and checked, after refusing keys it does not know
    (:func:`check_keys`); every problem found (unknown keys, missing values, bad values) in one
    :class:`ConfigError`, one ``key=value: what is wrong (what is allowed)`` clause each. Cross-field rules
    (the schema's model validators) run once every field is valid."""
    found = key_problems(schema, cfg, prefix)
    values = {}
    present = list(cfg.keys())  # with the ``???`` ones (``name in cfg`` is False for those)
    for name, field in schema.model_fields.items():
        if name not in present or (field.json_schema_extra or {}).get("unread"):
            continue
        if OmegaConf.is_missing(cfg, name):
            example = field.examples[0] if field.examples else "..."
            hint = f" ({field.description})" if field.description else ""
            found.append(f"{prefix}{name} is missing: pass {prefix}{name}={example}{hint}")
            continue
        value = cfg[name]
        try:
            values[name] = (
                OmegaConf.to_container(value, resolve=True, throw_on_missing=True)
                if OmegaConf.is_config(value)
                else value
            )
        except MissingMandatoryValue as error:
            found.append(f"{error.full_key} is missing (???): pass {error.full_key}=...")
    try:
        checked = schema.model_validate(values)
    except ValidationError as error:
        found += [p for p in problems(error, schema, prefix) if not _reported(p, found)]
        checked = None
    if found or checked is None:
        raise ConfigError(joined(found))
    return checked


def _reported(problem: str, found: list[str]) -> bool:
    """A problem pydantic finds that was already reported in more words: a missing value (as ``???``), a key the
    schema does not declare (with the closest known key)."""
    return problem.endswith((" is missing", ": unknown config key")) and any(f.startswith(problem) for f in found)


def collect(*checks: Callable[[], Any]) -> list[Any]:
    """Run every check, then raise one :class:`ConfigError` naming every problem they raised (a single error is
    raised as it is); returns their results."""
    results, errors = [], []
    for check in checks:
        try:
            results.append(check())
        except BioQAError as error:
            errors.append(error)
            results.append(None)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ConfigError(joined([str(e) for e in errors]))
    return results


def check_keys(schema: type[BaseModel], cfg: Any, prefix: str = "") -> None:
    """Raise :func:`key_problems` as one :class:`ConfigError` line."""
    found = key_problems(schema, cfg, prefix)
    if found:
        raise ConfigError(joined(found))


def key_problems(schema: type[BaseModel], cfg: Any, prefix: str = "") -> list[str]:
    """Every key of ``cfg`` that closed ``schema`` (a :class:`Section`, not an :class:`OpenSection`) does not
    declare, in declared sub-sections too (their values unresolved): ``key: unknown config key (did you mean ...)``;
    and, in every node built from ``_target_`` wherever it sits, a key its target does not take
    (:func:`check_target_arguments`). Hydra refuses an unknown key on the command line; this refuses one added with
    ``+key=...`` or by a config file."""
    if not isinstance(cfg, DictConfig):
        return []
    found = target_problems(cfg, prefix)
    closed = schema.model_config.get("extra") == "forbid"
    for key in cfg:
        field = schema.model_fields.get(key)
        if field is None and closed:
            known = list(schema.model_fields)
            hint = did_you_mean(str(key), known, prefix)
            found.append(f"{prefix}{key}: unknown config key ({hint}known here: {', '.join(known)})")
            continue
        if OmegaConf.is_missing(cfg, key) or OmegaConf.is_interpolation(cfg, key):
            continue
        sections = _sections(field.annotation, Section) if field is not None else []
        for section in sections or [OpenSection]:  # a free node (extra key, dict field): only its _target_ nodes
            found += key_problems(section, cfg[key], f"{prefix}{key}.")
    return found


_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def unknown_arguments(
    keys: Iterable[str], callees: Sequence[Callable[..., Any]], what: str, prefix: str = "", list_known: bool = True
) -> list[str]:
    """Every key that none of ``callees`` takes as a parameter, unless the last of them takes ``**kwargs``
    (the others hand theirs on): ``<prefix><key>: not <what> (did you mean ...? known here: ...)``."""
    signatures = [inspect.signature(callee).parameters for callee in callees]
    if any(p.kind is p.VAR_KEYWORD for p in signatures[-1].values()):
        return []
    known = list(dict.fromkeys(n for ps in signatures for n, p in ps.items() if p.kind not in _VARIADIC))
    tail = f"known here: {', '.join(known)}" if list_known else "see its documentation"
    return [f"{prefix}{key}: not {what} ({did_you_mean(key, known, prefix)}{tail})" for key in keys if key not in known]


def target_problems(cfg: DictConfig, prefix: str = "") -> list[str]:
    """The keys of a node built from ``_target_`` that are not parameters of the target, unless it takes
    ``**kwargs``: ``+model.backend.batch_sise=4`` fails here, before anything is built. A target that hands its
    ``**kwargs`` on names the callables that take them in ``forwards_kwargs_to`` (dotted paths): their parameters
    count too. A target that cannot be imported is left to Hydra, which names it when it builds the node."""
    if "_target_" not in cfg or OmegaConf.is_interpolation(cfg, "_target_") or not isinstance(cfg._target_, str):
        return []
    try:
        built = get_object(cfg._target_)
        callees = [built, *(get_object(name) for name in getattr(built, "forwards_kwargs_to", ()))]
    except Exception:
        return []
    keys = [str(key) for key in cfg if not str(key).startswith("_")]  # _convert_, _partial_: Hydra's own
    return unknown_arguments(keys, callees, f"a parameter of {cfg._target_}", prefix)


def _sections(annotation: Any, kind: type[BaseModel]) -> list[type[BaseModel]]:
    """The ``kind`` subclasses in a field's annotation (``X``, ``X | None``)."""
    candidates = (annotation, *typing.get_args(annotation))
    return [c for c in candidates if isinstance(c, type) and issubclass(c, kind)]


def check_prompt(cfg_prompt: DictConfig, pool: str | None = None) -> PromptConfig:
    """The prompt settings (``pool`` overrides ``prompt.pool``), every key, value and template checked."""
    check_keys(PromptSection, cfg_prompt, "prompt.")
    prompt = PromptConfig.from_dict(OmegaConf.to_container(cfg_prompt, resolve=True))
    return prompt if pool is None else dataclasses.replace(prompt, pool=pool)


#: Values of HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE that turn downloads off (as huggingface_hub reads them).
_TRUE = ("1", "on", "yes", "true")


def downloads_off() -> bool:
    """Whether Hugging Face downloads are turned off (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)."""
    return any(os.environ.get(name, "").lower() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_weights(key: str, cfg: DictConfig) -> None:
    """The model weights named at ``key`` (a directory, or a Hugging Face hub id) can be loaded: with downloads off,
    a hub id must be in the local Hugging Face cache; otherwise one line names what to set, before minutes of
    loading end in transformers' "couldn't connect" traceback."""
    path = OmegaConf.select(cfg, key, default=None)
    if not isinstance(path, str) or Path(path).expanduser().exists() or not downloads_off():
        return
    from huggingface_hub import constants, try_to_load_from_cache

    gguf_file = OmegaConf.select(cfg, f"{key.rpartition('.')[0]}.gguf_file", default=None)
    try:
        cached = try_to_load_from_cache(path, gguf_file if isinstance(gguf_file, str) else "config.json")
    except ValueError:  # not a valid repo id either: a directory that does not exist
        raise DataFileError(f"{key}={path}: no such directory (expected the model's weights)") from None
    if not isinstance(cached, str):
        raise ConfigError(
            f"{key}={path}: the weights are not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and downloads "
            "are off (HF_HUB_OFFLINE=1): pass model.backend.model_path=DIR (a local copy), point HF_HOME at a cache "
            "that holds them, or allow downloads (HF_HUB_OFFLINE=0)"
        )


def check_file(key: str, path: str) -> str:
    """``path`` (the value of config ``key``) names an existing file."""
    try:
        return _existing_file(path)
    except ValueError as error:
        raise DataFileError(f"{key}={path}: {error}") from None


def expand_files(key: str, patterns: Sequence[str]) -> list[str]:
    """Files named by paths or glob patterns (sorted per pattern); a pattern matching nothing, a missing path or a
    directory is an error naming ``key``."""
    files = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise DataFileError(f"{key}: {pattern} matches no file")
        files += [check_file(key, match) for match in matches]
    return files


def read_text(key: str, path: str) -> str:
    """The UTF-8 text of the file ``path`` (config ``key``); empty or undecodable files are refused."""
    raw = Path(check_file(key, path)).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataFileError(f"{key}={path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    if not text.strip():
        raise DataFileError(f"{key}={path}: empty file")
    return text


def read_json_file(key: str, path: str) -> Any:
    """The parsed JSON of ``path`` (config ``key``); truncated, undecodable or too deeply nested files are refused."""
    text = read_text(key, path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataFileError(
            f"{key}={path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None
    except RecursionError:
        raise DataFileError(f"{key}={path}: JSON nested too deeply to read") from None


def read_bioasq_json(key: str, path: str) -> dict:
    """A BioASQ JSON file: an object holding a ``questions`` list (questions themselves are not checked)."""
    data = read_json_file(key, path)
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        found = type(data).__name__ if not isinstance(data, dict) else "an object without a 'questions' list"
        raise DataFileError(f'{key}={path}: expected a BioASQ JSON object {{"questions": [...]}}, got {found}')
    return data


def read_questions(key: str, path: str) -> list[Question]:
    """The questions of a golden file or test set, every field checked (:func:`bioqa.data.load_questions`)."""
    read_bioasq_json(key, path)
    try:
        return load_questions(path)
    except BioASQFormatError as error:
        raise DataFileError(f"{key}: {error}") from None
