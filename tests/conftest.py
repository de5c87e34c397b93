"""Shared fixtures: the BioASQ data beside the checkout (tests using it skip cleanly when it is absent), one torch
thread for the modules that run tiny models, and loopback HTTP servers answering JSON."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BIOQA_SHARED", ROOT.parent / "shared" / "bioasq"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared/bioasq`` (golden/, fewshot/, oracle/, corpus/); skips the test when absent."""
    if not (SHARED / "golden").is_dir():
        pytest.skip(f"BioASQ shared data not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="module")
def one_torch_thread():
    """The CPU is shared: tiny models run several times faster on one thread than on oversubscribed cores.

    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``; the count is restored after
    the module."""
    import torch  # here, so that collecting the modules that never touch torch does not import it

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


#: ``respond(path, JSON body, headers) -> (HTTP status, payload)`` or ``(status, payload, extra headers)``: what a
#: loopback server answers to a POST. A ``bytes`` payload is sent as it is (a broken server), anything else as JSON;
#: a responder that sleeps delays its answer (a hanging server).
Responder = Callable[[str, Any, Message], tuple[int, Any] | tuple[int, Any, dict[str, str]]]


class JSONServer(ThreadingHTTPServer):
    """Answers every POST (a JSON body) with ``respond``'s status, payload and headers."""

    def __init__(self, respond: Responder):
        self.respond = respond
        super().__init__(("127.0.0.1", 0), JSONHandler)


class JSONHandler(BaseHTTPRequestHandler):
    server: JSONServer

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status, payload, *extra = self.server.respond(self.path, body, self.headers)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up waiting (timeouts)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (extra[0] if extra else {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def json_server() -> Iterator[Callable[[Responder], str]]:
    """``json_server(respond)`` starts a real loopback HTTP server and returns its base URL
    (``http://127.0.0.1:PORT``); every server started is shut down after the test."""
    servers: list[JSONServer] = []

    def start(respond: Responder) -> str:
        server = JSONServer(respond)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
