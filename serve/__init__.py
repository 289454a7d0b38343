"""Serving: Ray Serve deployments that score users with ONNX Runtime."""
