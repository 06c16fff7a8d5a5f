"""trigger-sim: an emulated High-Level-Trigger farm with inference as a service.

The `trigger_sim` package is the library (event model, wire format, detector simulation,
feature kernels, models, inference client, trigger menu). It opens no sockets; the
processes and ZeroMQ plumbing live in the `farm` package.
"""

__version__ = "0.1.0"
