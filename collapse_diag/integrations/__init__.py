"""Integrations with training frameworks (each needs its framework installed).

* :mod:`collapse_diag.integrations.lightning`: ``CollapseCallback`` for Lightning
  (``pip install "collapse-diag[lightning]"``).
"""
