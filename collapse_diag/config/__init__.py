"""What a run is asked to do: every setting declared once (``settings``, ``declare``), presets."""
