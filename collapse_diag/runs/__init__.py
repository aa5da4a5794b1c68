"""Many analyses: models side by side, a training run over time, latent matching across models.

``comparison`` and ``comparison_sources``; ``track``, ``trajectory``,
``trajectory_fields`` and ``monitor``; ``latent_matching``. Each returns its
result; writing documents is ``render``'s job (one layer up).
"""
