"""Live metrics out of a running test: a Prometheus endpoint and OTLP export (`live.py` names them)."""
