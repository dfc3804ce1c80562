"""Train the toy policy (a subprocess of test_trainer.py): run_toy_training.py OUT [--resume]."""

from __future__ import annotations

import sys

import torch
from toy import toy_config, toy_trainer

if __name__ == "__main__":
    torch.set_num_threads(1)
    config = toy_config(output_dir=sys.argv[1], steps=40, save_every=2, advantage="infopo")
    toy_trainer(config).train(resume="--resume" in sys.argv)
