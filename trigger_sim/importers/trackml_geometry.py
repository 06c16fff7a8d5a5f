"""The TrackML detector's volumes and layers, and which of them this project's tracker has.

The TrackML detector (Kaggle TrackML challenge) has a barrel and endcaps for each of three
sub-detectors. Its barrel is ten cylinders, and so is this project's tracker
(`tracker.layer_radii_mm`, 32 to 1000 mm): they map one to one, innermost first.

    volume  part                    layer ids         here
    8       pixel barrel            2, 4, 6, 8        layers 0-3
    13      short-strip barrel      2, 4, 6, 8        layers 4-7
    17      long-strip barrel       2, 4              layers 8-9
    7, 9    pixel endcaps (-z, +z)  2, 4, ..., 14     not in this geometry
    12, 14  short-strip endcaps     2, 4, ..., 12     not in this geometry
    16, 18  long-strip endcaps      2, 4, ..., 12     not in this geometry
"""

from __future__ import annotations

import numpy as np

# (volume_id, layer_id) of the barrel layers, innermost first: index = this project's layer.
BARREL_LAYERS: tuple[tuple[int, int], ...] = (
    (8, 2), (8, 4), (8, 6), (8, 8),
    (13, 2), (13, 4), (13, 6), (13, 8),
    (17, 2), (17, 4),
)
ENDCAP_LAYERS: dict[int, tuple[int, ...]] = {
    7: tuple(range(2, 15, 2)), 9: tuple(range(2, 15, 2)),
    12: tuple(range(2, 13, 2)), 14: tuple(range(2, 13, 2)),
    16: tuple(range(2, 13, 2)), 18: tuple(range(2, 13, 2)),
}
ENDCAP_VOLUMES: tuple[int, ...] = tuple(sorted(ENDCAP_LAYERS))
NOT_BARREL = -1


def _keys(volume: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """One int64 per (volume, layer) pair; ids outside 0..2**31 never match a known pair."""
    inside = (volume >= 0) & (volume < 2**31) & (layer >= 0) & (layer < 2**31)
    return np.where(inside, (volume.astype(np.int64) << 32) | layer.astype(np.int64), -1)


_BARREL_KEYS = _keys(np.array([v for v, _ in BARREL_LAYERS]), np.array([lay for _, lay in BARREL_LAYERS]))
_ENDCAP_KEYS = np.array([(v << 32) | lay for v, layers in ENDCAP_LAYERS.items() for lay in layers], dtype=np.int64)


def barrel_layer(volume: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """This project's layer index (0..9) of each hit, NOT_BARREL for endcap or unknown ids."""
    keys = _keys(volume, layer)
    index = np.full(len(keys), NOT_BARREL, dtype=np.int64)
    for i, key in enumerate(_BARREL_KEYS):
        index[keys == key] = i
    return index


def is_known(volume: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """Whether each (volume, layer) pair exists in the TrackML detector."""
    keys = _keys(volume, layer)
    return np.isin(keys, _BARREL_KEYS) | np.isin(keys, _ENDCAP_KEYS)
