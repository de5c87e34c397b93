"""Serve a local model (or a base model + PEFT adapter) over an OpenAI-compatible API with ``transformers serve``.

``transformers serve`` loads a local model directory but not a PEFT adapter, and (in transformers 5.24) not a local
GGUF file either (it cannot tell the architecture): both are first exported to a plain directory of their own.

    python -m bioqa.models.serve --model-path /models/mixtral --adapter logs/train/.../adapter --port 8000
    # then, e.g.: model=openai//tmp/bioqa-merged-xyz api_base=http://127.0.0.1:8000/v1
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx


def model_spec(model_path: str | Path, gguf_file: str | None = None) -> str:
    """The model name ``transformers serve`` loads, and the name clients must request (``openai/<spec>``)."""
    path = str(Path(model_path).expanduser().resolve())
    return f"{path}:{gguf_file}" if gguf_file else path


def export_model(
    model_path: str | Path, out_dir: str | Path, gguf_file: str | None = None, adapter: str | Path | None = None
) -> Path:
    """Save a model as a plain transformers directory ``transformers serve`` can load: a GGUF file dequantised
    (transformers 5.24's server cannot tell a GGUF model's architecture) and/or a PEFT adapter merged in."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(model_path), gguf_file=gguf_file, dtype="auto")
    tokenizer = AutoTokenizer.from_pretrained(str(model_path), gguf_file=gguf_file)
    if gguf_file is not None:
        # Dequantised on load, yet still flagged "quantised with gguf" (which refuses to save): drop the flag.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            delattr(model.config, "quantization_config")
    model.config.architectures = [type(model).__name__]  # what the server looks the class up by
    if adapter is not None:
        from bioqa.models.adapters import load_adapter, merge_and_save

        return merge_and_save(load_adapter(model, adapter), out_dir, tokenizer)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def servable_model(
    model_path: str | Path,
    gguf_file: str | None = None,
    adapter: str | Path | None = None,
    work_dir: str | Path | None = None,
) -> str:
    """The :func:`model_spec` to serve: the directory itself, or an export of it (GGUF / adapter) in ``work_dir``
    (default: a new temporary directory)."""
    if gguf_file is None and adapter is None:
        return model_spec(model_path)
    out_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="bioqa-served-"))
    return model_spec(export_model(model_path, out_dir, gguf_file, adapter))


def serve_command(
    model: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    device: str = "auto",
    dtype: str = "auto",
    quantization: str | None = None,
    continuous_batching: bool = False,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The ``transformers serve`` command pinned to ``model`` (a :func:`model_spec`)."""
    # The interpreter running bioqa runs the CLI too: no reliance on an activated environment's PATH.
    cli = [sys.executable, "-c", "import sys; from transformers.cli.transformers import main; sys.exit(main())"]
    command = [*cli, "serve", model, "--host", host, "--port", str(port)]
    command += ["--device", device, "--dtype", dtype]
    if quantization:
        command += ["--quantization", quantization]  # "bnb-4bit" or "bnb-8bit"
    if continuous_batching:
        command.append("--continuous-batching")
    return command + list(extra_args)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class ServedModel:
    """``transformers serve`` as a child process; ``with ServedModel(spec) as server:`` waits until it answers
    ``/health`` (at most ``startup_timeout_s``) and stops it on exit. ``server.api_base`` ends in ``/v1``.
    ``env`` adds environment variables for the server (e.g. ``OMP_NUM_THREADS``); it runs with HF_HUB_OFFLINE=1
    unless the environment says otherwise."""

    def __init__(
        self,
        model: str,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout_s: float = 120.0,
        log_path: str | Path | None = None,
        env: dict[str, str] | None = None,
        **command_options,
    ):
        self.model = model
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout_s = startup_timeout_s
        self.command = serve_command(model, host=host, port=self.port, **command_options)
        self._own_log = log_path is None  # a temporary log, removed on stop (its tail is in any startup error)
        self.log_path = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="transformers-serve-")[1])
        self.env = {"HF_HUB_OFFLINE": "1", **os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None

    @property
    def api_base(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> ServedModel:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self._log_tail()
                self.stop()
                raise RuntimeError(f"transformers serve exited ({self.process.returncode}): {tail}")
            try:
                if httpx.get(f"http://{self.host}:{self.port}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        tail = self._log_tail()
        self.stop()
        raise TimeoutError(f"transformers serve not ready after {self.startup_timeout_s}s: {tail}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._own_log:
            self.log_path.unlink(missing_ok=True)

    def _log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def __enter__(self) -> ServedModel:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", required=True, help="model directory (or the directory of --gguf-file)")
    parser.add_argument("--gguf-file", help="GGUF file name inside --model-path")
    parser.add_argument("--adapter", help="PEFT adapter directory to merge into the model before serving")
    parser.add_argument("--export-dir", help="where to export a GGUF / merged model (default: a new temporary dir)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--quantization", choices=["bnb-4bit", "bnb-8bit"])
    parser.add_argument("--print", action="store_true", help="print the command instead of running it")
    args = parser.parse_args(argv)
    model = servable_model(args.model_path, args.gguf_file, args.adapter, args.export_dir)
    command = serve_command(model, args.host, args.port, args.device, args.dtype, args.quantization)
    print(f"serving {model} at http://{args.host}:{args.port}/v1 (LiteLLM model name: openai/{model})", file=sys.stderr)
    if args.print:
        print(" ".join(command))
    else:
        os.execvp(command[0], command)


if __name__ == "__main__":
    main()
