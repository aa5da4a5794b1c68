"""The ``collapse-diag`` command line (installed as the ``collapse_diag_cli`` package)."""
