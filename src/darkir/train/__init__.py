"""Training: :func:`darkir.train.run.train` checks a run's settings and paths, holds its files and runs a
:class:`~darkir.train.trainer.Trainer` (the loop, checkpoints, exact resume) on the modules around it:

- ``checks``: the training settings refused before any work (losses it cannot train with, no training set);
- ``sets``: the training and validation sets the options describe (paired folders or on-the-fly synthesis);
- ``sampler``: the global batches, the same for any number of processes; ``ddp``: the process group;
- ``step``: one optimizer step (the losses, AdamW and its cosine schedule, the grad scaler, clipping); ``losses``:
  the pixel and side-output losses, the detail anchor and the tone split;
- ``resume``: what continuing a run takes from its checkpoint and checks against it;
- ``runpaths``: where a run's files go, checked before any work, and whether a run continues or starts;
- ``runfiles``: the lock on ``save.path``, backups, stale temporaries, whole log lines; ``runlog``: JSONL and
  TensorBoard;
- ``validation``: the validation pairs restored and scored as ``darkir test`` does;
- ``stopping``: stopping after a step on Ctrl-C or SIGTERM, or after an error with the last checkpoint saved.
"""
