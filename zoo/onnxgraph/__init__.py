"""ONNX files from PyTorch modules, below both ``zoo export`` and the frozen-forward engine.

- :mod:`zoo.onnxgraph.onnxfile`: tracing, zoo's metadata, external data, ``onnx.checker``;
- :mod:`zoo.onnxgraph.static_dims`: shape arithmetic on fixed dimensions folded into constants;
- :mod:`zoo.onnxgraph.validation`: onnxruntime against PyTorch on real inputs.

Both the exporter (a run or a backbone for deployment) and :mod:`zoo.frozen` (a cut backbone
compiled for zoo's own frozen passes) trace, fold and validate the same way, so those steps
live here once.
"""
