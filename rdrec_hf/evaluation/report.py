"""Evaluation reports: ``metrics.json``, a markdown table, seed aggregation and training curves.

Results are the nested dictionaries `rdrec_hf.evaluation.evaluate_model` returns::

    {task: {"model": {metric: value}, "leak_rule": {...}, "popularity": {...}, "item_knn": {...},
            "skipped_baselines": {name: reason}, "num_examples": n, "protocol": str}}

(baselines, those of ``EvaluationConfig.baselines``, only for the ranking tasks). `aggregate_seeds` turns several of them into the same shape with
every number replaced by ``{"mean", "std", "values"}``; every function here accepts both shapes.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..data.item_graph import TRANSITION_WINDOW
from .protocols import PROTOCOL_TITLES, EvalProtocol, protocol_files

SYSTEM_LABELS = {  # table rows, in this order: the model, then every `Baseline`
    "model": "RDRec student",
    "leak_rule": "leak rule (max history id + 1, ...)",
    "popularity": "popularity",
    "item_knn": f"transition item-kNN (training pairs at most {TRANSITION_WINDOW} positions apart)",
    "sasrec": "SASRec (full softmax, early stopping on validation)",
}
METRIC_LABELS = {
    "bleu-1": "BLEU-1",
    "bleu-4": "BLEU-4",
    "rouge-1": "ROUGE-1",
    "rouge-2": "ROUGE-2",
    "rouge-l": "ROUGE-L",
    "nmt-rouge-1": "ROUGE-1 (reference's)",
    "nmt-rouge-2": "ROUGE-2 (reference's)",
    "nmt-rouge-l": "ROUGE-L (reference's)",
    "distinct_share": "distinct share",
    "looping_share": "looping share",
}
OUTPUT_SHARE_LABELS = {  # the paper protocol's free beams: what became of the generated sequences
    "invalid_share": "no catalog id (misses)",
    "history_share": "the user's history (removed)",
    "outside_candidates_share": "outside the candidates (misses)",
}

TRAINING_CURVES_FILE = "training_curves.png"  # written beside every trained model, embedded in reports


def aggregate_seeds(results_per_seed: Sequence[Mapping]) -> dict:
    """Mean and spread of every number across runs with different seeds.

    Each number becomes ``{"mean": m, "std": s, "values": [...]}`` with ``s`` the sample standard deviation
    (``None`` for a single run: one run shows no spread). Strings and lists (protocols, samples) are taken
    from the first run. All runs must have the same keys; a difference raises ``ValueError`` naming the key.
    """
    if not results_per_seed:
        raise ValueError("no results to aggregate")
    return _aggregate(list(results_per_seed), path="results")


def paired_difference(variant: Sequence[float], reference: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean of the per-seed differences ``variant - reference`` with its two-sided ``confidence`` interval (Student's
    t over the seeds, which pair the runs: the same seed draws the same start and data order).

    Returns ``{"per_seed", "mean", "ci95": [low, high]}``; the interval is None for a single seed.
    """
    from scipy import stats

    if len(variant) != len(reference) or not variant:
        raise ValueError(f"paired runs needed: got {len(variant)} and {len(reference)} values")
    differences = [a - b for a, b in zip(variant, reference)]
    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return {"per_seed": differences, "mean": mean, "ci95": None}
    half = stats.t.ppf(0.5 + confidence / 2, len(differences) - 1) * statistics.stdev(differences) / len(differences) ** 0.5
    return {"per_seed": differences, "mean": mean, "ci95": [mean - half, mean + half]}


