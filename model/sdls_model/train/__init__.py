"""Training sdls's own models: corpus, rows and noise, the loop, evaluation, and the `sdls train` command.

corpus.py (files -> filtered, split, decontaminated texts), objectives.py (rows laid out as the
engine decodes them; stage-1 mask noise, stage-2 edit noise; the loss), trainer.py (schedule,
checkpoints, resume, DDP), evaluate.py (held-out and HumanEval single-line infill), presets.py
(cpu / gpu / tiny), cli.py (the one command).
"""
