"""Render the results tables of README.md and BENCHMARKS.md from benchmarks/results/*.json.

Each table sits in a document between ``<!-- report:NAME -->`` and ``<!-- /report:NAME -->``, where NAME is a
renderer registered below with the results files it reads. Without ``--check`` the blocks are rewritten in
place; with it nothing is written, and a block whose committed text differs from what its files render is
printed as a diff and the command exits 1 (``make test`` runs it). No GPU, no network, standard library only.

    .venv/bin/python benchmarks/report.py            # rewrite every block
    .venv/bin/python benchmarks/report.py --check    # exit 1 and print a diff when a block is stale

Adding a table for a new results file: one function decorated with ``@table("name", "file.json")`` that
returns markdown, and a ``<!-- report:name -->`` block in a document. A block whose file is absent is an error,
so a table never silently goes missing, except for tables registered ``optional`` (files another session is
producing): those say that the file is not there yet, and fill in, failing ``--check``, once it is.

Which results file is each dataset's recipe's is data, not code: benchmarks/recipe_results.json (``recipe_results()``),
shared with bench_student_vs_baselines.py; a rerun of a recipe points that file at its new results.
"""

from __future__ import annotations

import argparse
import difflib
import fnmatch
import functools
import json
import re
import statistics
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TABLES", "ReportError", "Table", "make_parser", "main", "recipe_results", "render_document", "table"]

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ("README.md", "BENCHMARKS.md")
BLOCK = re.compile(r"<!-- report:(?P<name>[\w.-]+) -->\n(?P<body>.*?)<!-- /report:(?P=name) -->", re.DOTALL)
OPENING = re.compile(r"<!-- report:([\w.-]+) -->")

Results = Mapping[str, Any]  # results file name -> its parsed JSON

# Which results file is each dataset's recipe's: data, in benchmarks/recipe_results.json (recipe_results() below),
# read by every table and finding here and by bench_student_vs_baselines.py.
RECIPE_RESULTS = Path(__file__).resolve().parent / "recipe_results.json"
RECIPE_FIELDS = ("recipe", "results", "scheme")
STUDENT_LABEL = "independent ids + SASRec start + distillation"
# The recipe before it (item tokens from the transitions' spectral embedding, no teacher), kept in the tables.
PREVIOUS_RESULTS = {"beauty": "item_ids_arraypath_cos4000.json", "sports": "item_ids_sports_transitions_cos4000.json"}
PREVIOUS_LABEL = "independent ids + transitions start"


class ReportError(ValueError):
    """A document or results folder the report cannot render (one message, no traceback on the command line)."""


@functools.cache
def recipe_results() -> dict[str, dict[str, str]]:
    """benchmarks/recipe_results.json, read once: per dataset, its project recipe (``recipe``, the training YAML
    relative to the repository root), the bench_item_ids.py results file under benchmarks/results that holds that
    recipe's runs (``results``) and the item-id scheme of the runs inside it (``scheme``). A rerun of a recipe
    changes this file, not the code. Read-only: every caller shares the one dict."""
    try:
        mapping = json.loads(RECIPE_RESULTS.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ReportError(f"cannot read {RECIPE_RESULTS}: {error}") from error
    for dataset, entry in mapping.items():
        if not isinstance(entry, dict) or sorted(entry) != sorted(RECIPE_FIELDS) \
                or not all(isinstance(value, str) and value for value in entry.values()):
            raise ReportError(f"{RECIPE_RESULTS}: {dataset!r} must map {', '.join(RECIPE_FIELDS)} to names, "
                              f"got {entry!r}")
    return mapping


def student_results(dataset: str) -> str:
    """The results file of ``dataset``'s recipe (benchmarks/recipe_results.json)."""
    return recipe_results()[dataset]["results"]


@dataclass(frozen=True)
class Table:
    """One registered table: the results files it needs (names or glob patterns) and its renderer."""

    name: str
    files: tuple[str, ...]
    render: Callable[[Results], str]
    optional: bool = False

    def missing(self, results: Results) -> list[str]:
        return [pattern for pattern in self.files if not fnmatch.filter(results, pattern)]


TABLES: dict[str, Table] = {}


Renderer = Callable[[Results], str]


def table(name: str, *files: str, optional: bool = False) -> Callable[[Renderer], Renderer]:
    """Register ``render(results) -> markdown`` as the block ``name``, which needs ``files`` to be present
    (``optional``: until they are, the block says so instead of failing)."""

    def register(render: Renderer) -> Renderer:
        if name in TABLES:
            raise ValueError(f"table {name!r} is registered twice")
        TABLES[name] = Table(name, files, render, optional)
        return render

    return register


# ----------------------------------------------------------------------------------------------- formatting


def metric(value: float | None) -> str:
    """A ranking metric in [0, 1] as the documents write it: four decimals, no leading zero (.0399)."""
    if value is None:
        return "-"
    text = f"{value:.4f}"
    return text[1:] if text.startswith("0.") else text


def score(value: float) -> str:
    """A text score on a 0-100 scale (BLEU, ROUGE)."""
    return f"{value:.2f}"


def seeded(entry: Mapping[str, Any], fmt: Callable[[float], str] = metric) -> str:
    """``mean ± sample std`` of a per-seed entry ({"mean", "std", "values"}); the value alone for one seed."""
    if entry.get("std") is None or len(entry.get("values", [])) < 2:
        return fmt(entry["mean"])
    return f"{fmt(entry['mean'])} ± {fmt(entry['std'])}"


def per_seed(entry: Mapping[str, Any]) -> str:
    return ", ".join(metric(value) for value in entry["values"])


def join(values: list[Any], fmt: Callable[[Any], str] = str) -> str:
    return ", ".join(fmt(value) for value in values)


def seeds_label(seeds: list[Any]) -> str:
    return f"seed{'s' if len(seeds) > 1 else ''} {join(seeds)}"


def minutes(value: float) -> str:
    return f"{value:.1f}"


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.1f}x"


