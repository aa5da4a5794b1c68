"""How a run runs: seeded randomness (``rng``), progress bars, processes (``distributed``).

The lowest layer besides ``exceptions`` and ``config``: it imports nothing else of the package.
"""
