"""Step 1 of the flow: from files to (model, inputs, labels).

``checkpoint`` (load/save, the native format), ``model_building`` (the API every
reader shares: read a payload, find the weights, build the model), ``adapters/``
(Lightning, pythae, TorchScript), ``checkpoint_kinds`` (what a path holds),
``factory`` (the rule for factories named by a file), ``files`` and
``torch_files`` (bounded, safe reads), ``data`` (inputs, and slicing them along
the example axis), ``labels`` (known factors). Imports only ``runtime``,
``config`` and ``exceptions``.
"""
