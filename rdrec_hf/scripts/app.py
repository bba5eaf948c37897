"""Open the Gradio page (`rdrec_hf.serving.app`) on a trained student (``rdrec-hf app``). Options: `AppConfig`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..evaluation.baselines import DEFAULT_BASELINES, Baseline
from . import CommandParser, UserError, check_device, configure_logging, device_option, dtype_option, option


@dataclass
class AppConfig:
    """The student the page opens, its users, and where it is served."""

    model_name_or_path: str = option(..., aliases=("--model",), help="A trained student folder or Hub model id.")
    dataset: str | None = option(
        None, help="The project dataset of its users (folder or Hub id): user picker, history, popularity and the "
        "teacher's rationales.",
    )  # fmt: skip
    host: str = option("127.0.0.1", help="Address to serve on (0.0.0.0 to share on a network).")
    port: int = option(7860, help="Port to serve on.")
    seed: int = option(0, help="Seed of the random-user button and candidate samples.")
    baselines: list[str] = option(
        [baseline.value for baseline in DEFAULT_BASELINES], choices=[baseline.value for baseline in Baseline],
        help="Baselines shown beside the model for the same user (with --dataset; sasrec trains at start-up).",
    )  # fmt: skip
    device: str | None = device_option()
    dtype: str = dtype_option()

    def __post_init__(self):
        self.dtype = check_device(self.device, self.dtype)
        if not 0 <= self.port <= 65535:
            raise ValueError(f"argument --port: not a TCP port, got {self.port}")
        self.baselines = [Baseline.parse(baseline).value for baseline in self.baselines]
        if len(set(self.baselines)) != len(self.baselines):
            raise ValueError(f"argument --baselines: a baseline is listed twice in {self.baselines}")


def make_parser(prog: str | None = None) -> CommandParser:
    """The parser of this program's options."""
    return CommandParser(AppConfig, prog=prog, description="Open a Gradio page on a trained student.")


def main(config: AppConfig) -> int:
    configure_logging(results_on_stdout=True)
    if config.dataset is not None and not Path(config.dataset).exists() and "/" not in config.dataset:
        raise UserError(f"--dataset {config.dataset}: no such folder, and not a Hub id")
    try:
        from ..serving.app import CSS, build_app

        started = time.perf_counter()
        app = build_app(config.model_name_or_path, config.dataset, config.seed, config.device, config.dtype,
                        config.baselines)  # fmt: skip
    except ImportError as error:
        raise UserError(f"{error} (the app needs Gradio: pip install 'rdrec-hf[app]')") from None
    print(f"app ready in {time.perf_counter() - started:.1f} s: http://{config.host}:{config.port}", flush=True)
    app.launch(server_name=config.host, server_port=config.port, css=CSS)
    return 0
