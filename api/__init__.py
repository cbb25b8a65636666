"""The HTTP API: a thin FastAPI layer over the control plane's use cases."""
