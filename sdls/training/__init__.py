"""Seed Diffusion's last two training stages, which need tree-sitter and the server's clean-up rules.

`train_command.py` (`sdls train --stage base|order|onpolicy`), `spans.py` (training spans with
def-use links), `order.py` and `onpolicy.py` (the stages), `verifier.py` (what on-policy training
may learn from), `stage_io.py` (corpus, model, outputs), `bench_stages.py` (`sdls bench stages`).
The torch-only parts are in `sdls_model.train` (trajectories, order_stage, onpolicy_stage, ...).
"""
