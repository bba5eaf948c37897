"""Serve a trained student over HTTP with LitServe (`rdrec_hf.serving.server`; ``rdrec-hf serve``): ``POST
/predict`` in the Inference Endpoints request format, dynamic batching, ``GET /health``. Options: `ServeConfig`."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

from . import (CommandParser, UserError, check_device, check_positive, configure_logging, device_option, dtype_option,
               option)  # fmt: skip

SERVE_HOSTS = ("127.0.0.1", "0.0.0.0", "::")  # the addresses LitServe binds
DEFAULT_PORT = 8000


@dataclass
class ServeConfig:
    """The student served, where, and how requests are batched."""

    model_name_or_path: str = option(..., aliases=("--model",), help="A trained student folder or Hub model id.")
    dataset: str | None = option(
        None, help="Dataset whose users a request may name by user_id alone: a shared dataset by name, a project "
        "dataset folder or a Hub id (default: the model folder's "
        "user_histories.json, written by `rdrec-hf export model --dataset`).",
    )  # fmt: skip
    host: str = option("127.0.0.1", help="Address to serve on (0.0.0.0 to share on a network).",
                       choices=list(SERVE_HOSTS))  # fmt: skip
    port: int = option(DEFAULT_PORT, help="Port to serve on (1024 to 65535).")
    max_batch_size: int = option(
        32, help="Most concurrent requests answered together; next-item requests of the same k share one forward "
        "(1: no batching).",
    )  # fmt: skip
    batch_timeout: float = option(0.01, help="Seconds a batch waits to fill before it runs.")
    workers_per_device: int = option(1, help="Model copies (worker processes) per device.")
    max_body_bytes: int = option(1_000_000, help="Largest request body in bytes; a larger one gets HTTP 413.")
    request_timeout: float = option(60.0, help="Seconds a request may wait for a worker before HTTP 504.")
    device: str | None = device_option()
    dtype: str = dtype_option()

    def __post_init__(self):
        self.dtype = check_device(self.device, self.dtype)
        if not 1024 <= self.port <= 65535:
            raise ValueError(f"argument --port: must be from 1024 to 65535, got {self.port}")
        check_positive(self.max_batch_size, "--max_batch_size")
        check_positive(self.workers_per_device, "--workers_per_device")
        check_positive(self.max_body_bytes, "--max_body_bytes")
        if self.batch_timeout < 0:
            raise ValueError(f"argument --batch_timeout: must be at least 0, got {self.batch_timeout}")
        if self.request_timeout <= self.batch_timeout:
            raise ValueError("argument --request_timeout: must be longer than --batch_timeout")


def make_parser(prog: str | None = None) -> CommandParser:
    """The parser of this program's options."""
    return CommandParser(ServeConfig, prog=prog, description="Serve a trained student over HTTP (LitServe): POST "
                         "/predict takes the Inference Endpoints request, GET /health.")  # fmt: skip


def _interrupt_in(main_pid: int):
    """A SIGTERM handler: a KeyboardInterrupt in the main process (LitServe's graceful shutdown, as on Ctrl+C);
    the default action in the processes it forked (uvicorn re-raises the signal once it has shut down)."""

    def interrupt(signum, frame):
        if os.getpid() == main_pid:
            raise KeyboardInterrupt
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    return interrupt


def main(config: ServeConfig) -> int:
    from ..checkpoints import check_model_reference

    configure_logging(results_on_stdout=True)
    check_model_reference(config.model_name_or_path)
    if config.dataset is not None and not Path(config.dataset).exists() and "/" not in config.dataset:
        raise UserError(f"--dataset {config.dataset}: no such folder, and not a Hub id")
    try:
        from ..serving.server import build_server
    except ImportError as error:
        raise UserError(f"{error} (the server needs LitServe: pip install 'rdrec-hf[serve]')") from None
    server = build_server(
        config.model_name_or_path, config.dataset, config.device, config.dtype, config.max_batch_size,
        config.batch_timeout, config.workers_per_device, config.max_body_bytes, config.request_timeout,
    )  # fmt: skip
    print(f"serving {config.model_name_or_path} on http://{config.host}:{config.port}/predict", flush=True)
    signal.signal(signal.SIGTERM, _interrupt_in(os.getpid()))  # LitServe shuts its processes down on Ctrl+C only
    try:
        server.run(host=config.host, port=config.port, generate_client_file=False, num_api_servers=1,
                   log_level="warning")  # fmt: skip
    except RuntimeError as error:  # LitServe: "One or more workers failed to start" (the worker logged why)
        raise UserError(f"{config.model_name_or_path}: the server did not start ({error})") from None
    return 0
