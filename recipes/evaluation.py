"""Evaluate a trained RDRec student under this project's protocol (metrics.json + report.md), and under the
paper's as well when `protocols` names it (metrics_paper.json + report_paper.md).
(Not named evaluate.py: a script of that name in recipes/ would shadow the `evaluate` library.)

    accelerate launch --num_processes 1 recipes/evaluation.py \\
        --config recipes/beauty/evaluation/config_full.yaml [--model_name_or_path runs/beauty/full ...]

The program is `rdrec_hf.scripts.evaluation` (the same as `rdrec-hf evaluate`): `--help` lists its options;
the YAML given with `--config` sets them and the command line overrides the YAML.
"""

from rdrec_hf.scripts.evaluation import main, make_parser
from rdrec_hf.scripts import run_recipe

if __name__ == "__main__":
    run_recipe(make_parser(), main)
