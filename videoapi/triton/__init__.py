"""Triton Inference Server: the local launcher and the client the worker uses."""
