"""Export: compile the fitted pipeline to one ONNX graph, check it, register it."""
