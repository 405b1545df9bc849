"""The frozen pass's engines by name: a stdlib module, so the CLI lists them without importing the
engines themselves (:mod:`zoo.frozen.choice` chooses among them)."""

ENGINES = ("auto", "torch", "onnxruntime")
