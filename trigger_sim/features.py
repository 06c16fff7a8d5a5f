"""From kernel outputs to trigger objects and model inputs.

Tracks (from the GNN edge scores, `walk_tracks` or `build_tracks`, and `fit_helices`) give the primary vertex
and the charged activity of each calorimeter jet; those and the jet's calorimeter shape are
the jet tagger's inputs. An electron candidate is an EM cluster with a track pointing at it:
tracks are compared with clusters at the calorimeter's radius, where the field has bent them.
Plain numpy over small arrays (tens of jets and clusters, hundreds of tracks).
"""

from __future__ import annotations

import numpy as np

from trigger_sim.detector import CALO_RADIUS_MM, curvature_radius_mm
from trigger_sim.kernels.calo_jets import JET_EM_FRACTION, JET_ETA, JET_N_TOWERS, JET_PHI, JET_PT, JET_WIDTH
from trigger_sim.kernels.em_clusters import CLUSTER_ETA, CLUSTER_PHI
from trigger_sim.kernels.helix_fit import TRACK_CHARGE, TRACK_CHI2_NDF, TRACK_D0, TRACK_ETA, TRACK_PHI, TRACK_PT, TRACK_Z0
from trigger_sim.models.jet_tagger import N_FEATURES

CORE_DR = 0.1  # tau-like core: tracks within this of the jet axis
VERTEX_BIN_MM = 5.0
VERTEX_PT_CAP_GEV = 50.0  # a single mismeasured stiff track must not pick the vertex


def primary_vertex_z_mm(tracks: np.ndarray, min_pt_gev: float = 1.0) -> float:
    """z of the hard collision: the z0 bin (VERTEX_BIN_MM) of tracks with the largest sum pT².

    With no track above `min_pt_gev`, 0 (the nominal interaction point).
    """
    good = tracks[np.isfinite(tracks[:, TRACK_PT]) & (tracks[:, TRACK_PT] > min_pt_gev)] if len(tracks) else tracks
    if len(good) == 0:
        return 0.0
    z0 = good[:, TRACK_Z0]
    bins = np.floor(z0 / VERTEX_BIN_MM).astype(np.int64)
    weight = np.minimum(good[:, TRACK_PT], VERTEX_PT_CAP_GEV) ** 2
    # Sum pT² per bin including both neighbours: a vertex straddling a bin edge is not split.
    uniq, inverse = np.unique(bins, return_inverse=True)
    per_bin = np.bincount(inverse, weights=weight)
    lookup = dict(zip(uniq.tolist(), per_bin.tolist()))
    smoothed = np.array([lookup.get(b - 1, 0.0) + lookup[b] + lookup.get(b + 1, 0.0) for b in uniq.tolist()])
    best = uniq[int(np.argmax(smoothed))]
    near = np.abs(bins - best) <= 1
    return float(np.average(z0[near], weights=weight[near]))


def good_tracks(tracks: np.ndarray, max_chi2_ndf: float, max_d0_mm: float) -> np.ndarray:
    """Tracks whose helix fits their hits (chi2/ndf; NaN for 3 hits passes) and that come from
    the beam line (|d0|): a wrong hit on a track shows up in both."""
    if len(tracks) == 0:
        return tracks
    chi2 = tracks[:, TRACK_CHI2_NDF]
    keep = ~(chi2 > max_chi2_ndf) & (np.abs(tracks[:, TRACK_D0]) < max_d0_mm) & np.isfinite(tracks[:, TRACK_PT])
    return tracks[keep]


def vertex_tracks(tracks: np.ndarray, vertex_z_mm: float, max_dz_mm: float, min_pt_gev: float) -> np.ndarray:
    """Tracks from the primary vertex (|z0 - vertex z| < max_dz_mm) above min_pt_gev."""
    if len(tracks) == 0:
        return tracks
    pt = tracks[:, TRACK_PT]
    keep = np.isfinite(pt) & (pt > min_pt_gev) & (np.abs(tracks[:, TRACK_Z0] - vertex_z_mm) < max_dz_mm)
    return tracks[keep]