def _aggregate(nodes: list, path: str):
    first = nodes[0]
    if isinstance(first, Mapping):
        for index, node in enumerate(nodes[1:], start=1):
            keys = sorted(node) if isinstance(node, Mapping) else f"a {type(node).__name__}"
            if keys != sorted(first):
                raise ValueError(f"run {index} differs from run 0 at {path}: keys {keys} vs {sorted(first)}")
        return {key: _aggregate([node[key] for node in nodes], f"{path}.{key}") for key in first}
    if _is_number(first):
        if not all(_is_number(node) for node in nodes):
            raise ValueError(f"{path} is a number in run 0 but not in every run")
        values = [float(node) for node in nodes]
        spread = statistics.stdev(values) if len(values) > 1 else None
        return {"mean": statistics.fmean(values), "std": spread, "values": values}
    return first


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_value(value) -> str:
    """``0.1234`` for a number, ``0.1234 ± 0.0056`` for an aggregated one, ``-`` when absent."""
    if value is None:
        return "-"
    if isinstance(value, Mapping):
        if value["std"] is None:
            return f"{value['mean']:.4f}"
        return f"{value['mean']:.4f} ± {value['std']:.4f}"
    return f"{value:.4f}"


def _metric_sort_key(name: str):
    """hr@k columns first, then ndcg@k, each by k; other metrics in `METRIC_LABELS` order."""
    if "@" in name:
        prefix, k = name.split("@")
        return (0 if prefix == "hr" else 1, int(k), name)
    order = list(METRIC_LABELS)
    return (2, order.index(name) if name in order else len(order), name)


def _metric_label(name: str) -> str:
    if "@" in name:
        prefix, k = name.split("@")
        return f"{prefix.upper()}@{k}"
    return METRIC_LABELS.get(name, name)


def count_value(value) -> int:
    """A count from per-seed results or its mean from aggregated ones."""
    return int(value["mean"] if isinstance(value, Mapping) else value)


def markdown_tables(results: Mapping) -> str:
    """One markdown table per task: a row per system (the model, then each baseline) and a column per metric.

    A skipped task gets its reason instead of a table; baselines that could not run are counted and named.
    """
    sections = []
    for task, task_results in results.items():
        if "skipped" in task_results:
            sections.append(f"### {task}\n\nNot evaluated: {task_results['skipped']}.")
            continue
        systems = [system for system in SYSTEM_LABELS if system in task_results]
        metric_names = sorted({name for system in systems for name in task_results[system]}, key=_metric_sort_key)
        lines = [f"### {task} ({count_value(task_results['num_examples']):,} examples)", ""]
        if task_results.get("protocol"):
            lines += [task_results["protocol"], ""]
        missing_ids = count_value(task_results.get("missing_ids", 0))
        if missing_ids:
            lines += [f"Ranking slots the beams left empty (counted as misses): {missing_ids}.", ""]
        shares = [f"{label}: {format_value(task_results[key])}" for key, label in OUTPUT_SHARE_LABELS.items()
                  if key in task_results]
        if shares:
            lines += ["Shares of the generated outputs: " + "; ".join(shares) + ".", ""]
        skipped = task_results.get("skipped_baselines") or {}
        if skipped:
            reasons = "; ".join(f"{SYSTEM_LABELS.get(name, name)}: {reason}" for name, reason in skipped.items())
            lines += [f"Baselines not run: {len(skipped)} ({reasons}).", ""]
        lines.append("| system | " + " | ".join(_metric_label(name) for name in metric_names) + " |")
        lines.append("|---|" + "---:|" * len(metric_names))
        for system in systems:
            cells = [format_value(task_results[system].get(name)) for name in metric_names]
            lines.append(f"| {SYSTEM_LABELS[system]} | " + " | ".join(cells) + " |")
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def markdown_samples(results: Mapping) -> str:
    """The example predictions each task keeps (``"samples"``), one bullet list per example."""
    lines = []
    for task, task_results in results.items():
        if not task_results.get("samples"):
            continue
        lines += [f"### {task}", ""]
        for sample in task_results["samples"]:
            lines += [f"#### user {sample['user_id']}" if "user_id" in sample else "#### example", ""]
            lines += [f"- **{key}**: {_inline(value)}" for key, value in sample.items() if key != "user_id"]
            lines.append("")
    return "\n".join(lines).rstrip()


def _inline(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_inline(entry) for entry in value)
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("\n", " ")


