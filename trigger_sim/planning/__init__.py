"""Capacity planning: a discrete-event model of the farm (SimPy) calibrated on real runs.

`spec` (what farm is modelled), `calibration` (measured inputs and their provenance),
`arrivals`, `sampling`, `servers` (dynamic batching, kills), `farm_model` (the simulation),
`model_summary` (the farm's own summary shape), `sizing` (the smallest farm for a budget).
"""
