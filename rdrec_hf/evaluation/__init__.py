"""Evaluation: pure metric functions, baselines and the evaluation loop. Never imports the trainer."""