def phi_at_radius(tracks: np.ndarray, radius_mm: float, field_t: float) -> np.ndarray:
    """Track azimuth where it crosses `radius_mm` (NaN if it curls up before)."""
    if len(tracks) == 0:
        return np.empty(0)
    ratio = radius_mm / (2 * curvature_radius_mm(tracks[:, TRACK_PT], field_t))
    with np.errstate(invalid="ignore"):
        bend = np.where(ratio <= 1.0, np.arcsin(np.minimum(ratio, 1.0)), np.nan)
    return np.angle(np.exp(1j * (tracks[:, TRACK_PHI] - tracks[:, TRACK_CHARGE] * bend)))


def _delta_r2(eta_a: np.ndarray, phi_a: np.ndarray, eta_b: np.ndarray, phi_b: np.ndarray) -> np.ndarray:
    deta = eta_a[:, None] - eta_b[None, :]
    dphi = np.angle(np.exp(1j * (phi_a[:, None] - phi_b[None, :])))
    return deta**2 + dphi**2


def jet_track_features(jets: np.ndarray, tracks: np.ndarray, field_t: float, cone_dr: float) -> np.ndarray:
    """Per jet: (n tracks in the core, n in the isolation annulus, leading-track pT / jet pT,
    core-track pT sum / jet pT), from vertex tracks compared at the calorimeter radius."""
    out = np.zeros((len(jets), 4))
    if len(jets) == 0 or len(tracks) == 0:
        return out
    phi_calo = phi_at_radius(tracks, CALO_RADIUS_MM, field_t)
    reach = np.isfinite(phi_calo)
    if not reach.any():
        return out
    t = tracks[reach]
    dr2 = _delta_r2(jets[:, JET_ETA].astype(np.float64), jets[:, JET_PHI].astype(np.float64), t[:, TRACK_ETA], phi_calo[reach])
    core = dr2 < CORE_DR**2
    cone = dr2 < cone_dr**2
    pt = t[:, TRACK_PT][None, :]
    jet_pt = np.maximum(jets[:, JET_PT].astype(np.float64), 1e-3)
    out[:, 0] = core.sum(axis=1)
    out[:, 1] = (cone & ~core).sum(axis=1)
    out[:, 2] = np.where(cone, pt, 0.0).max(axis=1) / jet_pt
    out[:, 3] = np.where(core, pt, 0.0).sum(axis=1) / jet_pt
    return out


def jet_tagger_inputs(jets: np.ndarray, track_features: np.ndarray) -> np.ndarray:
    """float32 (n_jets, N_FEATURES) in the order of `jet_tagger.FEATURE_NAMES`."""
    out = np.empty((len(jets), N_FEATURES), np.float32)
    out[:, 0] = np.log(np.maximum(jets[:, JET_PT], 1e-3))
    out[:, 1] = np.abs(jets[:, JET_ETA])
    out[:, 2] = jets[:, JET_EM_FRACTION]
    out[:, 3] = np.log(np.maximum(jets[:, JET_N_TOWERS], 1.0))
    out[:, 4] = jets[:, JET_WIDTH]
    out[:, 5] = track_features[:, 0]
    out[:, 6] = track_features[:, 1]
    out[:, 7] = np.minimum(track_features[:, 2], 2.0)
    out[:, 8] = np.minimum(track_features[:, 3], 2.0)
    return out


def matched_track_pt(clusters: np.ndarray, tracks: np.ndarray, field_t: float, max_deta: float, max_dphi: float) -> np.ndarray:
    """Per EM cluster, the pT of the highest-pT track pointing at it (0 if none)."""
    out = np.zeros(len(clusters))
    if len(clusters) == 0 or len(tracks) == 0:
        return out
    phi_calo = phi_at_radius(tracks, CALO_RADIUS_MM, field_t)
    deta = np.abs(clusters[:, CLUSTER_ETA][:, None] - tracks[:, TRACK_ETA][None, :])
    dphi = np.abs(np.angle(np.exp(1j * (clusters[:, CLUSTER_PHI][:, None] - phi_calo[None, :]))))
    match = (deta < max_deta) & (dphi < max_dphi)  # NaN (tracks that curl up) never match
    return np.where(match, tracks[:, TRACK_PT][None, :], 0.0).max(axis=1)
