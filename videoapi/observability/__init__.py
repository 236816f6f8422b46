"""Metrics (Prometheus), traces (OpenTelemetry) and JSON logs joined to them; the rest of the code calls these."""
