"""Training (RESET step 6): continued fine-tuning and the MTL baseline, via TRL + peft LoRA.

* :mod:`reset_core.training.config`: :class:`TrainConfig`, every hyperparameter with
  its help text (the Train page and ``reset-studio train`` both read it).
* :mod:`reset_core.training.trainer`: builds the model (fresh LoRA, or an existing
  adapter continued with ``is_trainable=True``) and TRL's ``SFTTrainer``.
* :mod:`reset_core.training.worker`: the worker-process entry: live metrics as
  shards, cancel, checkpoints and resume, atomic outputs, clear failures.
* :mod:`reset_core.training.launch`: the app side: launch a run from a curated set,
  follow it, register the finished model with its lineage.
* :mod:`reset_core.training.queries`: runs, live metrics, models and their lineage.
"""
