"""The one line a user sees for an error raised while Hydra builds a config node (``_target_``): a value or an
argument the target refuses, or a target that cannot be imported; a bug inside a target keeps its traceback."""

from __future__ import annotations

import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from bioqa.errors import ConfigError, describe


class Built:
    """A target with one checked argument."""

    def __init__(self, size: int = 1, path: str | None = None) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if path is not None:
            open(path).close()  # an OS error naming the file
        if size == 13:
            raise ConfigError("size=13: unlucky (choose another)")
        if size == 99:
            raise KeyError("a bug inside the target")
        if size == 7:  # what transformers raises for hub weights it cannot fetch
            raise OSError("We couldn't connect to 'https://huggingface.co' to load the files.\nCheck your connection.")


TARGET = f"{__name__}.Built"


@pytest.mark.parametrize(
    ("node", "line"),
    [
        ({"size": 0}, "model.backend: size must be >= 1, got 0"),
        ({"siz": 2}, "model.backend: Built.__init__() got an unexpected keyword argument 'siz'"),
        ({"size": 13}, "model.backend: size=13: unlucky (choose another)"),
        ({"path": "/nonexistent/x.json"}, "model.backend: /nonexistent/x.json: no such file or directory"),
        ({"_target_": "bioqa.models.nope.X"}, "model.backend._target_=bioqa.models.nope.X: cannot be imported ("),
        ({"size": 7}, "model.backend: We couldn't connect to 'https://huggingface.co' to load the files."),
        ({"size": 99}, None),  # a programming error: no one-line summary, the traceback stays
    ],
    ids=["value", "unknown argument", "bioqa error", "missing file", "unimportable target", "os error", "bug"],
)
def test_an_object_hydra_cannot_build_is_one_line(node, line):
    config = {"model": {"backend": {"_target_": TARGET, **node}}}
    with pytest.raises(InstantiationException) as raised:
        instantiate(config)
    message = describe(raised.value)
    if line is None:
        assert message is None
    else:
        assert message is not None and message.startswith(line), message
        assert "\n" not in message


@pytest.mark.parametrize(
    ("trainer", "line"),
    [
        ({"max_steps": -5}, "trainer: `max_steps` must be a non-negative integer or -1 (infinite steps)."),
        ({"accelerator": "tpu-pod"}, "trainer: You selected an invalid accelerator name: `accelerator='tpu-pod'`."),
    ],
)
def test_a_trainer_value_lightning_refuses_is_one_line(trainer, line):
    from bioqa.training.recipe import lightning_trainer

    with pytest.raises(ConfigError) as raised:
        lightning_trainer(logger=False, enable_progress_bar=False, enable_checkpointing=False, **trainer)
    message = describe(raised.value)
    assert message is not None and message.startswith(line) and "\n" not in message
