"""Importers of external event data into trigger-sim recordings (`trigger_sim.recording`).

- `ispy`: CMS iSpy event-display files (.ig), reading and parsing.
- `ispy_convert`: CMS events onto this project's detector: fragments plus CMS metadata.
"""
