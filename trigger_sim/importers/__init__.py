"""Importers of external event data into trigger-sim recordings (`trigger_sim.recording`).

- `ispy`: CMS iSpy event-display files (.ig), reading and parsing.
- `ispy_convert`: CMS events onto this project's detector: fragments plus CMS metadata.
- `trackml_csv`, `trackml_geometry`, `trackml_event`: TrackML CSV events (tables, the
  TrackML detector's volumes and layers, one event's checked tables).
- `trackml_convert`: TrackML barrel hits onto this project's tracker, plus the truth.
"""
