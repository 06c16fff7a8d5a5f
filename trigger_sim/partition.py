"""Readout partitions: which source owns which part of the detector, how each packs its
part of an event into a fragment, and how a worker unpacks fragments back into arrays.

Tracker sources own phi sectors and send (module id, local coordinates) per hit, as a
silicon readout does; calorimeter sources own eta bands and send zero-suppressed towers.
Packing and unpacking live together because each is the other's inverse.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from trigger_sim.config import CaloConfig, FarmConfig, TrackerConfig
from trigger_sim.detector import CaloTowers, TrackerHits
from trigger_sim.errors import FragmentDataError
from trigger_sim.event import (
    Fragment,
    FragmentHeader,
    calo_source_id,
    is_calo_source,
    is_tracker_source,
    tracker_source_id,
)
from trigger_sim.kernels._jit import njit

_IPHI_BITS = 12
_IZ_BITS = 12
_MASK12 = (1 << 12) - 1
_PI = math.pi
_TWO_PI = 2 * math.pi


def source_ids(config: FarmConfig) -> list[int]:
    """Every readout source of the detector: an event is complete when all have sent."""
    return [tracker_source_id(s) for s in range(config.tracker.n_sectors)] + [
        calo_source_id(r) for r in range(config.calo.n_regions)
    ]


def _sectors(phi: np.ndarray, cfg: TrackerConfig) -> np.ndarray:
    return np.minimum(((phi.astype(np.float64) + np.pi) / (2 * np.pi) * cfg.n_sectors).astype(np.int64), cfg.n_sectors - 1)


def tracker_hit_order(hits: TrackerHits, cfg: TrackerConfig) -> np.ndarray:
    """Indices into `hits` in the order `unpack_tracker` returns them (sector by sector), so
    truth attached to simulated hits can follow them through the readout."""
    sector = _sectors(hits.phi, cfg)
    return np.concatenate([np.flatnonzero(sector == s) for s in range(cfg.n_sectors)]).astype(np.int64)


def pack_tracker(hits: TrackerHits, cfg: TrackerConfig) -> list[dict[str, np.ndarray]]:
    """Per tracker sector: module ids and local (u along r-phi, v along z) coordinates.

    Bit for bit the same as `pack_tracker_reference` (a compiled kernel does the per-hit work);
    hits of other dtypes than the simulation's take the reference.
    """
    dtypes = (hits.phi.dtype, hits.r_mm.dtype, hits.z_mm.dtype, hits.layer.dtype)
    if dtypes != (np.float32, np.float32, np.float32, np.int32):
        return pack_tracker_reference(hits, cfg)
    module, local, first = _pack_tracker_kernel(
        hits.phi, hits.r_mm, hits.z_mm, hits.layer, float(cfg.module_width_mm), float(cfg.module_length_mm),
        float(cfg.half_length_mm), int(cfg.n_sectors),
    )
    bounds = first.tolist()
    return [{"module_id": module[a:b], "local_mm": local[a:b]} for a, b in zip(bounds[:-1], bounds[1:])]


@njit(error_model="numpy")
def _pack_tracker_kernel(phi, r_mm, z_mm, layer, module_width_mm, module_length_mm, half_length_mm, n_sectors):
    """Module ids (uint32) and local coordinates (float32, (m, 2)) of the hits grouped by sector,
    hit order kept within a sector, and the start of each sector's run (n_sectors + 1 bounds).
    Hits whose sector is out of range (NaN phi) belong to no sector, as in the reference."""
    n = len(phi)
    sector = np.empty(n, np.int64)
    first = np.zeros(n_sectors + 1, np.int64)
    for i in range(n):
        s = _sector(np.float64(phi[i]), n_sectors)
        sector[i] = s
        if s >= 0:
            first[s + 1] += 1
    for s in range(n_sectors):
        first[s + 1] += first[s]
    fill = first[:-1].copy()
    module = np.empty(first[n_sectors], np.uint32)
    local = np.empty((first[n_sectors], 2), np.float32)
    for i in range(n):
        s = sector[i]
        if s < 0:
            continue
        phi64 = np.float64(phi[i])
        clamped = -_PI if phi64 < -_PI else (_PI if phi64 > _PI else phi64)
        arc = (clamped + _PI) * np.float64(r_mm[i])
        iphi = np.int64(np.floor(arc / module_width_mm))
        zpos = np.float64(z_mm[i]) + half_length_mm
        iz = min(max(np.int64(np.floor(zpos / module_length_mm)), 0), _MASK12)
        j = fill[s]
        fill[s] += 1
        module[j] = np.uint32(((np.int64(layer[i]) << (_IPHI_BITS + _IZ_BITS)) | (iz << _IPHI_BITS) | iphi) & 0xFFFFFFFF)
        local[j, 0] = arc - iphi * module_width_mm
        local[j, 1] = zpos - iz * module_length_mm
    return module, local, first


@njit(error_model="numpy")
def _sector(phi64, n_sectors):
    """`_sectors` of one hit; -1 where the reference's cast gives no valid sector (NaN or
    infinite phi: numpy's cast gives INT64_MIN there on x86)."""
    u = (phi64 + _PI) / _TWO_PI * n_sectors
    if not abs(u) < 9.2e18:
        return -1
    return min(np.int64(u), n_sectors - 1)


