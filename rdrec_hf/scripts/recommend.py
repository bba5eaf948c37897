"""Top-k items of a trained student for one user or history, or for every user of a dataset into a resumable
JSON-lines file (``rdrec-hf recommend``). Options: `RecommendConfig` (below)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..models.item_decoding import DEFAULT_NUM_BEAMS, DEFAULT_TOP_K, ItemDecoding
from . import (CommandParser, UserError, check_device, check_positive, configure_logging, device_option, dtype_option,
               option)  # fmt: skip


@dataclass
class RecommendConfig:
    """Which student, for whom, and how many items."""

    model_name_or_path: str = option(..., aliases=("--model",), help="A trained student folder or Hub id.")
    user: str | None = option(
        None, help="Project user id (its history is read from --dataset unless --history is given)."
    )
    history: list[str] | None = option(None, help="Item ids, oldest first.")
    dataset: str | None = option(None, help="The users' histories: a shared dataset by name (beauty, sports, "
                                 "all_beauty; numbered as train's default), a project dataset folder or a Hub id.")
    k: int = option(DEFAULT_TOP_K, aliases=("-k",), help="How many items.")
    num_beams: int = option(DEFAULT_NUM_BEAMS, help="Beams of the item search (raised to k when smaller).")
    explain: bool = option(False, help="Generate an explanation for every item.")
    json: bool = option(False, help="Print JSON instead of a table.")
    users: str | None = option(
        None, help="'all' or a file of user ids (one per line): rank every one of them from --dataset into --output, "
        "resuming an interrupted file.",
    )  # fmt: skip
    output: str | None = option(
        None, help="JSON-lines file of --users (one line per user: ids, original ids, scores)."
    )
    batch_size: int | None = option(None, help="Users per decoding call with --users (default: sized for the device).")
    device: str | None = device_option()
    dtype: str = dtype_option()
    decoding: ItemDecoding | None = option(
        None, help="beam (default for multi-token ids), exact (default for one-token ids) or transformers."
    )

    def __post_init__(self):
        check_positive(self.k, "--k/-k")
        check_positive(self.num_beams, "--num_beams")
        check_positive(self.batch_size, "--batch_size")
        self.dtype = check_device(self.device, self.dtype)
        self.decoding = None if self.decoding is None else ItemDecoding(self.decoding).value
        if self.users is not None:
            if self.user is not None or self.history or self.explain or self.json:
                raise ValueError("--users writes a file for many users; it takes no --user, --history, --explain "
                                 "or --json")  # fmt: skip
            if self.dataset is None or self.output is None:
                raise ValueError("--users needs --dataset (the users' histories) and --output (the JSON-lines file)")
        elif self.output is not None or self.batch_size is not None:
            raise ValueError("--output and --batch_size go with --users")
        elif self.user is None and not self.history:
            raise ValueError("nothing to recommend from: give --user (with --dataset) or --history")
        elif self.user is not None and not self.history and self.dataset is None:
            raise ValueError("--user without --history needs --dataset to look the user's history up")


def make_parser(prog: str | None = None) -> CommandParser:
    """The parser of this program's options."""
    return CommandParser(RecommendConfig, prog=prog, description="Top-k items of a trained student for a user id "
                         "and/or a history, or for every user of a dataset (--users).")  # fmt: skip


def load_student(path: str, device: str | None = None, dtype: str | None = None):
    """(model, tokenizer) of a trained student folder (full or LoRA) on ``device`` in ``dtype``; another model
    type is a user error."""
    from ..checkpoints import load_trained_student

    try:
        return load_trained_student(path, device, dtype)
    except OSError as error:
        raise UserError(f"{path}: not a model checkpoint ({error})") from None


def load_dataset_for(model, config: RecommendConfig):
    """``--dataset`` (`load_named_or_saved`), refused when its numbering is not the model's (ids would name other
    items)."""
    from ..data import check_numbering
    from ..data.loading import load_named_or_saved

    data = load_named_or_saved(config.dataset)
    check_numbering(getattr(model, "item_index", None), data, f"model {config.model_name_or_path}",
                    f"dataset {config.dataset}")  # fmt: skip
    return data


def recommend_users(config: RecommendConfig, model, tokenizer, state=None) -> int:
    """`--users all|FILE`: every listed user of `--dataset`, one JSON line each in `--output` (resumable); under
    ``accelerate launch --num_processes N`` (``state``: its ``PartialState``) the users are split between the
    processes and their shards merged into the file one process would write."""
    from ..serving.batch import write_recommendations, write_recommendations_sharded

    path = None if config.users == "all" else Path(config.users)
    if path is not None and not path.is_file():
        raise UserError(f"--users {config.users}: neither 'all' nor a file of user ids (one per line)")
    users = load_dataset_for(model, config)["users"]
    history_of = dict(zip(users["user_id"], users["items"]))
    if path is None:
        wanted = list(history_of)
    else:
        wanted = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        unknown = [user for user in wanted if user not in history_of]
        if unknown:
            raise UserError(f"{len(unknown)} user ids of {path} are not in {config.dataset}, e.g. {unknown[:5]}")
    options = dict(k=config.k, num_beams=max(config.num_beams, config.k), batch_size=config.batch_size,
                   decoding=config.decoding)  # fmt: skip
    users_to_rank = [(user, history_of[user]) for user in wanted]
    if state is not None and state.num_processes > 1:
        summary = write_recommendations_sharded(model, tokenizer, users_to_rank, config.output, state=state, **options)
        if not state.is_main_process:
            return 0
    else:
        summary = write_recommendations(model, tokenizer, users_to_rank, config.output, **options)
    print(f"{config.output}: {summary}")
    return 0


def main(config: RecommendConfig) -> int:
    from ..models.recommending import recommend

    configure_logging(results_on_stdout=True)
    if config.users is not None:
        import torch
        from accelerate import PartialState

        # one process unless under `accelerate launch --num_processes N`; CPU processes talk over gloo
        state = PartialState(cpu=config.device == "cpu" or (config.device is None and not torch.cuda.is_available()))
        device = state.device if config.device is None and state.num_processes > 1 else config.device
        model, tokenizer = load_student(config.model_name_or_path, device, config.dtype)
        return recommend_users(config, model, tokenizer, state)
    model, tokenizer = load_student(config.model_name_or_path, config.device, config.dtype)
    history = list(config.history or [])
    if not history:
        users = load_dataset_for(model, config)["users"]
        matches = users.filter(lambda row: row["user_id"] == config.user)
        if matches.num_rows == 0:
            raise UserError(f"unknown user id {config.user!r} in {config.dataset}")
        history = matches[0]["items"]
    recommendations = recommend(
        model, tokenizer, history, user_id=config.user, k=config.k, num_beams=max(config.num_beams, config.k),
        explain=config.explain, decoding=config.decoding,
    )  # fmt: skip
    if config.json:
        print(json.dumps([vars(r) for r in recommendations], indent=2))
        return 0
    who = f"user {config.user}" if config.user is not None else "an anonymous user"
    if not recommendations:
        print(f"nothing to recommend for {who}: the history holds all {len(model.item_index)} catalog items")
        return 0
    print(f"top {len(recommendations)} for {who} (history: {len(history)} items, last: {' '.join(history[-5:])})")
    for rank, rec in enumerate(recommendations, 1):
        line = f"{rank:>3}. item {rec.item_id:<8} ({rec.original_id})  log-likelihood {rec.score:.3f}"
        print(line + (f"\n       {rec.explanation}" if rec.explanation else ""))
    if len(recommendations) < config.k:
        print(f"only {len(recommendations)} valid catalog items remained outside the history")
    return 0
