"""The farm: processes and ZeroMQ plumbing around the `trigger_sim` library."""