def write_report(
    results: Mapping,
    out_dir: str | Path,
    *,
    title: str = "RDRec evaluation",
    notes: Sequence[str] = (),
    curves_png: str | None = None,
    protocol: EvalProtocol | str = EvalProtocol.PROJECT,
) -> dict[str, Path]:
    """Write ``metrics.json`` (``results`` as given, example predictions included) and ``report.md``, or
    the files of another ``protocol`` (`protocol_files`); the title names the protocol.

    Args:
        results: `evaluate_model` output or `aggregate_seeds` output.
        out_dir: created if missing.
        notes: sentences shown as bullets under the title (e.g. how top-N candidates were chosen).
        curves_png: file name, relative to ``out_dir``, of a training-curve PNG to embed.
    Returns:
        ``{"metrics": path, "report": path}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_file, report_file = protocol_files(protocol)
    paths = {"metrics": out_dir / metrics_file, "report": out_dir / report_file}
    paths["metrics"].write_text(json.dumps(results, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    parts = [f"# {title} ({PROTOCOL_TITLES[EvalProtocol(protocol)]})"]
    if notes:
        parts.append("\n".join(f"- {note}" for note in notes))
    parts.append("## Metrics\n\nHR and NDCG in [0, 1]; BLEU and ROUGE x100; distinct share = distinct texts / texts; "
                 "looping share = texts with a token 4 times in a row or a 3-gram 3 times / texts.")
    parts.append(markdown_tables(results))
    if curves_png:
        parts.append(f"## Training curves\n\n![training and validation loss]({curves_png})")
    samples = markdown_samples(results)
    if samples:
        parts.append("## Sample predictions\n\n" + samples)
    paths["report"].write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return paths


def _loss_series(log_history: Sequence[Mapping], prefix: str) -> dict[str, tuple[list[float], list[float]]]:
    """``{key: (steps, values)}`` for ``prefix`` and every ``prefix_<task>`` key; entries without a step
    or with a non-finite value are left out of that series."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    for entry in log_history:
        step = entry.get("step")
        if step is None:
            continue
        for key, value in entry.items():
            if (key == prefix or key.startswith(prefix + "_")) and _is_number(value) and math.isfinite(value):
                steps, values = series.setdefault(key, ([], []))
                steps.append(step)
                values.append(value)
    return series


def plot_training_curves(log_history: Sequence[Mapping], path: str | Path) -> dict[str, int]:
    """PNG of the training loss (left) and validation loss (right), overall and per task, against the step.

    ``log_history`` is a transformers ``TrainerState.log_history``: entries with ``"step"`` and some of
    ``"loss"``, ``"loss_<task>"``, ``"eval_loss"``, ``"eval_loss_<task>"`` (the final ``"train_loss"``
    summary is not a curve point). A panel with nothing logged says so instead of failing.
    Returns the number of points plotted per key.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    panels = [("loss", "training loss"), ("eval_loss", "validation loss")]
    series_per_panel = [_loss_series(log_history, prefix) for prefix, _ in panels]
    labels_per_panel = [
        {key: "all tasks" if key == prefix else key[len(prefix) + 1 :] for key in series}
        for (prefix, _), series in zip(panels, series_per_panel)
    ]
    # One colour per task in both panels, even when a task is missing from one of them.
    all_labels = sorted(
        {label for labels in labels_per_panel for label in labels.values()},
        key=lambda label: (label != "all tasks", label),
    )
    colour = {label: f"C{position % 10}" for position, label in enumerate(all_labels)}

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    plotted: dict[str, int] = {}
    for axis, (_, title), series, labels in zip(axes, panels, series_per_panel, labels_per_panel):
        for key, (steps, values) in sorted(series.items(), key=lambda entry: all_labels.index(labels[entry[0]])):
            marker = "o" if len(steps) < 20 else None
            axis.plot(steps, values, marker=marker, label=labels[key], color=colour[labels[key]])
            plotted[key] = len(steps)
        if series:
            axis.legend()
        else:
            axis.text(0.5, 0.5, "nothing logged", ha="center", va="center", transform=axis.transAxes)
        axis.set(title=title, xlabel="step", ylabel="loss")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return plotted