def pack_tracker_reference(hits: TrackerHits, cfg: TrackerConfig) -> list[dict[str, np.ndarray]]:
    """`pack_tracker` in plain numpy: the definition the compiled path is tested against."""
    phi64 = hits.phi.astype(np.float64)
    # float32 phi can round to just outside [-pi, pi]: clamp so module ids stay valid.
    arc = (np.minimum(np.maximum(phi64, -np.pi), np.pi) + np.pi) * hits.r_mm.astype(np.float64)
    iphi = np.floor(arc / cfg.module_width_mm).astype(np.int64)
    zpos = hits.z_mm.astype(np.float64) + cfg.half_length_mm
    iz = np.floor(zpos / cfg.module_length_mm).astype(np.int64)
    np.maximum(iz, 0, out=iz)
    np.minimum(iz, _MASK12, out=iz)
    module = hits.layer.astype(np.int64) << (_IPHI_BITS + _IZ_BITS)
    module |= iz << _IPHI_BITS
    module |= iphi
    module_u32 = module.astype(np.uint32)
    local = np.empty((len(arc), 2), np.float32)  # float64 differences rounded once, as astype does
    local[:, 0] = arc - iphi * cfg.module_width_mm
    local[:, 1] = zpos - iz * cfg.module_length_mm
    sector = _sectors(phi64, cfg)
    out = []
    for s in range(cfg.n_sectors):
        sel = sector == s
        out.append({"module_id": module_u32[sel], "local_mm": local[sel]})
    return out


def pack_calo(towers: CaloTowers, cfg: CaloConfig) -> list[dict[str, np.ndarray]]:
    """Per calorimeter eta band: ids and (em, had) energies of towers above zero suppression."""
    em = towers.em_gev.ravel()
    had = towers.had_gev.ravel()
    tower = np.flatnonzero((em != 0) | (had != 0))  # ascending, so each band is one slice
    energy = np.empty((len(tower), 2), np.float32)
    energy[:, 0] = em[tower]
    energy[:, 1] = had[tower]
    band_size = cfg.n_eta // cfg.n_regions * cfg.n_phi
    bounds = np.searchsorted(tower, np.arange(cfg.n_regions + 1) * band_size).tolist()
    tower_u32 = tower.astype(np.uint32)
    return [
        {"tower_id": tower_u32[a:b], "energy_gev": energy[a:b]}
        for a, b in zip(bounds[:-1], bounds[1:])
    ]


def make_fragments(
    config: FarmConfig, hits: TrackerHits, towers: CaloTowers, run_number: int, l1_id: int, bcid: int, l1_time_ns: int
) -> list[Fragment]:
    """All fragments of one event, in `source_ids` order."""
    payloads = pack_tracker(hits, config.tracker) + pack_calo(towers, config.calo)
    return [
        Fragment(FragmentHeader(run_number, l1_id, bcid, sid, l1_time_ns), arrays)
        for sid, arrays in zip(source_ids(config), payloads)
    ]


def _array(fragment: Fragment, name: str, dtype: type, ndim: int) -> np.ndarray:
    arr = fragment.arrays.get(name)
    if arr is None or arr.dtype != dtype or arr.ndim != ndim:
        raise FragmentDataError(
            f"source 0x{fragment.header.source_id:x}, L1 id {fragment.header.l1_id}: "
            f"expected array '{name}' of {np.dtype(dtype).name} with {ndim} dimension(s)"
        )
    return arr


def unpack_tracker(fragments: Iterable[Fragment], cfg: TrackerConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Global hit coordinates (layer, r, phi, z) from every tracker fragment of an event."""
    modules, locals_ = [], []
    for frag in fragments:
        if is_tracker_source(frag.header.source_id):
            modules.append(_array(frag, "module_id", np.uint32, 1))
            local = _array(frag, "local_mm", np.float32, 2)
            if local.shape != (len(modules[-1]), 2):
                raise FragmentDataError(f"source 0x{frag.header.source_id:x}: local_mm shape {local.shape} does not match module_id")
            locals_.append(local)
    module = np.concatenate(modules).astype(np.int64) if modules else np.empty(0, np.int64)
    local = np.concatenate(locals_) if locals_ else np.empty((0, 2), np.float32)
    layer = module >> (_IPHI_BITS + _IZ_BITS)
    radii = np.asarray(cfg.layer_radii_mm)
    if len(layer) and layer.max() >= len(radii):
        raise FragmentDataError(f"tracker module id names layer {layer.max()}, detector has {len(radii)} layers")
    iz = (module >> _IPHI_BITS) & _MASK12
    iphi = module & _MASK12
    r = radii[layer]
    phi = (iphi * cfg.module_width_mm + local[:, 0]) / r - np.pi
    z = iz * cfg.module_length_mm + local[:, 1] - cfg.half_length_mm
    return layer.astype(np.int32), r.astype(np.float32), phi.astype(np.float32), z.astype(np.float32)


def unpack_calo(fragments: Iterable[Fragment], cfg: CaloConfig) -> tuple[np.ndarray, np.ndarray]:
    """Dense (em, had) tower grids from every calorimeter fragment of an event."""
    size = cfg.n_eta * cfg.n_phi
    em = np.zeros(size, np.float32)
    had = np.zeros(size, np.float32)
    for frag in fragments:
        if is_calo_source(frag.header.source_id):
            ids = _array(frag, "tower_id", np.uint32, 1)
            energy = _array(frag, "energy_gev", np.float32, 2)
            if energy.shape != (len(ids), 2):
                raise FragmentDataError(f"source 0x{frag.header.source_id:x}: energy_gev shape {energy.shape} does not match tower_id")
            if len(ids) and ids.max() >= size:
                raise FragmentDataError(f"source 0x{frag.header.source_id:x}: tower id {ids.max()} outside the {size}-tower grid")
            em[ids] = energy[:, 0]
            had[ids] = energy[:, 1]
    return em.reshape(cfg.n_eta, cfg.n_phi), had.reshape(cfg.n_eta, cfg.n_phi)
