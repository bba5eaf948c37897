"""Distil reviews into RDRec rationales with a teacher LM.

    python recipes/distill.py --config recipes/all_beauty/distill/config_smollm2.yaml [--limit 100 ...]
    accelerate launch --multi_gpu --num_processes 2 recipes/distill.py --config ...

The program is `rdrec_hf.scripts.distill` (the same as `rdrec-hf distill`): `--help` lists its options;
the YAML given with `--config` sets them and the command line overrides the YAML.
"""

from rdrec_hf.scripts.distill import main, make_parser
from rdrec_hf.scripts import run_recipe

if __name__ == "__main__":
    run_recipe(make_parser(), main)
