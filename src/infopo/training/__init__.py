"""Training: the config (config.py), the InfoPO/GRPO trainer (trainer.py) and its metrics (metrics.py)."""
