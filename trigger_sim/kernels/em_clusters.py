"""Electromagnetic clusters: 3x3 tower clusters around local EM maxima, with isolation.

Electron and photon candidates: an EM shower is narrow (most of it in one tower and its
neighbours) and has little hadronic energy behind it or around it, unlike a jet.

Algorithm (both implementations follow it exactly):

1. EM ET = em / cosh(eta_center) and hadronic ET = had / cosh(eta_center), in float64; a
   tower's total ET = EM ET + hadronic ET.
2. A tower is a seed if its EM ET > seed_gev and it beats each of its up to 8 neighbours
   (3x3 window, phi wraps, eta does not): EM ET > the neighbour's, or equal EM ET and a
   smaller flat index (ieta * n_phi + iphi).
3. Windows: the h-window (h = 1: 3x3, h = 2: 5x5) of seed (ie, ip) holds the towers
   (ie + de, (ip + dp) mod n_phi) for de, dp in -h..h with 0 <= ie + de < n_eta, each tower
   once: when n_phi < 2h + 1 an offset dp with dp - n_phi >= -h repeats an earlier tower and
   is skipped. Window sums run over de ascending, then dp ascending.
4. Per seed: et = sum of EM ET over the 3x3 window; had_et = sum of hadronic ET over the 3x3
   window; eta = sum(EM ET * eta) / et; phi = seed phi + sum(EM ET * Δphi) / et, with Δphi =
   tower phi - seed phi wrapped to [-pi, pi], the result wrapped into (-pi, pi]; iso_et =
   (sum of total ET over the 5x5 window) - (sum of total ET over the 3x3 window).
5. Clusters with et > 0 (only possible to fail with negative tower energies), ordered by et
   descending (ties by seed flat index ascending), at most max_clusters.

phi_centers must lie in (-pi, pi].
"""

from __future__ import annotations

import math

import numpy as np

from trigger_sim.kernels._angles import wrap_delta_phi, wrap_delta_phi_array
from trigger_sim.kernels._jit import njit
from trigger_sim.kernels._towers import check_tower_inputs, seeds_reference

# Columns of the cluster array returned by find_em_clusters / find_em_clusters_reference.
CLUSTER_ET = 0
CLUSTER_ETA = 1
CLUSTER_PHI = 2
CLUSTER_HAD_ET = 3
CLUSTER_ISO_ET = 4
N_CLUSTER_COLUMNS = 5

_PI = math.pi
_TWO_PI = 2.0 * math.pi


def find_em_clusters(
    em_gev: np.ndarray,
    had_gev: np.ndarray,
    eta_centers: np.ndarray,
    phi_centers: np.ndarray,
    seed_gev: float,
    max_clusters: int,
) -> np.ndarray:
    """Find EM clusters around local EM-ET maxima (numba).

    em_gev, had_gev: (n_eta, n_phi) tower energies; eta_centers (n_eta,), phi_centers (n_phi,)
    in (-pi, pi]. Returns float64 (n_clusters, N_CLUSTER_COLUMNS), columns CLUSTER_ET ..
    CLUSTER_ISO_ET.
    """
    em, had, eta, phi, cosh_eta = check_tower_inputs(em_gev, had_gev, eta_centers, phi_centers, max_clusters, "max_clusters")
    # Scalars are normalised so that only one compiled specialisation (the cached one) exists.
    return _find_em_clusters_kernel(em, had, eta, phi, cosh_eta, float(seed_gev), int(max_clusters))


@njit
def _window_sums(em_et, had_et, eta, phi, ie, ip, half):
    """Sums over the h-window of seed (ie, ip): EM ET, EM ET * eta, EM ET * Δphi, had ET, total ET."""
    n_eta, n_phi = em_et.shape
    s_em = 0.0
    s_eta = 0.0
    s_dphi = 0.0
    s_had = 0.0
    s_total = 0.0
    for de in range(-half, half + 1):
        je = ie + de
        if je < 0 or je >= n_eta:
            continue
        for dp in range(-half, half + 1):
            if dp - n_phi >= -half:  # the same tower as offset dp - n_phi, already summed
                continue
            jp = (ip + dp) % n_phi
            e = em_et[je, jp]
            h = had_et[je, jp]
            s_em += e
            s_eta += e * eta[je]
            s_dphi += e * wrap_delta_phi(phi[jp] - phi[ip])
            s_had += h
            s_total += e + h
    return s_em, s_eta, s_dphi, s_had, s_total


