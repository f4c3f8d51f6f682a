"""Engines: the same featurization and training on one process or on Ray.

- :mod:`~edgeintent.engines.featurize`: ``features build --engine local|ray``: events →
  :func:`~edgeintent.toolkit.features.windows.featurize_batch` per user bucket → a sharded Parquet samples
  data set (:func:`read_samples_dir` reads it back);
- :mod:`~edgeintent.engines.ray_train`: ``train --engine ray --workers N``: Ray Train's ``TorchTrainer``
  (gloo, CPU) runs the toolkit's own training loop data-parallel;
- :mod:`~edgeintent.engines.session`: the local Ray session (logical CPUs, temp dir, side effects off) and
  the time limit on every job.

Ray is the optional extra ``[ray]``; it is imported inside the functions that need it.
"""
