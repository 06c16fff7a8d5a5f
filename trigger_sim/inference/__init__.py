"""Inference as a service: a deadline on every call, a local fallback, a circuit breaker."""
