"""OpenTelemetry traces: in one process, and across processes to an OTLP receiver."""
