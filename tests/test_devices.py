"""A device and a dtype on every path: the option parsers alone, checkpoints across dtypes, bf16 against float32
on trained tiny students (exact ranking and the trie search), a bf16 training run on the CPU, and bad options
through the CLI's main() (one message, a non-zero exit, no traceback)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors import safe_open
from helpers import memorised_model

from rdrec_hf import devices
from rdrec_hf.checkpoints import load_trained_student
from rdrec_hf.cli import EXIT_USER_ERROR, main
from rdrec_hf.data import load_rec_dataset
from rdrec_hf.devices import check_dtype_supported, default_batch_size, resolve_device, resolve_dtype
from rdrec_hf.serving.batch import recommend_users
from rdrec_hf.models import ItemIndex

CPU = torch.device("cpu")
HAS_CUDA = torch.cuda.is_available()
DEVICES = ["cpu", "cuda"] if HAS_CUDA else ["cpu"]  # the GPU paths run where there is one
# A GPU this machine does not have: cuda on a CPU-only machine, one index past the last GPU otherwise.
MISSING_GPU = f"cuda:{torch.cuda.device_count()}" if HAS_CUDA else "cuda"


# ------------------------------------------------------------------------------------- the parsers alone
def test_resolve_device_defaults_to_cuda_when_available_and_refuses_what_is_missing():
    assert resolve_device(None) == resolve_device("auto") == torch.device("cuda" if HAS_CUDA else "cpu")
    assert resolve_device("cpu") == resolve_device(CPU) == CPU
    for unknown in ("gpu", "mps", "", "cuda:x"):
        with pytest.raises(ValueError, match="unknown device .*: cpu, cuda or cuda:N"):
            resolve_device(unknown)
    with pytest.raises(ValueError, match="CUDA GPU"):
        resolve_device(MISSING_GPU)


def test_resolve_dtype_names_and_refusals():
    assert resolve_dtype(None) is resolve_dtype("auto") is None
    assert resolve_dtype("bfloat16") is resolve_dtype(torch.bfloat16) is torch.bfloat16
    assert (resolve_dtype("float32"), resolve_dtype("float16")) == (torch.float32, torch.float16)
    for unknown in ("float8", "fp16", "bf16", torch.int8):
        with pytest.raises(ValueError, match="unknown dtype .*auto, float32, bfloat16, float16"):
            resolve_dtype(unknown)


def test_this_cpu_computes_in_bf16_and_fp16_and_batches_grow_on_a_gpu():
    for dtype in (torch.float32, torch.bfloat16, torch.float16):  # the probe runs a real matrix product
        check_dtype_supported(dtype, CPU)
    assert default_batch_size(CPU) < default_batch_size("cuda")


# ---------------------------------------------------------------------------- checkpoints across dtypes
def test_a_checkpoint_saved_in_bf16_loads_in_float32_and_the_reverse(trained_student, tmp_path):
    model_dir, _ = trained_student
    full, tokenizer = load_trained_student(str(model_dir), "cpu", "auto")  # saved in float32
    assert full.dtype == torch.float32 and full.device == CPU
    assert load_trained_student(str(model_dir))[0].device.type == resolve_device(None).type  # a GPU when there is one
    half, _ = load_trained_student(str(model_dir), "cpu", "bfloat16")
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    for (name, p32), p16 in zip(full.named_parameters(), half.parameters()):
        assert torch.equal(p16, p32.to(torch.bfloat16)), name
    half.save_pretrained(tmp_path / "bf16")
    tokenizer.save_pretrained(tmp_path / "bf16")
    with safe_open(str(tmp_path / "bf16" / "model.safetensors"), "pt") as weights:
        assert {weights.get_slice(key).get_dtype() for key in weights.keys()} == {"BF16"}
    auto, _ = load_trained_student(str(tmp_path / "bf16"), "cpu", None)
    assert auto.dtype == torch.bfloat16 and auto.item_index is not None
    back, _ = load_trained_student(str(tmp_path / "bf16"), "cpu", "float32")
    assert {p.dtype for p in back.parameters()} == {torch.float32}
    for (name, p16), p32 in zip(half.named_parameters(), back.parameters()):
        assert torch.equal(p32, p16.float()), name


# ---------------------------------------------------------------------------------- bf16 against float32
TOP_K = 10
# The tolerance of bf16 (8 bits of mantissa) against float32: near-tied items may swap places, or the 10th item
# swap out. Measured: the same item's log-likelihood moves by up to .016 (one-token ids, scores near -8.5) and
# .062 (ids of up to 3 tokens, each step rounded); top-10 overlap 9 or 10.
MIN_OVERLAP = 9  # of the top 10
SCORE_TOLERANCE = 0.1  # log-likelihood of the same item


def assert_ranks_alike(full: list[tuple[list, list]], half: list[tuple[list, list]], what: str) -> None:
    """Per user (``(items, scores)`` best first, float32 then bf16): at least MIN_OVERLAP of the top TOP_K items in
    common, their scores within SCORE_TOLERANCE, and the same top item unless float32's top two are a near tie."""
    for user, ((ours, our_scores), (theirs, their_scores)) in enumerate(zip(full, half)):
        context = (what, user, ours, our_scores, theirs, their_scores)
        assert len(set(ours[:TOP_K]) & set(theirs[:TOP_K])) >= MIN_OVERLAP, context
        their_score = dict(zip(theirs, their_scores))
        assert all(abs(their_score[item] - score) <= SCORE_TOLERANCE
                   for item, score in zip(ours, our_scores) if item in their_score), context  # fmt: skip
        if ours[0] != theirs[0]:
            assert our_scores[0] - dict(zip(ours, our_scores)).get(theirs[0], float("-inf")) < SCORE_TOLERANCE, context