@njit
def _find_em_clusters_kernel(em, had, eta, phi, cosh_eta, seed_gev, max_clusters):
    n_eta, n_phi = em.shape
    em_et = np.empty((n_eta, n_phi), dtype=np.float64)
    had_et = np.empty((n_eta, n_phi), dtype=np.float64)
    for ie in range(n_eta):
        for ip in range(n_phi):
            em_et[ie, ip] = np.float64(em[ie, ip]) / cosh_eta[ie]
            had_et[ie, ip] = np.float64(had[ie, ip]) / cosh_eta[ie]

    # Seeds: above threshold and a strict local EM maximum (ties broken by flat index).
    seed_flat = np.empty(n_eta * n_phi, dtype=np.int64)
    n_seeds = 0
    for ie in range(n_eta):
        for ip in range(n_phi):
            flat = ie * n_phi + ip
            e = em_et[ie, ip]
            if not e > seed_gev:
                continue
            is_max = True
            for de in range(-1, 2):
                je = ie + de
                if je < 0 or je >= n_eta:
                    continue
                for dp in range(-1, 2):
                    jp = (ip + dp) % n_phi
                    nb = je * n_phi + jp
                    if nb == flat:
                        continue
                    o = em_et[je, jp]
                    if not (e > o or (e == o and flat < nb)):
                        is_max = False
                        break
                if not is_max:
                    break
            if is_max:
                seed_flat[n_seeds] = flat
                n_seeds += 1

    et = np.zeros(n_seeds, dtype=np.float64)
    out = np.zeros((n_seeds, N_CLUSTER_COLUMNS), dtype=np.float64)
    for k in range(n_seeds):
        ie = seed_flat[k] // n_phi
        ip = seed_flat[k] % n_phi
        s_em, s_eta, s_dphi, s_had, s_total3 = _window_sums(em_et, had_et, eta, phi, ie, ip, 1)
        _, _, _, _, s_total5 = _window_sums(em_et, had_et, eta, phi, ie, ip, 2)
        et[k] = s_em
        if not s_em > 0.0:
            continue
        cluster_phi = phi[ip] + s_dphi / s_em
        if cluster_phi > _PI:
            cluster_phi -= _TWO_PI
        elif cluster_phi <= -_PI:
            cluster_phi += _TWO_PI
        out[k, CLUSTER_ET] = s_em
        out[k, CLUSTER_ETA] = s_eta / s_em
        out[k, CLUSTER_PHI] = cluster_phi
        out[k, CLUSTER_HAD_ET] = s_had
        out[k, CLUSTER_ISO_ET] = s_total5 - s_total3

    keep = np.empty(n_seeds, dtype=np.int64)
    n_keep = 0
    for k in range(n_seeds):
        if et[k] > 0.0:
            keep[n_keep] = k
            n_keep += 1
    keep = keep[:n_keep]
    # Stable sort on -et keeps flat-index order among equal et.
    keep = keep[np.argsort(-et[keep], kind="mergesort")]
    n_out = min(n_keep, max_clusters)
    clusters = np.empty((n_out, N_CLUSTER_COLUMNS), dtype=np.float64)
    for i in range(n_out):
        clusters[i, :] = out[keep[i], :]
    return clusters


def _window_offsets(half: int, n_phi: int) -> list[tuple[int, int]]:
    """(de, dp) offsets of an h-window in summation order, each tower once (rule 3)."""
    return [(de, dp) for de in range(-half, half + 1) for dp in range(-half, half + 1) if dp - n_phi < -half]


def find_em_clusters_reference(
    em_gev: np.ndarray,
    had_gev: np.ndarray,
    eta_centers: np.ndarray,
    phi_centers: np.ndarray,
    seed_gev: float,
    max_clusters: int,
) -> np.ndarray:
    """Plain-numpy reference of find_em_clusters: same arguments, same result to rounding."""
    em, had, eta, phi, cosh_eta = check_tower_inputs(em_gev, had_gev, eta_centers, phi_centers, max_clusters, "max_clusters")
    n_eta, n_phi = em.shape
    em_et = em.astype(np.float64) / cosh_eta[:, None]
    had_et = had.astype(np.float64) / cosh_eta[:, None]

    is_seed = seeds_reference(em_et, seed_gev)

    seed_flat = np.flatnonzero(is_seed)
    if seed_flat.size == 0:
        return np.empty((0, N_CLUSTER_COLUMNS), dtype=np.float64)
    s_ie = seed_flat // n_phi
    s_ip = seed_flat % n_phi

    def window(half: int) -> tuple[np.ndarray, ...]:
        """Per-seed sums over the h-window, added in rule-3 order (skipped towers add nothing)."""
        sums = [np.zeros(seed_flat.size) for _ in range(5)]
        for de, dp in _window_offsets(half, n_phi):
            je = s_ie + de
            inside = (je >= 0) & (je < n_eta)
            je = np.clip(je, 0, n_eta - 1)
            jp = (s_ip + dp) % n_phi
            e = em_et[je, jp]
            h = had_et[je, jp]
            dphi = wrap_delta_phi_array(phi[jp] - phi[s_ip])
            for i, term in enumerate((e, e * eta[je], e * dphi, h, e + h)):
                sums[i] = np.where(inside, sums[i] + term, sums[i])
        return tuple(sums)

    s_em, s_eta, s_dphi, s_had, s_total3 = window(1)
    s_total5 = window(2)[4]

    keep = np.flatnonzero(s_em > 0.0)
    keep = keep[np.argsort(-s_em[keep], kind="stable")][:max_clusters]
    et = s_em[keep]
    cluster_phi = phi[s_ip[keep]] + s_dphi[keep] / et
    cluster_phi = np.where(cluster_phi > _PI, cluster_phi - _TWO_PI, cluster_phi)
    cluster_phi = np.where(cluster_phi <= -_PI, cluster_phi + _TWO_PI, cluster_phi)
    clusters = np.empty((keep.size, N_CLUSTER_COLUMNS), dtype=np.float64)
    clusters[:, CLUSTER_ET] = et
    clusters[:, CLUSTER_ETA] = s_eta[keep] / et
    clusters[:, CLUSTER_PHI] = cluster_phi
    clusters[:, CLUSTER_HAD_ET] = s_had[keep]
    clusters[:, CLUSTER_ISO_ET] = s_total5[keep] - s_total3[keep]
    return clusters
