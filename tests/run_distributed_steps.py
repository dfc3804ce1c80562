"""Two training steps of the toy policy, under torchrun or alone (a subprocess of test_distributed.py).

run_distributed_steps.py OUT VARIANT: writes OUT/initial.pt and OUT/params.pt (the trainable weights
before and after the steps) and OUT/metrics.jsonl from the main process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from toy import toy_config, toy_trainer

VARIANTS = {
    "full-infopo": dict(advantage="infopo", loss_aggregation="token-mean"),
    "lora-grpo-kl": dict(
        advantage="grpo",
        loss_aggregation="seq-mean-token-mean",
        lora=True,
        lora_target_modules=["q_proj", "v_proj"],
        kl_coef=0.1,
        ppo_epochs=2,
    ),
}

if __name__ == "__main__":
    torch.set_num_threads(1)
    output, variant = sys.argv[1], sys.argv[2]
    config = toy_config(
        output_dir=output,
        steps=2,
        tasks_per_step=4,
        group_size=4,
        max_turns=3,
        max_new_tokens=3,
        micro_batch_size=3,  # 8 trajectories per process: micro-batches of 3, 3 and 2
        **VARIANTS[variant],
    )
    trainer = toy_trainer(config)
    if trainer.accelerator.is_main_process:
        Path(output).mkdir(parents=True, exist_ok=True)
        torch.save(trainer._trainable_state(), f"{output}/initial.pt")
    trainer.train()
    if trainer.accelerator.is_main_process:
        torch.save(trainer._trainable_state(), f"{output}/params.pt")
