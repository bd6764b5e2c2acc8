"""OpenTelemetry: the tracer and its provider policy, span trees as data, usage counted from spans."""
