"""The metrics service, the exec dashboard and the metrics API."""
