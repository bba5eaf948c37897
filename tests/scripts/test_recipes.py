"""Every recipe YAML parses against its script's dataclasses; unknown keys fail with a clear message. Its comments
give reasons, not measured figures, and its header names the BENCHMARKS.md section that holds them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from trl import TrlParser
from helpers import REPOSITORY, load_script

RECIPES = REPOSITORY / "recipes"
CONFIGS = sorted(RECIPES.glob("**/config_*.yaml"))


def recipe_parser(stage: str) -> TrlParser:
    """The parser of ``recipes/<stage>.py``: its ``make_parser()``."""
    path = RECIPES / f"{stage}.py"
    assert path.is_file(), f"no script {path} for the configs in recipes/*/{stage}/"
    module = load_script(path, f"recipe_{stage}")
    assert hasattr(module, "make_parser"), f"{path} must expose make_parser() returning its TrlParser"
    return module.make_parser()


def test_every_dataset_has_full_and_lora_training_recipes_with_a_readme():
    for dataset in ("all_beauty", "beauty", "sports"):
        assert (RECIPES / dataset / "train" / "config_full.yaml").is_file()
        assert (RECIPES / dataset / "train" / "config_lora.yaml").is_file()
        readme = (RECIPES / dataset / "README.md").read_text()
        assert "accelerate launch" in readme
    for name in ("multi_cpu", "ddp", "fsdp"):
        assert yaml.safe_load((RECIPES / "accelerate_configs" / f"{name}.yaml").read_text())["num_processes"] >= 1


@pytest.mark.parametrize("config", CONFIGS, ids=[str(path.relative_to(RECIPES)) for path in CONFIGS])
def test_recipe_yaml_parses_without_unknown_keys(config):
    stage = config.parent.name
    parser = recipe_parser(stage)
    # A GPU recipe (bf16) is refused by the Trainer's arguments on a machine without one unless told to use the CPU.
    on_cpu = ["--use_cpu", "true"] if config.stem == "config_gpu" and not torch.cuda.is_available() else []
    parsed = parser.parse_args_and_config(["--config", str(config), *on_cpu])  # raises ValueError on unknown keys
    keys = set(yaml.safe_load(config.read_text()))
    fields = {name for arguments in parsed for name in vars(arguments)}
    assert keys <= fields
    # A recipe fixes the work (steps, epochs), not the time: the budgets are the benchmarks' options.
    assert not [key for key in keys if key.endswith("_minutes") or key.endswith("_seconds")]


def test_unknown_yaml_key_is_rejected_with_its_name(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f"model_preset: tiny\noutput_dir: {tmp_path}\nlearning_rat: 0.001\n")
    parser = recipe_parser("train")
    with pytest.raises(ValueError, match="Unknown arguments from config file: \\['--learning_rat'"):
        parser.parse_args_and_config(["--config", str(config)])


def test_train_script_reports_a_bad_config_without_traceback(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f'model_preset: tiny\noutput_dir: {tmp_path}\ntask_mixture: "1:1:1"\n')
    result = subprocess.run(
        [sys.executable, str(RECIPES / "train.py"), "--config", str(config)], capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "task_mixture '1:1:1' must have 4 ratios" in result.stderr
    assert "Traceback" not in result.stderr


def test_train_script_reports_an_unknown_dataset_without_traceback(tmp_path):
    """In process (the subprocess test above covers the script's entry): the recipe program's exit message."""
    from rdrec_hf.scripts import run_recipe
    from rdrec_hf.scripts.train import main, make_parser

    with pytest.raises(SystemExit) as exit_info:
        run_recipe(make_parser(), main, ["--model_preset", "tiny", "--dataset", "amazon", "--output_dir", str(tmp_path)])
    assert exit_info.value.code == (
        "error: unknown dataset 'amazon': use one of all_beauty, beauty, sports, a dataset folder or a raw source "
        "(P5 folder, Amazon review JSON lines)")


# A measured figure in a recipe's comments goes stale where `benchmarks/report.py --check` cannot see it: comments say
# what an option does and why; the figures live in BENCHMARKS.md, which each recipe's header names by section.
MEASURED_FIGURE = re.compile(
    r"\.\d{3,}"  # a metric value: .0508
    r"|±|\+-"  # a spread over seeds
    r"|\b\d+(\.\d+)?x\b"  # a ratio: 1.48x faster
    r"|[+-]\d+(\.\d+)? ?%"  # a gain: +13 %
    r"|\b\d+(\.\d+)?(-\d+(\.\d+)?)?[ -]?((CPU|GPU|wall) )?(s|ms|h|min|minutes?|hours?|seconds?)\b"  # a timing
    r"|\b(rows|steps|examples)/s\b"  # a rate
)
SECTION = re.compile(r'BENCHMARKS\.md,? section (\d+)(?:, "([^"]+)")?')


def comments(config: Path) -> list[tuple[int, str]]:
    """``(line number, comment text)`` of every comment in a recipe (no recipe value holds a ``#``)."""
    return [(number, line.split("#", 1)[1]) for number, line in enumerate(config.read_text().splitlines(), 1)
            if "#" in line]


@pytest.mark.parametrize("config", CONFIGS, ids=[str(path.relative_to(RECIPES)) for path in CONFIGS])
def test_recipe_comments_hold_reasons_not_measured_figures(config):
    figures = [f"line {number}: {text.strip()}" for number, text in comments(config) if MEASURED_FIGURE.search(text)]
    assert not figures, f"{config.name}: move these figures to BENCHMARKS.md and give the reason only: {figures}"


@pytest.mark.parametrize("config", CONFIGS, ids=[str(path.relative_to(RECIPES)) for path in CONFIGS])
def test_recipe_header_names_the_benchmarks_section_of_its_figures(config):
    lines = config.read_text().splitlines()
    end = next(index for index, line in enumerate(lines) if not line.startswith("#"))
    header = " ".join(line.lstrip("# ") for line in lines[:end])
    benchmarks = (RECIPES.parent / "BENCHMARKS.md").read_text()
    headings = [line for line in benchmarks.splitlines() if line.startswith("#")]
    sections = SECTION.findall(header)
    assert sections, f"{config.name}: its header names no BENCHMARKS.md section"
    for number, title in sections:
        assert any(line.startswith(f"## {number}. ") for line in headings), f"BENCHMARKS.md has no section {number}"
        assert not title or any(title in line for line in headings), f"BENCHMARKS.md has no heading {title!r}"


def test_the_same_recipe_and_seed_train_the_same_weights_twice(shared, tmp_path):
    """A recipe fixes the work (steps, epochs), not the time: trained twice on the CPU, a tiny version of the catalog
    recipe (SASRec start and teacher, catalog softmax, resampled epochs) gives the same weights, bit for bit."""
    from safetensors.torch import load_file

    from rdrec_hf.cli import main

    recipe = tmp_path / "config_tiny.yaml"
    recipe.write_text(yaml.safe_dump({
        "model_preset": "tiny", "item_embedding_init": "sasrec", "item_embedding_init_max_epochs": 2,
        "item_embedding_init_patience": 1, "dataset": "all_beauty", "user_limit": 40, "indexing": "independent",
        "task_mixture": "0:3:0:1", "task_mixture_mode": "unit_counts", "resample_each_epoch": True,
        "max_source_length": 96, "max_target_length": 8, "max_steps": 4, "per_device_train_batch_size": 8,
        "ranking_softmax": "catalog", "recommender_distillation_weight": 0.5, "learning_rate": 3e-3, "seed": 3,
        "eval_strategy": "no", "save_strategy": "no", "rank_eval": False, "report_to": "none",
    }))
    weights = []
    for run in ("first", "second"):
        main(["train", "--config", str(recipe), "--output_dir", str(tmp_path / run)])
        weights.append(load_file(tmp_path / run / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
