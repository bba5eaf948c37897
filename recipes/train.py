"""Train the RDRec student on the four-task mixture.

    accelerate launch --config_file recipes/accelerate_configs/ddp.yaml recipes/train.py \\
        --config recipes/beauty/train/config_full.yaml [--any_option value ...]

The program is `rdrec_hf.scripts.train` (the same as `rdrec-hf train`): `--help` lists its options;
the YAML given with `--config` sets them and the command line overrides the YAML.
"""

from rdrec_hf.scripts.train import main, make_parser
from rdrec_hf.scripts import run_recipe

if __name__ == "__main__":
    run_recipe(make_parser(), main)