def markdown_table(header: list[str], rows: list[list[str]], align: str) -> str:
    """A markdown table; ``align`` has one letter per column: ``l`` (text) or ``r`` (numbers)."""
    if len(align) != len(header):
        raise ValueError(f"align {align!r} does not match the {len(header)} columns")
    lines = [header, ["---:" if side == "r" else "---" for side in align], *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def mean_std(values: list[float]) -> dict[str, Any]:
    """The per-seed entry of a list of raw values (sample std), for files that store lists only."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "values": values}


# ------------------------------------------------------------------- quality against baselines (all test users)

INDEXING_LABEL = {"random": "leak-free (random)", "sequential": "paper's (sequential)"}
TASK_LABEL = {"sequential": "sequential, full ranking, history excluded", "topn": "top-N, 1 + 99 sampled negatives"}
RANKING_METRICS = ("hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10")


def baseline_runs(results: Results, file: str, dataset: str, indexing: str) -> dict[str, list[dict]]:
    """The runs of ``bench_quality.py`` for one (dataset, indexing), grouped by device, seeds in order."""
    groups: dict[str, list[dict]] = {}
    for key, run in sorted(results[file]["runs"].items()):
        if run["dataset"] == dataset and run["indexing"] == indexing:
            groups.setdefault(key.split("/")[2], []).append(run)
    return groups


def sasrec_run_note(runs: list[dict]) -> str:
    training = [run["sasrec"] for run in runs]
    return (f"{seeds_label([run['seed'] for run in runs])}; epochs {join([t['epochs'] for t in training])} "
            f"(best {join([t['best_epoch'] for t in training])}; {training[0]['stop_reason']}); "
            f"{runs[0]['test_users']:,} test users; {runs[0]['machine']}; {runs[0]['date'][:10]}")


def sasrec_cells(runs: list[dict], task: str) -> list[str]:
    return [seeded(mean_std([run["metrics"]["sasrec"][task][name] for run in runs])) for name in RANKING_METRICS]


def quality_table(results: Results, dataset: str, task: str) -> str:
    rows = []
    for indexing in ("random", "sequential"):
        groups = baseline_runs(results, "quality_baselines.json", dataset, indexing)
        if not groups:
            continue
        first = next(iter(groups.values()))[0]
        for system in ("popularity", "leak_rule"):
            label = "leak rule (max(history)+1, +2, ...)" if system == "leak_rule" else system
            cells = [metric(first["metrics"][system][task][name]) for name in RANKING_METRICS]
            rows.append([INDEXING_LABEL[indexing], label, *cells, f"{first['test_users']:,} test users"])
        for device, runs in groups.items():
            rows.append([INDEXING_LABEL[indexing], f"SASRec ({device.upper()})", *sasrec_cells(runs, task),
                         sasrec_run_note(runs)])
    published = results["quality_baselines.json"]["published"]
    for system, figures in published["figures"].get(dataset, {}).get(task, {}).items():
        cells = [metric(figures.get(name)) for name in RANKING_METRICS]
        rows.append([INDEXING_LABEL["sequential"], f"{system} (published)", *cells, "cited"])
    header = ["numbering", "system", "HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "run"]
    return f"{markdown_table(header, rows, 'llrrrrrl')}\n\n{TASK_LABEL[task]}. Published: {published['source']}"


for _dataset, _task in (("beauty", "sequential"), ("beauty", "topn"), ("sports", "sequential"), ("sports", "topn")):
    table(f"quality_{_dataset}_{_task}", "quality_baselines.json")(
        lambda results, dataset=_dataset, task=_task: quality_table(results, dataset, task)
    )


# ------------------------------------------------------------- the item-id student on 5,000 sampled test users


def sequential_results(run: Mapping[str, Any], scheme: str) -> Mapping[str, Any]:
    return run["results"][scheme]["sequential"]


def student_row(label: str, run: Mapping[str, Any], scheme: str) -> list[str]:
    entry = sequential_results(run, scheme)["model"]
    return [label, join(run["seeds_of"][scheme] if "seeds_of" in run else run["seeds"]),
            seeded(entry["hr@10"]), seeded(entry["ndcg@10"]), per_seed(entry["ndcg@10"]),
            join(run["training_minutes"][scheme], minutes)]


def fixed_row(label: str, metrics: Mapping[str, float], note: str = "") -> list[str]:
    return [label, note, metric(metrics["hr@10"]), metric(metrics["ndcg@10"]), "", ""]


def means(entry: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    return {name: value["mean"] for name, value in entry.items()}


def single_sasrec(results: Results, file: str) -> tuple[dict, dict]:
    """The one SASRec run of a ``bench_quality.py --test-users`` file: its metrics and its training record."""
    (run,) = results[file]["runs"].values()
    return run["metrics"]["sasrec"]["sequential"], run["sasrec"]


def item_id_table(results: Results, students: list[tuple[str, str, str]], starts_file: str,
                  sasrec: tuple[dict, dict]) -> str:
    """Students ``(label, file, scheme)`` beside the item-kNN, SASRec under the budget, popularity and the leak
    rule, all on the same sampled test users."""
    rows = [student_row(label, results[file], scheme) for label, file, scheme in students]
    starts = results[starts_file]["metrics"]
    reference = sequential_results(results[students[0][1]], students[0][2])
    sasrec_metrics, training = sasrec
    rows += [
        fixed_row("transition item-kNN (no model: the training graph of items bought within "
                  f"{results[starts_file]['transition_window']} positions, the last item's row)",
                  starts["transition item-kNN"]),
        fixed_row(f"SASRec, full softmax, {training['training']['wall_budget_s'] / 60:.0f} wall minutes "
                  f"({training['epochs']} epochs, best {training['best_epoch']}, {training['stop_reason']})",
                  sasrec_metrics, "0"),
        fixed_row("popularity", means(reference["popularity"])),
        fixed_row("leak rule", means(reference["leak_rule"])),
    ]
    users = int(reference["num_examples"]["mean"])
    header = ["system", "seeds", "HR@10", "NDCG@10", "NDCG@10 per seed", "training minutes per seed"]
    table = markdown_table(header, rows, "llrrrr")
    return f"{table}\n\nThis project's protocol: {reference['protocol']} {users:,} test users."


def recipe_students(dataset: str) -> list[tuple[str, str, str]]:
    """The recipe's student and the one before it, as ``item_id_table`` rows."""
    recipe = recipe_results()[dataset]
    return [(f"student, {STUDENT_LABEL} (`{Path(recipe['recipe']).name}`)", recipe["results"], recipe["scheme"]),
            (f"student, {PREVIOUS_LABEL} (the previous recipe)", PREVIOUS_RESULTS[dataset], "independent")]


@table("item_ids_beauty", "item_ids.json", student_results("beauty"), PREVIOUS_RESULTS["beauty"], "item_starts.json")
def item_ids_beauty(results: Results) -> str:
    students = [
        *recipe_students("beauty"),
        *((f"student, {scheme} ids + SVD start (`config_item_ids.yaml`)" if "independent" in scheme
           else f"student, {scheme} ids (`config_item_ids.yaml`)", "item_ids.json", scheme)
          for scheme in ("independent", "collaborative", "collaborative+independent", "random")),
    ]
    run = results["item_ids.json"]["sasrec"]
    return item_id_table(results, students, "item_starts.json", (run["sequential"], run["training"]))


@table("item_ids_sports", student_results("sports"), PREVIOUS_RESULTS["sports"], "item_starts_sports.json",
       "sasrec_item_ids_sports.json")
def item_ids_sports(results: Results) -> str:
    return item_id_table(results, recipe_students("sports"), "item_starts_sports.json",
                         single_sasrec(results, "sasrec_item_ids_sports.json"))


def starts_table(results: Results, file: str) -> str:
    rows = [[name, metric(values["hr@10"]), metric(values["ndcg@10"])]
            for name, values in results[file]["metrics"].items()]
    run = results[file]
    header = [f"start ({run['dim']} factors, training interactions only)", "HR@10", "NDCG@10"]
    return (f"{markdown_table(header, rows, 'lrr')}\n\n`{run['command']}`, {run['date']}, "
            f"{run['test_users']:,} test users of {run['dataset']}.")


table("item_starts_beauty", "item_starts.json")(lambda results: starts_table(results, "item_starts.json"))
table("item_starts_sports", "item_starts_sports.json")(lambda results: starts_table(results, "item_starts_sports.json"))


@table("item_id_variants", "item_ids_*.json")
def item_id_variants(results: Results) -> str:
    """Every variant run of ``bench_item_ids.py --variant`` on beauty, best first: what was tried and lost."""
    rows = []
    for file, run in results.items():
        if not fnmatch.fnmatch(file, "item_ids_*.json") or run.get("dataset", "beauty") != "beauty":
            continue
        (scheme,) = run["results"]
        entry = sequential_results(run, scheme)["model"]
        rows.append((entry["ndcg@10"]["mean"], [
            f"`{run['variant']}`", f"`{' '.join(run['train_args'])}`", join(run["seeds"]),
            seeded(entry["hr@10"]), seeded(entry["ndcg@10"]), per_seed(entry["ndcg@10"]),
            join(run["training_minutes"][scheme], minutes),
        ]))
    header = ["variant", "`--train-args`", "seeds", "HR@10", "NDCG@10", "NDCG@10 per seed",
              "training minutes per seed"]
    return markdown_table(header, [cells for _, cells in sorted(rows, key=lambda row: -row[0])], 'lllrrrr')


# ---------------------------------------------------------------------------------- summaries and findings


def best_student(results: Results, dataset: str) -> Mapping[str, Any]:
    """The sequential figures of ``dataset``'s recipe (its results file and scheme: benchmarks/recipe_results.json)."""
    recipe = recipe_results()[dataset]
    return sequential_results(results[recipe["results"]], recipe["scheme"])


def summary_table(results: Results, dataset: str, starts_file: str, sasrec: tuple[dict, dict]) -> str:
    """README's table for one dataset: the best student beside its baselines on the same users, then the
    all-user baselines on both numberings and the published figures."""
    student, student_file = best_student(results, dataset), student_results(dataset)
    users = f"{int(student['num_examples']['mean']):,} sampled"
    sasrec_metrics, training = sasrec
    rows = [
        [f"this project's student: {STUDENT_LABEL}, " + seeds_label(results[student_file]["seeds"]), "leak-free", users,
         seeded(student["model"]["hr@10"]), seeded(student["model"]["ndcg@10"])],
        ["transition item-kNN (no model)", "leak-free", users,
         *(metric(results[starts_file]["metrics"]["transition item-kNN"][name]) for name in ("hr@10", "ndcg@10"))],
        [f"SASRec, {training['training']['wall_budget_s'] / 60:.0f} wall minutes on the CPU", "leak-free", users,
         metric(sasrec_metrics["hr@10"]), metric(sasrec_metrics["ndcg@10"])],
        ["popularity", "leak-free", users,
         *(metric(student["popularity"][name]["mean"]) for name in ("hr@10", "ndcg@10"))],
    ]
    for indexing in ("random", "sequential"):
        groups = baseline_runs(results, "quality_baselines.json", dataset, indexing)
        converged = groups.get("cuda")
        everyone = f"all {next(iter(groups.values()))[0]['test_users']:,}"
        if converged:
            hr, ndcg = (seeded(mean_std([run["metrics"]["sasrec"]["sequential"][name] for run in converged]))
                        for name in ("hr@10", "ndcg@10"))
            rows.append([f"SASRec, converged on a GPU, {seeds_label([run['seed'] for run in converged])}",
                         INDEXING_LABEL[indexing], everyone, hr, ndcg])
        if indexing == "sequential":
            leak = next(iter(groups.values()))[0]["metrics"]["leak_rule"]["sequential"]
            rows.append(["leak rule (no model: max(history)+1, +2, ...)", INDEXING_LABEL[indexing], everyone,
                         metric(leak["hr@10"]), metric(leak["ndcg@10"])])
    figures = results["quality_baselines.json"]["published"]["figures"][dataset]["sequential"]
    rows += [[f"{system} (published)", INDEXING_LABEL["sequential"], "all", metric(values["hr@10"]),
              metric(values["ndcg@10"])] for system, values in figures.items()]
    return markdown_table(["system", "numbering", "test users", "HR@10", "NDCG@10"], rows, 'lllrr')


@table("summary_beauty", "item_ids.json", student_results("beauty"), "item_starts.json", "quality_baselines.json")
def summary_beauty(results: Results) -> str:
    run = results["item_ids.json"]["sasrec"]
    return summary_table(results, "beauty", "item_starts.json", (run["sequential"], run["training"]))


@table("summary_sports", student_results("sports"), "item_starts_sports.json", "sasrec_item_ids_sports.json",
       "quality_baselines.json")
def summary_sports(results: Results) -> str:
    sasrec = single_sasrec(results, "sasrec_item_ids_sports.json")
    return summary_table(results, "sports", "item_starts_sports.json", sasrec)


def knn(results: Results, starts_file: str) -> str:
    return metric(results[starts_file]["metrics"]["transition item-kNN"]["ndcg@10"])


def student_finding(results: Results) -> str:
    beauty, sports = best_student(results, "beauty"), best_student(results, "sports")
    sports_sasrec, _ = single_sasrec(results, "sasrec_item_ids_sports.json")
    student, popularity = beauty["model"]["ndcg@10"], beauty["popularity"]["ndcg@10"]["mean"]

    def against_knn(entry: Mapping[str, Any], starts_file: str) -> str:
        nearest = results[starts_file]["metrics"]["transition item-kNN"]["ndcg@10"]
        above = sum(value >= nearest for value in entry["values"])
        return f"{above} of {len(entry['values'])} seeds at or above the transition item-kNN ({metric(nearest)})"

    return (
        f"- **The student against its baselines** (this project's protocol: leak-free numbering, full ranking, "
        f"{int(beauty['num_examples']['mean']):,} sampled test users, {STUDENT_LABEL}). Beauty: NDCG@10 "
        f"{seeded(student)} (seeds {per_seed(student)}), {ratio(student['mean'], popularity)} popularity "
        f"({metric(popularity)}); {against_knn(student, 'item_starts.json')}; SASRec under the same budget "
        f"{metric(results['item_ids.json']['sasrec']['sequential']['ndcg@10'])}. Sports: "
        f"{seeded(sports['model']['ndcg@10'])} (seeds {per_seed(sports['model']['ndcg@10'])}) against popularity "
        f"{metric(sports['popularity']['ndcg@10']['mean'])}; {against_knn(sports['model']['ndcg@10'], 'item_starts_sports.json')}; "
        f"SASRec {metric(sports_sasrec['ndcg@10'])}."
    )


def leak_finding(results: Results) -> str:
    published = results["quality_baselines.json"]["published"]["figures"]

    def leak(dataset: str) -> str:
        runs = baseline_runs(results, "quality_baselines.json", dataset, "sequential")
        return metric(next(iter(runs.values()))[0]["metrics"]["leak_rule"]["sequential"]["ndcg@10"])

    def sasrec_gpu(dataset: str) -> str:
        runs = baseline_runs(results, "quality_baselines.json", dataset, "random")["cuda"]
        return seeded(mean_std([run["metrics"]["sasrec"]["sequential"]["ndcg@10"] for run in runs]))

    def cited(system: str) -> str:
        return " / ".join(metric(published[dataset]["sequential"][system]["ndcg@10"])
                          for dataset in ("beauty", "sports"))

    return (
        f"- **The paper's numbering leaks the answer.** The rule with no model (max(history)+1, +2, ...) reaches "
        f"NDCG@10 {leak('beauty')} (beauty) and {leak('sports')} (sports) on all test users, against POD's "
        f"published {cited('POD')} and RDRec's {cited('RDRec')}. Converged SASRec on the leak-free numbering: "
        f"{sasrec_gpu('beauty')} (beauty), {sasrec_gpu('sports')} (sports)."
    )


def rationale_finding(results: Results) -> str:
    run = results["rationale_effect.json"]
    difference = run["paired_difference"]["no_rationale"]["sequential_ndcg@10"]
    low, high = difference["ci95"]
    variants = run["variants"]
    return (
        f"- **Rationales** (All_Beauty, the demo's four-task student at 1,000 steps before `distill_topn`, seeds {join(variants['all_tasks']['seeds'])}, "
        f"every test user, this project's protocol): sequential NDCG@10 {seeded(mean_std(variants['all_tasks']['sequential_ndcg@10']))} "
        f"with the rationale task, {seeded(mean_std(variants['no_rationale']['sequential_ndcg@10']))} without; the "
        f"paired difference {difference['mean']:+.4f} (95 % interval {low:+.4f} to {high:+.4f}): no effect at this "
        f"budget (section 7)."
    )


def scaling_finding(results: Results) -> str:
    run = results["scaling.json"]
    first, last = run["catalog_size"][0], run["catalog_size"][-1]
    return (
        f"- **Scaling** (text ids, `{run['options']['preset']}`, random weights): catalog "
        f"{first['catalog_size']:,} -> {last['catalog_size']:,} items: training step "
        f"{last['step_seconds'] / first['step_seconds']:.2f}x, constrained generation "
        f"{last['generate_seconds'] / first['generate_seconds']:.2f}x. With text ids the output layer is the fixed "
        f"vocabulary; independent ids add one output row per item, so their cost grows with the catalog."
    )


def catalog_finding(results: Results) -> str:
    run = results["catalog_scaling.json"]
    sparse = {point["catalog"]: point for point in run["points"] if point.get("sparse_embedding_gradients")}
    small, large = sparse[min(sparse)], sparse[max(sparse)]
    catalog = sequential_results(results["item_ids_catalog_recipe.json"], "independent")["model"]["ndcg@10"]
    sampled = sequential_results(results["item_ids_sampled_fullsasrec_recipe.json"], "independent")["model"]["ndcg@10"]
    return (
        f"- **Large catalogs** (independent ids, the d_model-64 student, one thread): with the sampled softmax and sparse "
        f"embedding gradients a training step at {large['catalog']:,} items takes {large['step_s']:.4f} s, "
        f"{large['step_s'] / small['step_s']:.2f}x the step at {small['catalog']:,}; a fresh process loads the "
        f"{large['catalog']:,}-item checkpoint in {large['load_s']:.2f} s and ranks one user's exact top-10 in "
        f"{large['recommend_ms_per_user']['1']:.1f} ms. On beauty that recipe ranks {seeded(sampled)} against the catalog "
        f"softmax's {seeded(catalog)} ({sampled['mean'] / catalog['mean']:.3f}x; section 5)."
    )


def training_finding(results: Results) -> str:
    path, gpu = results["data_path.json"], results["gpu_check.json"]
    speed, sasrec = gpu["speed_d64"], gpu["datasets"]["beauty"]["sasrec"]
    return (
        f"- **Training speed.** The training data path alone (beauty, the item-id recipe's mixture, one CPU "
        f"thread): an epoch's redraw {path['redraw_s']['previous']:.1f} s -> {path['redraw_s']['new']:.2f} s, "
        f"{path['examples_per_s']['previous']:,} -> {path['examples_per_s']['new']:,} examples/s. On one GPU the "
        f"d_model-64 recipe still ran {speed['steps_per_s']} steps/s ({speed['epoch_s']:.1f} s an epoch against "
        f"SASRec's {sasrec['epoch_s']:.1f} s), of which the data path's redraw and collation take under a second: "
        f"the rest of the gap is in the training step (section 3)."
    )


@table("findings", "item_ids.json", student_results("beauty"), "item_starts.json",
       student_results("sports"), "item_starts_sports.json", "sasrec_item_ids_sports.json",
       "quality_baselines.json", "rationale_effect.json", "scaling.json", "data_path.json", "gpu_check.json",
       "catalog_scaling.json", "item_ids_catalog_recipe.json", "item_ids_sampled_fullsasrec_recipe.json")
def findings(results: Results) -> str:
    """The principal findings: every figure read from its results file."""
    return "\n".join(finding(results) for finding in (student_finding, leak_finding, rationale_finding,
                                                        scaling_finding, catalog_finding, training_finding))


# -------------------------------------------------------------------------- other results files, one each


@table("student_cpu", "student_cpu.json")
def student_cpu(results: Results) -> str:
    run = results["student_cpu.json"]
    rows = []
    for setting, tasks in run["results"].items():
        dataset, indexing = setting.split(":")
        for task, entry in tasks.items():
            for system, label in (("model", "student, 600 steps"), ("popularity", "popularity"),
                                  ("leak_rule", "leak rule")):
                shown = seeded if system == "model" else lambda value: metric(value["mean"])  # deterministic
                rows.append([dataset, INDEXING_LABEL[indexing], TASK_LABEL[task], label,
                             shown(entry[system]["hr@10"]), shown(entry[system]["ndcg@10"]),
                             f"{int(entry['num_examples']['mean']):,}"])
    header = ["dataset", "numbering", "task", "system", "HR@10", "NDCG@10", "test users"]
    spent = "; ".join(f"{setting}: {join(values, minutes)}" for setting, values in run["training_minutes"].items())
    table = markdown_table(header, rows, "llllrrr")
    return f"{table}\n\nSeeds {join(run['seeds'])}; training minutes per seed: {spent}."


ABLATION_TEXT = {"project": "rouge-l", "paper": "nmt-rouge-l"}
RANKING_CELLS = [(task, key) for task in ("sequential", "topn") for key in ("hr@10", "ndcg@10")]


def ablation_table(results: Results, protocol: str) -> str:
    run = results["ablation.json"]
    rouge = ABLATION_TEXT[protocol]
    rows = []
    for name, variant in run["variants"].items():
        tasks = variant["results"][protocol]
        rows.append([name, f"`{variant['mixture']}`",
                     *(seeded(tasks[task]["model"][key]) for task, key in RANKING_CELLS),
                     *(seeded(tasks[task]["model"][key], score) for task in ("explanation", "rationale")
                       for key in ("bleu-4", rouge))])
    tasks = next(iter(run["variants"].values()))["results"][protocol]
    for system in ("popularity", "leak_rule"):
        rows.append([system.replace("_", " "), "", *(metric(tasks[task][system][key]["mean"])
                                                      for task, key in RANKING_CELLS), "", "", "", ""])
    header = ["variant", "mixture", "sequential HR@10", "sequential NDCG@10", "top-N HR@10", "top-N NDCG@10",
              "explanation BLEU-4", f"explanation {rouge}", "rationale BLEU-4", f"rationale {rouge}"]
    examples = "; ".join(f"{task} {int(entry['num_examples']['mean']):,}" for task, entry in tasks.items())
    return f"{markdown_table(header, rows, 'llrrrrrrrr')}\n\nSeeds {join(run['seeds'])}; test examples: {examples}."


@table("demo", "demo.json", "rationale_effect.json")
def demo(results: Results) -> str:
    """`make demo`'s student beside the library's baselines on every test user, and its texts; the same recipe's
    spread over the rationale benchmark's seeds."""
    run = results["demo.json"]
    seeds = results["rationale_effect.json"]["variants"]["all_tasks"]
    sequential, topn = run["ranking"]["sequential"], run["ranking"]["topn"]
    systems = [name for name in sequential if name != "users"]
    rows = [[BASELINE_LABEL.get(name, "RDRec student (four tasks)"),
             *(metric(task[name][key]) for task in (sequential, topn) for key in ("hr@10", "ndcg@10"))]
            for name in systems]
    header = ["system", "sequential HR@10", "sequential NDCG@10", "top-N HR@10", "top-N NDCG@10"]
    texts = "; ".join(f"{task} BLEU-4 {entry['bleu-4']:.1f}, ROUGE-L {entry['rouge-l']:.1f}, distinct share "
                      f"{entry['distinct_share']:.2f}, looping share {entry['looping_share']:.2f} "
                      f"({entry['examples']:,} texts)" for task, entry in run["text"].items())
    ratio_to_sasrec = sequential["model"]["ndcg@10"] / sequential["sasrec"]["ndcg@10"]
    spread = mean_std(seeds["sequential_ndcg@10"])
    return (f"{markdown_table(header, rows, 'lrrrr')}\n\nAll {sequential['users']:,} test users, this project's "
            f"protocol, seed 42; the student's sequential NDCG@10 is {ratio_to_sasrec:.2f}x SASRec's. Over seeds "
            f"{join(seeds['seeds'])} (one torch thread each, BENCHMARKS.md section 7) the recipe at 1,000 steps, "
            f"before `distill_topn`, ranks {seeded(spread)} ({spread['mean'] / sequential['sasrec']['ndcg@10']:.2f}x "
            f"SASRec; per seed {per_seed(spread)}). Texts: {texts}. "
            f"`make demo` took {run['wall_minutes']:.1f} wall minutes ({run['train_minutes']:.1f} of training; "
            f"{run['machine']}; measured {run['measured']}).")


def probe_table(run: Mapping[str, Any], first_column: str) -> str:
    """One trained and evaluated student per row (`bench_demo_probes.py`'s format): ranking and texts."""
    rows = []
    for probe in run["probes"]:
        texts = [f"{probe[task]['bleu-4']:.1f} / {probe[task]['rouge-l']:.1f} / {probe[task]['distinct_share']:.2f}"
                 if task in probe else "n/a" for task in ("explanation", "rationale")]
        options = [f"`{probe['train_overrides']}`"] if probe["train_overrides"] else []
        if probe.get("distill_overrides"):
            options.append(f"distil with `{probe['distill_overrides']}`")
        rows.append([probe["change"], "; ".join(options),
                     metric(probe["sequential"]["hr@1"]), metric(probe["sequential"]["ndcg@10"]),
                     metric(probe["topn"]["ndcg@10"]), *texts])
    header = [first_column, "training options beside config_demo.yaml", "sequential HR@1", "sequential NDCG@10",
              "top-N NDCG@10", "explanation BLEU-4 / ROUGE-L / distinct", "rationale BLEU-4 / ROUGE-L / distinct"]
    return markdown_table(header, rows, "llrrrrr")


@table("demo_probes", "demo_recipe_probes.json")
def demo_probes(results: Results) -> str:
    """How the demo's recipe was found: one seed each, every test user, each row one change on the one above."""
    run = results["demo_recipe_probes.json"]
    baselines = ", ".join(f"{BASELINE_LABEL[name]} {metric(value)}" for name, value in run["baselines"].items())
    return (f"{probe_table(run, 'student')}\n\nSeed {run['seed']}, all {run['users']:,} test users, this "
            f"project's protocol; sequential NDCG@10 of the baselines on the same users: {baselines}. "
            f"{run['measured']}. Each row: `{run['command']}`.")


@table("demo_text_probes", "demo_text_probes.json", optional=True)
def demo_text_probes(results: Results) -> str:
    """The demo's recipe against its texts' bar: one change to config_demo.yaml per row, the demo's rationales."""
    run = results["demo_text_probes.json"]
    first = run["probes"][0]
    baselines = ", ".join(f"{BASELINE_LABEL[name]} {metric(value)}" for name, value in first["baselines"].items())
    conditions = sorted({f"torch threads {probe['threads']}, {probe['load']}" for probe in run["probes"]})
    return (f"{probe_table(run, 'change to config_demo.yaml')}\n\nSeed 42, all {first['users']:,} test users, this "
            f"project's protocol; sequential NDCG@10 of the baselines on the same users: {baselines}. Texts: nucleus "
            f"sampling as the demo's report ({first['explanation']['examples']:,} explanations, "
            f"{first['rationale']['examples']:,} rationales; the rationales of `runs/demo/rationales` unless the "
            f"row distils its own). Measured "
            f"{run['measured']}; {'; '.join(conditions)}. "
            f"Each row: `.venv/bin/python benchmarks/bench_demo_probes.py --change CHANGE --train-overrides "
            f"OVERRIDES [--distill-overrides OPTIONS] --run-dir DIR`.")


RATIONALE_VARIANTS = {"all_tasks": "all four tasks (RDRec)", "no_rationale": "without rationale",
                      "ranking_only": "without both text tasks"}
RATIONALE_CELLS = ["sequential_ndcg@10", "sequential_hr@10", "topn_ndcg@10", "topn_hr@10"]


def difference_cell(entry: Mapping[str, Any]) -> str:
    """A paired difference: its mean and 95 % interval, signed."""
    low, high = entry["ci95"]
    return f"{entry['mean']:+.4f} [{low:+.4f}, {high:+.4f}]"


@table("rationale_effect", "rationale_effect.json")
def rationale_effect(results: Results) -> str:
    run = results["rationale_effect.json"]
    rows = [[RATIONALE_VARIANTS[name], f"`{variant['mixture']}`",
             *(seeded(mean_std(variant[cell])) for cell in RATIONALE_CELLS)] for name, variant in run["variants"].items()]
    rows += [[BASELINE_LABEL[name], "", *(metric(values[cell]) for cell in RATIONALE_CELLS)]
             for name, values in run["baselines"].items()]
    header = ["variant", "mixture", "sequential NDCG@10", "sequential HR@10", "top-N NDCG@10", "top-N HR@10"]
    differences = [[RATIONALE_VARIANTS[name], *(difference_cell(entry[cell]) for cell in RATIONALE_CELLS)]
                   for name, entry in run["paired_difference"].items()]
    seeds = join(next(iter(run["variants"].values()))["seeds"])
    return (f"{markdown_table(header, rows, 'llrrrr')}\n\nMean ± sample std over seeds {seeds}; "
            f"{int(run['users']):,} test users, this project's protocol; recipe `{run['recipe']}`, measured "
            f"{run['measured']}.\n\nPaired difference against all four tasks (the same seed), mean and 95 % "
            f"interval (Student's t):\n\n"
            f"{markdown_table(['variant', *header[2:]], differences, 'lrrrr')}")


table("ablation_project", "ablation.json")(lambda results: ablation_table(results, "project"))
table("ablation_paper", "ablation.json")(lambda results: ablation_table(results, "paper"))


@table("scaling", "scaling.json")
def scaling(results: Results) -> str:
    run = results["scaling.json"]
    rows = [[f"{point['catalog_size']:,}", str(point["history_length"]), str(point["prompt_tokens"]),
             f"{point['trie_nodes']:,}", f"{point['step_seconds']:.3f}", f"{point['examples_per_second']:.1f}",
             f"{point['generate_seconds']:.2f}", f"{point['users_per_second']:.1f}",
             f"{point['setup_peak_rss_mib']:.0f} / {point['generate_peak_rss_mib']:.0f} / {point['peak_rss_mib']:.0f}"]
            for sweep in ("catalog_size", "history_length") for point in run[sweep]]
    header = ["catalog", "history", "prompt tokens", "trie nodes", "step s", "examples/s", "generate s", "users/s",
              "peak MiB setup / generate / train"]
    options = ", ".join(f"{key} {value}" for key, value in run["options"].items())
    return f"{markdown_table(header, rows, 'rrrrrrrrl')}\n\nOptions: {options}."


@table("collaborative_ids", "collaborative_ids.json")
def collaborative_ids(results: Results) -> str:
    run = results["collaborative_ids.json"]
    rows = [[name, f"{case['items']:,}", f"{case['edges']:,}", f"{case['seconds']:.1f} ({case['graph_seconds']:.2f})",
             f"{case['peak_mib']:,.0f}", f"{case['leaves']:,}, {case['largest_leaf']}",
             ", ".join(f"{depth}: {count:,}" for depth, count in case["depth_histogram"].items())]
            for name, case in run["results"].items()]
    header = ["catalog", "items", "edges", "seconds (graph)", "peak MiB", "leaves, largest", "code lengths (items)"]
    return f"{markdown_table(header, rows, 'lrrrrll')}\n\n`{run['command']}`, {run['created']}; {run['machine']}."


@table("app", "app.json")
def app(results: Results) -> str:
    run = results["app.json"]
    served = run["recommend_with_explanations_served_s"]
    rows = [
        ["`rdrec-hf app` launch to the first HTTP 200 (imports, model, dataset, Gradio)",
         f"{run['startup_median_s']:.1f} s", join(run["startup_s"], lambda s: f"{s:.1f}")],
        [f"one \"Recommend\" with explanations and rationales, k={run['k']}, through the server",
         f"{run['recommend_with_explanations_served_median_s']:.2f} s",
         f"{min(served):.2f}-{max(served):.2f} s"],
        ["the same call in process", f"{run['recommend_with_explanations_in_process_median_s']:.2f} s", ""],
    ]
    return (f"{markdown_table(['what', 'median', 'runs'], rows, 'lrl')}\n\n"
            f"Model `{run['model']}`, dataset `{run['dataset']}`, {run['threads']} thread(s).")


BASELINE_LABEL = {"item_knn": "transition item-kNN", "sasrec": "SASRec", "popularity": "popularity"}


@table("student_vs_baselines", "student_vs_baselines.json", optional=True)
def student_vs_baselines(results: Results) -> str:
    """``bench_student_vs_baselines.py``: per dataset, the student's seeds beside the baselines on its users."""
    datasets = {name: run for name, run in results["student_vs_baselines.json"].items()
                if isinstance(run, dict) and "student" in run}
    rows, notes = [], []
    for dataset, run in datasets.items():
        student = run["student"]
        cpu = student.get("training_cpu_minutes") or [None] * len(student.get("training_minutes", []))
        spent = [minutes(wall) + ("" if used is None else f" ({minutes(used)} CPU)")
                 for wall, used in zip(student.get("training_minutes", []), cpu)]
        rows.append([dataset, f"student, {seeds_label(student['seeds'])}", seeded(mean_std(student["hr@10"])),
                     seeded(mean_std(student["ndcg@10"])), join(student["ndcg@10"], metric), ", ".join(spent)])
        for system, label in BASELINE_LABEL.items():
            spent = run[system].get("training_minutes")
            rows.append([dataset, label, metric(run[system]["hr@10"]),
                         metric(run[system]["ndcg@10"]), "", "" if spent is None else minutes(spent)])
        protocol = run.get("protocol", "").rstrip(".")
        bar = "" if "bar_met" not in run else f"; every seed at or above item-kNN: {'yes' if run['bar_met'] else 'no'}"
        notes.append(f"- {dataset}: {protocol}; budget {run['budget_cpu_minutes']} CPU minutes{bar}; "
                     f"`{run['command']}`")
    header = ["dataset", "system", "HR@10", "NDCG@10", "NDCG@10 per seed", "training minutes"]
    return markdown_table(header, rows, "llrrrr") + "\n\n" + "\n".join(notes)


PAIR = ("previous", "new")


@table("data_path", "data_path.json", optional=True)
def data_path(results: Results) -> str:
    """``bench_data_path.py``: every measure the file holds as previous / new numbers."""
    run = results["data_path.json"]

    def paired(values: Any) -> bool:
        return isinstance(values, dict) and all(isinstance(values.get(side), (int, float)) for side in PAIR)

    def speed_up(name: str, values: dict) -> str:  # times (``_s``, ``_ms...``) shrink, rates grow
        timed = (name.endswith("_s") and not name.endswith("per_s")) or "_ms" in name
        return ratio(*((values["previous"], values["new"]) if timed else (values["new"], values["previous"])))

    rows = [[f"`{name}`", *(f"{values[side]:,.2f}" for side in PAIR), speed_up(name, values)]
            for name, values in run.items() if paired(values)]
    record = "; ".join(str(run[key]) for key in ("machine", "date") if key in run)
    table_text = markdown_table(["measure", "previous", "new", "speed-up"], rows, "lrrr")
    overhead = run.get("step_overhead_ms")
    step = "" if overhead is None else (
        f"\n\nA training step ({overhead['model']}; median of {overhead['steps']}): `RDRecTrainer` "
        f"{overhead['trainer_step_ms']:.1f} ms, the bare loop of forward, backward and AdamW on the same batches "
        f"{overhead['bare_step_ms']:.1f} ms.")
    return f"{table_text}\n\n`{run.get('command', '')}` {record}{step}"


@table("gpu_check", "gpu_check.json", optional=True)
def gpu_check(results: Results) -> str:
    """The GPU check's record as written, one row per (flattened) key."""

    def flatten(value: Any, prefix: str = "") -> list[list[str]]:
        if isinstance(value, dict):
            return [row for key, item in value.items() for row in flatten(item, f"{prefix}{key}.")]
        return [[f"`{prefix[:-1]}`", json.dumps(value) if not isinstance(value, str) else value]]

    return markdown_table(["field", "value"], flatten(results["gpu_check.json"]), 'll')


@table("catalog_scaling", "catalog_scaling.json", optional=True)
def catalog_scaling(results: Results) -> str:
    """``bench_catalog_scaling.py``: the d_model-64 student's step, recommendation and load at each catalog size,
    catalog against sampled softmax; then exact top-10 alone, whole-catalog against chunked."""
    run = results["catalog_scaling.json"]

    def per_user(point: dict) -> str:
        return " / ".join(f"{point['recommend_ms_per_user'][batch]:.1f}" for batch in ("1", "64")
                          if batch in point["recommend_ms_per_user"])

    rows = [[f"{point['catalog']:,}", point["softmax"] + (", sparse rows" if point.get("sparse_embedding_gradients") else ""),
             f"{point['step_s']:.3f}", f"{point['peak_rss_mib']:.0f}",
             per_user(point), f"{point['recommend_peak_rss_mib']:.0f}", f"{point['load_s']:.2f}",
             f"{point['checkpoint_mib']:.0f}"] for point in run["points"]]
    header = ["catalog", "softmax", "step s", "train peak MiB", "top-10 ms/user (batch 1 / 64)",
              "recommend peak MiB", "load s", "checkpoint MiB"]
    commands = "; ".join(f"`{command}`" for command in run.get("commands", [run["command"]]))
    text = markdown_table(header, rows, "llrrrrrr") + f"\n\n{commands}. {run['machine']}, {run['date']}."
    topk = run.get("topk_points") or []
    if topk:
        top_rows = [[f"{point['catalog']:,}", str(point["batch"]),
                     "whole catalog" if point["chunk_size"] is None else f"chunks of {point['chunk_size']:,}",
                     f"{point['ms_per_user']:.1f}", f"{point['peak_rss_mib']:.0f}"] for point in topk]
        text += ("\n\nExact top-10 alone, the whole-catalog path against chunks with a running top-k:\n\n"
                 + markdown_table(["catalog", "batch", "path", "ms/user", "peak MiB"], top_rows, "lrlrr")
                 + f"\n\n`{run['topk_command']}`")
    sasrec = run.get("sasrec_points") or []
    if sasrec:
        sasrec_rows = [[f"{point['catalog']:,}", "full" if point["negatives"] is None else f"{point['negatives']:,} sampled",
                        f"{point['epoch_s']:.1f}", f"{point['peak_rss_mib']:.0f}"] for point in sasrec]
        text += ("\n\nThe SASRec start's first epoch (width 64, batch 128; its validation ranking of every user "
                 "included):\n\n" + markdown_table(["catalog", "softmax", "epoch s", "peak MiB"], sasrec_rows, "lrrr")
                 + f"\n\n`{run['sasrec_command']}`")
    return text


CATALOG_QUALITY_RUNS = ("item_ids_catalog_recipe.json", "item_ids_sampled_recipe.json",
                        "item_ids_sampled_sparse_recipe.json", "item_ids_sampled_pop_sparse_recipe.json",
                        "item_ids_sampled_fullsasrec_recipe.json")


@table("catalog_quality", *CATALOG_QUALITY_RUNS, optional=True)
def catalog_quality(results: Results) -> str:
    """``bench_item_ids.py --variant ...``: beauty's catalog recipe with its softmax against sampled-softmax
    variants of it; the same 5,000 test users."""
    catalog = sequential_results(results["item_ids_catalog_recipe.json"], "independent")["model"]["ndcg@10"]
    rows = []
    for name in CATALOG_QUALITY_RUNS:
        run = results[name]
        ndcg = sequential_results(run, "independent")["model"]["ndcg@10"]
        cpu = run["training_cpu_minutes"]["independent"]
        rows.append([run["variant"], " ".join(run["train_args"]) or "(the recipe)",
                     ", ".join(map(str, run["seeds_of"]["independent"])),
                     ", ".join(metric(value) for value in ndcg["values"]), seeded(ndcg), f"{ndcg['mean'] / catalog['mean']:.3f}x",
                     f"{sum(cpu) / len(cpu):.1f}"])
    header = ["variant", "training options beside the recipe", "seeds", "test NDCG@10 per seed", "mean",
              "against the catalog softmax", "CPU minutes (mean)"]
    return markdown_table(header, rows, "lllrrrr")


@table("serving", "serving.json", optional=True)
def serving(results: Results) -> str:
    """``bench_serving.py``: requests/s and latency of `rdrec-hf serve`, batched against unbatched, per concurrency."""
    run = results["serving.json"]
    rows = []
    for clients, modes in run["concurrency"].items():
        batched, unbatched = modes["batched"], modes["unbatched"]
        rows.append([clients, f"{batched['req_per_s']:.1f}", f"{unbatched['req_per_s']:.1f}",
                     ratio(batched["req_per_s"], unbatched["req_per_s"]),
                     f"{batched['p50_ms']:.0f} / {batched['p95_ms']:.0f} / {batched['p99_ms']:.0f}",
                     f"{unbatched['p50_ms']:.0f} / {unbatched['p95_ms']:.0f} / {unbatched['p99_ms']:.0f}",
                     f"{batched['errors']} / {unbatched['errors']}"])
    header = ["clients", "batched req/s", "unbatched req/s", "batched / unbatched", "batched p50 / p95 / p99 ms",
              "unbatched p50 / p95 / p99 ms", "errors"]
    same = run["identical_to_handler"]
    return (markdown_table(header, rows, "lrrrrrr") + f"\n\nModel `{run['model']}`, {run['requests']} requests per "
            f"level and mode, k={run['k']}, `--max_batch_size {run['max_batch_size']}`; the served top-k equal to the "
            f"in-process handler's for {same['equal']} of {same['checked']} requests. `{run.get('command', '')}`")


@table("batch_recommend", "batch_recommend.json", optional=True)
def batch_recommend(results: Results) -> str:
    """``bench_batch_recommend.py``: `recommend --users all` in one process and split over N by accelerate."""
    run = results["batch_recommend.json"]
    one = run["processes"]["1"]["users_per_s"]
    one_end_to_end = run["processes"]["1"]["end_to_end_users_per_s"]
    rows = [[processes, f"{entry['users_per_s']:.1f}", ratio(entry["users_per_s"], one), f"{entry['wall_s']:.1f}",
             ratio(entry["end_to_end_users_per_s"], one_end_to_end)] for processes, entry in run["processes"].items()]
    header = ["processes", "users/s ranking", "against one process", "wall s with start-up", "against one process"]
    return (markdown_table(header, rows, "lrrrr")
            + f"\n\n{run['users']:,} users, k={run['k']}, one torch thread a process; the merged file identical to "
            f"the one-process file: {'yes' if run['identical'] else 'no'}. `{run['command']}` ({run['date']}, load "
            f"average {run['load_average_end']} at the end)")


# -------------------------------------------------------------------------------------------- documents


def render_document(text: str, results: Results) -> str:
    """``text`` with every report block re-rendered from ``results``; ReportError on an unknown or unclosed
    block, or a block whose results files are absent."""
    closed = {match["name"] for match in BLOCK.finditer(text)}
    for name in OPENING.findall(text):
        if name not in closed:
            raise ReportError(f"block {name!r} has no closing <!-- /report:{name} -->")

    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in TABLES:
            raise ReportError(f"unknown block {name!r}; known: {', '.join(sorted(TABLES))}")
        missing = [f"benchmarks/results/{pattern}" for pattern in TABLES[name].missing(results)]
        if missing and not TABLES[name].optional:
            raise ReportError(f"block {name!r} needs {', '.join(missing)}, which is absent")
        body = f"*Not measured yet: {', '.join(missing)} is absent.*" if missing else TABLES[name].render(results)
        return f"<!-- report:{name} -->\n{body.rstrip()}\n<!-- /report:{name} -->"

    return BLOCK.sub(replace, text)


def load_results(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise ReportError(f"no results folder at {folder}")
    results = {}
    for path in sorted(folder.glob("*.json")):
        try:
            results[path.name] = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ReportError(f"{path} is not valid JSON: {error}") from error
    return results


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 and print a diff when a committed block differs from its render")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose documents are rendered")
    parser.add_argument("--results", type=Path, default=None,
                        help="the results folder (default: ROOT/benchmarks/results)")
    parser.add_argument("--documents", nargs="+", default=list(DOCUMENTS),
                        help="documents to render, relative to --root")
    return parser


def main(args: argparse.Namespace) -> int:
    try:
        results = load_results(args.results or args.root / "benchmarks" / "results")
        stale = []
        for name in args.documents:
            path = args.root / name
            if not path.is_file():
                raise ReportError(f"no document at {path}")
            text = path.read_text()
            try:
                rendered = render_document(text, results)
            except ReportError as error:
                raise ReportError(f"{name}: {error}") from error
            if rendered == text:
                continue
            if args.check:
                stale.append(name)
                sys.stdout.writelines(difflib.unified_diff(
                    text.splitlines(keepends=True), rendered.splitlines(keepends=True),
                    f"{name} (committed)", f"{name} (rendered from benchmarks/results)"))
            else:
                path.write_text(rendered)
                print(f"rewrote the report blocks of {name}")
    except ReportError as error:
        print(f"report: {error}", file=sys.stderr)
        return 2
    if stale:
        print(f"report --check: {', '.join(stale)} differ from benchmarks/results; run "
              "`.venv/bin/python benchmarks/report.py` and commit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(make_parser().parse_args()))