TARGETS = ["1234", "17", "12101", "9", "777", "404"]  # test_model_generation's memorised student


@pytest.fixture(scope="module")
def memorised(t5_tokenizer):
    """``(float32 student, its bf16 copy, batch, catalog)``: the student trained to map user i to TARGETS[i]."""
    model, batch, final_loss = memorised_model(t5_tokenizer, TARGETS)
    assert final_loss < 1.0
    catalog = [str(item) for item in range(1, 1001)] + ["1234", "12101"]  # ids of 1 to 3 tokens
    return model, copy.deepcopy(model).to(torch.bfloat16), batch, ItemIndex.from_catalog(catalog, t5_tokenizer)


@pytest.mark.parametrize("decoding", ["beam", "exact"])
def test_bf16_ranks_like_float32_on_a_trained_student_with_multi_token_ids(memorised, decoding):
    model, half, batch, index = memorised
    options = dict(item_index=index, num_beams=TOP_K, num_return_sequences=TOP_K, decoding=decoding)
    full, half = (m.generate(**batch, **options) for m in (model, half))
    assert [items[0] for items in full.item_ids] == [items[0] for items in half.item_ids] == TARGETS
    assert_ranks_alike(list(zip(full.item_ids, full.scores)), list(zip(half.item_ids, half.scores)), decoding)


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_ranks_like_float32_through_the_loader_on_one_token_ids(trained_student, device):
    """The conftest student (independent ids: the exact one-step ranking of the whole catalog), trained six steps:
    its scores are nearly uniform, so near ties are common and the tolerance matters."""
    model_dir, data_dir = trained_student
    users = load_rec_dataset(data_dir)["users"].select(range(24))
    histories = list(zip(users["user_id"], users["items"]))
    rankings = {}
    for dtype in ("float32", "bfloat16"):
        model, tokenizer = load_trained_student(str(model_dir), device, dtype)
        assert model.device.type == device
        rankings[dtype] = [(row.item_ids, row.scores)
                           for row in recommend_users(model, tokenizer, histories, k=TOP_K, progress=False)]  # fmt: skip
    assert_ranks_alike(rankings["float32"], rankings["bfloat16"], "exact")


def train_in_bf16(dataset, output, **model_options):
    """A tiny training run with the Trainer's ``bf16`` flag (autocast) on the CPU; its trainer. The losses are
    finite and it saves safetensors only."""
    from rdrec_hf.training import DataArguments, ModelArguments, RDRecTrainingArguments, train_rdrec

    args = RDRecTrainingArguments(
        output_dir=str(output), max_steps=4, per_device_train_batch_size=8, learning_rate=5e-3, bf16=True,
        save_strategy="no", eval_strategy="no", rank_eval=False, max_source_length=128, max_target_length=24,
        use_cpu=True, report_to="none", seed=3, logging_steps=2,
    )  # fmt: skip
    trainer, _ = train_rdrec(ModelArguments(**model_options), DataArguments(dataset=str(dataset)), args)
    assert trainer.accelerator.mixed_precision == "bf16"
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses))), trainer.state.log_history
    assert list(output.glob("*.safetensors")) and not list(output.glob("*.bin"))
    return trainer


