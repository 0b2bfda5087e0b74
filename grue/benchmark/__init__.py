"""``grue benchmark``: the GRUE protocol as one resumable command.

- ``plan``: the cells (task x seed x stage) of a benchmark, each with its resolved settings, its fingerprint, the
  commands it stands for and its cost per iteration.
- ``cell``: one cell's work, run as its own process on any launcher: train (resuming its checkpoint), evaluate on the
  task's benchmark split, copy results.json and samples.jsonl into the submission folder, record it done.
- ``launch``: the launchers, each on an existing engine: local subprocesses, SLURM through submitit, Ray tasks.
- ``run``: the command: plan, check what earlier runs left, launch what is not done, write submission.yaml.
- ``state``: the benchmark's work folder (plan.json, one folder per cell) and ``grue benchmark status``.
"""