def test_a_bf16_training_run_on_the_cpu_saves_safetensors_that_load_in_bf16(trained_student, tmp_path):
    train_in_bf16(trained_student[1], tmp_path / "bf16", model_preset="tiny")
    model, tokenizer = load_trained_student(str(tmp_path / "bf16"), "cpu", "bfloat16")
    assert model.dtype == torch.bfloat16
    assert len(next(recommend_users(model, tokenizer, [("u", ["3", "17"])], k=5, progress=False)).item_ids) == 5


def test_a_lora_adapter_loads_merged_in_either_dtype(trained_student, tmp_path):
    model_dir, data_dir = trained_student
    train_in_bf16(data_dir, tmp_path / "lora", model_name_or_path=str(model_dir), use_peft=True)
    assert (tmp_path / "lora" / "adapter_config.json").is_file()
    histories = [("u", ["3", "17"]), ("v", ["5"])]
    rankings = {}
    for dtype in (torch.float32, torch.bfloat16):
        model, tokenizer = load_trained_student(str(tmp_path / "lora"), "cpu", dtype)
        assert {p.dtype for p in model.parameters()} == {dtype} and model.item_index is not None
        rankings[dtype] = [(row.item_ids, row.scores) for row in recommend_users(model, tokenizer, histories, k=TOP_K,
                                                                                progress=False)]  # fmt: skip
    assert_ranks_alike(rankings[torch.float32], rankings[torch.bfloat16], "lora")


# --------------------------------------------------------------------------------- bad options, CLI main()
def assert_one_message(text: str, *parts: str) -> None:
    assert all(part in text for part in parts) and "Traceback" not in text, text


@pytest.mark.parametrize("device", DEVICES)
def test_recommend_on_a_device_and_in_a_dtype(trained_student, capsys, device):
    model_dir, _ = trained_student
    command = ["recommend", "--model_name_or_path", str(model_dir), "--history", "3", "17", "-k", str(TOP_K), "--json"]
    tops = {}
    for dtype in ("float32", "bfloat16"):
        assert main([*command, "--device", device, "--dtype", dtype]) == 0
        rows = json.loads(capsys.readouterr().out)
        tops[dtype] = [([row["item_id"] for row in rows], [row["score"] for row in rows])]
    assert_ranks_alike(tops["float32"], tops["bfloat16"], f"recommend --device {device}")


@pytest.mark.parametrize("command", ["recommend", "app", "evaluate"])
def test_a_missing_gpu_or_an_unknown_dtype_is_one_usage_error(trained_student, tmp_path, command, capsys):
    model_dir, data_dir = trained_student
    arguments = {
        "recommend": ["--model_name_or_path", str(model_dir), "--history", "3"],
        "app": ["--model_name_or_path", str(model_dir)],
        "evaluate": ["--model_name_or_path", str(model_dir), "--output_dir", str(tmp_path), "--dataset",
                     str(data_dir), "--max_users", "2"],
    }[command]  # fmt: skip
    for option, expected in ((["--device", MISSING_GPU], "CUDA GPU"), (["--device", "gpu"], "unknown device 'gpu'"),
                             (["--dtype", "float8"], "float8")):  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            main([command, *arguments, *option])
        assert exit_info.value.code == 2
        assert_one_message(capsys.readouterr().err, expected)
    assert not (tmp_path / "metrics.json").exists()


def test_a_dtype_the_device_cannot_compute_in_is_one_error(trained_student, monkeypatch, capsys):
    # No CPU here lacks bf16, so the probe answers as one would.
    monkeypatch.setattr(devices, "_computes_in", lambda dtype, device_type: dtype != torch.bfloat16)
    command = ["recommend", "--model_name_or_path", str(trained_student[0]), "--history", "3", "--device", "cpu", "--dtype"]
    assert main([*command, "bfloat16"]) == EXIT_USER_ERROR
    assert_one_message(capsys.readouterr().err, "cpu does not compute in bfloat16; use --dtype float32")
    assert main([*command, "float16"]) == 0


@pytest.mark.parametrize("device", DEVICES)
def test_evaluate_runs_on_the_device_in_the_dtype_and_its_report_says_so(trained_student, tmp_path, device):
    model_dir, data_dir = trained_student
    assert main(["evaluate", "--model_name_or_path", str(model_dir), "--output_dir", str(tmp_path), "--dataset",
                 str(data_dir), "--tasks", "sequential", "--max_users", "4", "--device", device, "--dtype",
                 "bfloat16"]) == 0  # fmt: skip
    assert f"run on {device} in bfloat16" in (tmp_path / "report.md").read_text(encoding="utf-8")
    assert json.loads((tmp_path / "metrics.json").read_text())["sequential"]["num_examples"] == 4
