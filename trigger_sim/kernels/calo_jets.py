"""Calorimeter jets: a seeded cone with exclusive tower assignment.

Algorithm (both implementations follow it exactly):

1. Tower ET = (em + had) / cosh(eta_center), in float64.
2. A tower is a seed if ET > seed_gev and it beats each of its up to 8 neighbours (3x3 window,
   phi wraps, eta does not): ET > ET_neighbour, or equal ET and a smaller flat index
   (ieta * n_phi + iphi).
3. Seeds are ordered by ET descending, ties by flat index ascending.
4. Each tower with ET > 0 goes to the first seed, in that order, whose centre is within
   ΔR < radius (Δphi wrapped to [-pi, pi]); towers in no cone are unused.
5. Per seed: pt = sum ET; eta = ET-weighted mean eta; phi = seed phi + ET-weighted mean Δphi,
   wrapped into (-pi, pi]; em_fraction = sum(em / cosh eta) / pt; n_towers; width =
   ET-weighted mean ΔR to the seed centre.
6. Jets with pt > min_pt_gev (an empty seed is never a jet), ordered by pt descending (ties by
   seed order), at most max_jets.

Sums run in float64 over towers in flat-index order in both implementations, so they agree to
rounding. phi_centers must lie in (-pi, pi]. Both implementations search a seed's cone (step 4)
only in the eta rows within the radius of it, so the numba-vs-numpy ratio is about compilation,
not about the search.
"""

from __future__ import annotations

import math

import numpy as np

from trigger_sim.kernels._angles import wrap_delta_phi, wrap_delta_phi_array
from trigger_sim.kernels._jit import njit
from trigger_sim.kernels._towers import check_tower_inputs, seeds_reference

# Columns of the jet array returned by find_jets / find_jets_reference.
JET_PT = 0
JET_ETA = 1
JET_PHI = 2
JET_EM_FRACTION = 3
JET_N_TOWERS = 4
JET_WIDTH = 5
N_JET_COLUMNS = 6

_PI = math.pi
_TWO_PI = 2.0 * math.pi


def find_jets(
    em_gev: np.ndarray,
    had_gev: np.ndarray,
    eta_centers: np.ndarray,
    phi_centers: np.ndarray,
    seed_gev: float,
    radius: float,
    min_pt_gev: float,
    max_jets: int,
) -> np.ndarray:
    """Cluster calorimeter towers into jets (numba).

    em_gev, had_gev: (n_eta, n_phi) tower energies; eta_centers (n_eta,), phi_centers (n_phi,)
    in (-pi, pi]. Returns float32 (n_jets, N_JET_COLUMNS), columns JET_PT .. JET_WIDTH.
    """
    em, had, eta, phi, cosh_eta = check_tower_inputs(em_gev, had_gev, eta_centers, phi_centers, max_jets, "max_jets")
    # Scalars are normalised so that only one compiled specialisation (the cached one) exists.
    return _find_jets_kernel(
        em, had, eta, phi, cosh_eta,
        float(seed_gev), float(radius), float(min_pt_gev), int(max_jets),
    )


@njit
def _find_jets_kernel(em, had, eta, phi, cosh_eta, seed_gev, radius, min_pt_gev, max_jets):
    n_eta, n_phi = em.shape
    n_towers = n_eta * n_phi
    et = np.empty(n_towers, dtype=np.float64)
    for ie in range(n_eta):
        for ip in range(n_phi):
            et[ie * n_phi + ip] = (np.float64(em[ie, ip]) + np.float64(had[ie, ip])) / cosh_eta[ie]

    # Seeds: above threshold and a strict local maximum (ties broken by flat index).
    seed_flat = np.empty(n_towers, dtype=np.int64)
    n_seeds = 0
    for ie in range(n_eta):
        for ip in range(n_phi):
            flat = ie * n_phi + ip
            e = et[flat]
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
                    if not (e > et[nb] or (e == et[nb] and flat < nb)):
                        is_max = False
                        break
                if not is_max:
                    break
            if is_max:
                seed_flat[n_seeds] = flat
                n_seeds += 1
    seed_flat = seed_flat[:n_seeds]
    # Stable sort on -ET keeps flat-index order among equal ET.
    seed_flat = seed_flat[np.argsort(-et[seed_flat], kind="mergesort")]

    # Exclusive assignment: seeds in order claim the unclaimed towers inside their cone.
    owner = np.full(n_towers, -1, dtype=np.int64)
    tower_dphi = np.zeros(n_towers, dtype=np.float64)
    tower_dr = np.zeros(n_towers, dtype=np.float64)
    for k in range(n_seeds):
        s_eta = eta[seed_flat[k] // n_phi]
        s_phi = phi[seed_flat[k] % n_phi]
        for ie in range(n_eta):
            deta = eta[ie] - s_eta
            # ΔR as computed below is never smaller than this, so skipping the row is exact.
            if not math.sqrt(deta * deta) < radius:
                continue
            for ip in range(n_phi):
                flat = ie * n_phi + ip
                if owner[flat] >= 0 or not et[flat] > 0.0:
                    continue
                dphi = wrap_delta_phi(phi[ip] - s_phi)
                dr = math.sqrt(deta * deta + dphi * dphi)
                if dr < radius:
                    owner[flat] = k
                    tower_dphi[flat] = dphi
                    tower_dr[flat] = dr

    # Per-jet sums, towers in flat order (same order as the reference's bincount).
    pt = np.zeros(n_seeds, dtype=np.float64)
    eta_sum = np.zeros(n_seeds, dtype=np.float64)
    dphi_sum = np.zeros(n_seeds, dtype=np.float64)
    em_sum = np.zeros(n_seeds, dtype=np.float64)
    dr_sum = np.zeros(n_seeds, dtype=np.float64)
    count = np.zeros(n_seeds, dtype=np.int64)
    for flat in range(n_towers):
        k = owner[flat]
        if k < 0:
            continue
        ie = flat // n_phi
        e = et[flat]
        pt[k] += e
        eta_sum[k] += e * eta[ie]
        dphi_sum[k] += e * tower_dphi[flat]
        em_sum[k] += np.float64(em[ie, flat % n_phi]) / cosh_eta[ie]
        dr_sum[k] += e * tower_dr[flat]
        count[k] += 1

    keep = np.empty(n_seeds, dtype=np.int64)
    n_keep = 0
    for k in range(n_seeds):
        if count[k] > 0 and pt[k] > min_pt_gev:
            keep[n_keep] = k
            n_keep += 1
    keep = keep[:n_keep]
    keep = keep[np.argsort(-pt[keep], kind="mergesort")]
    n_jets = min(n_keep, max_jets)

    jets = np.empty((n_jets, N_JET_COLUMNS), dtype=np.float32)
    for out in range(n_jets):
        k = keep[out]
        p = pt[k]
        jet_phi = phi[seed_flat[k] % n_phi] + dphi_sum[k] / p
        if jet_phi > _PI:
            jet_phi -= _TWO_PI
        elif jet_phi <= -_PI:
            jet_phi += _TWO_PI
        jets[out, JET_PT] = p
        jets[out, JET_ETA] = eta_sum[k] / p
        jets[out, JET_PHI] = jet_phi
        jets[out, JET_EM_FRACTION] = em_sum[k] / p
        jets[out, JET_N_TOWERS] = count[k]
        jets[out, JET_WIDTH] = dr_sum[k] / p
    return jets


def find_jets_reference(
    em_gev: np.ndarray,
    had_gev: np.ndarray,
    eta_centers: np.ndarray,
    phi_centers: np.ndarray,
    seed_gev: float,
    radius: float,
    min_pt_gev: float,
    max_jets: int,
) -> np.ndarray:
    """Plain-numpy reference of find_jets: same arguments, same result to rounding.

    The kernel's algorithm, vectorised over seeds and towers: a seed's cone is searched only in
    the eta rows within `radius` of it, so the ratio to the kernel measures compilation.
    """
    em, had, eta, phi, cosh_eta = check_tower_inputs(em_gev, had_gev, eta_centers, phi_centers, max_jets, "max_jets")
    n_phi = em.shape[1]
    et = (em.astype(np.float64) + had.astype(np.float64)) / cosh_eta[:, None]

    is_seed = seeds_reference(et, seed_gev)

    et_flat = et.ravel()
    seed_flat = np.flatnonzero(is_seed)
    if seed_flat.size == 0:
        return np.empty((0, N_JET_COLUMNS), dtype=np.float32)
    seed_flat = seed_flat[np.argsort(-et_flat[seed_flat], kind="stable")]
    seed_eta = eta[seed_flat // n_phi]
    seed_phi = phi[seed_flat % n_phi]

    # Each tower goes to the first seed whose cone holds it; as in the kernel, only the eta rows
    # within the radius of a seed are looked at.
    owner, tower_dphi, tower_dr = _assign_towers(et_flat > 0.0, seed_eta, seed_phi, eta, phi, radius)
    n_seeds = seed_flat.size
    used = np.flatnonzero(owner < n_seeds)
    owner, used_row = owner[used], used // n_phi

    # bincount adds in input order, i.e. flat order, like the numba loop.
    e = et_flat[used]

    def per_jet(weights: np.ndarray) -> np.ndarray:
        return np.bincount(owner, weights=weights, minlength=n_seeds)

    pt = per_jet(e)
    eta_sum = per_jet(e * eta[used_row])
    dphi_sum = per_jet(e * tower_dphi[used])
    em_sum = per_jet(em.astype(np.float64).ravel()[used] / cosh_eta[used_row])
    dr_sum = per_jet(e * tower_dr[used])
    count = np.bincount(owner, minlength=n_seeds)

    keep = np.flatnonzero((count > 0) & (pt > min_pt_gev))
    keep = keep[np.argsort(-pt[keep], kind="stable")][:max_jets]

    p = pt[keep]
    jet_phi = seed_phi[keep] + dphi_sum[keep] / p
    jet_phi = np.where(jet_phi > _PI, jet_phi - _TWO_PI, jet_phi)
    jet_phi = np.where(jet_phi <= -_PI, jet_phi + _TWO_PI, jet_phi)
    jets = np.empty((keep.size, N_JET_COLUMNS), dtype=np.float32)
    jets[:, JET_PT] = p
    jets[:, JET_ETA] = eta_sum[keep] / p
    jets[:, JET_PHI] = jet_phi
    jets[:, JET_EM_FRACTION] = em_sum[keep] / p
    jets[:, JET_N_TOWERS] = count[keep]
    jets[:, JET_WIDTH] = dr_sum[keep] / p
    return jets


def _cone_candidates(
    seed_eta: np.ndarray, eta: np.ndarray, n_phi: int, radius: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seed, flat tower, deta) of every tower in an eta row within `radius` of a seed, seed by
    seed: the kernel's row skip (the ΔR below is never smaller than sqrt(deta^2), so it is exact)."""
    deta = eta[None, :] - seed_eta[:, None]
    seed, row = np.nonzero(np.sqrt(deta * deta) < radius)
    flat = (row * n_phi)[:, None] + np.arange(n_phi)
    return np.repeat(seed, n_phi), flat.ravel(), np.repeat(deta[seed, row], n_phi)


def _assign_towers(
    has_et: np.ndarray,
    seed_eta: np.ndarray,
    seed_phi: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    radius: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per tower: its owner (the first seed, in seed order, whose cone holds it; n_seeds for
    none) and its Δphi and ΔR to that seed (0 for none). has_et: flat towers with ET > 0."""
    n_seeds, n_phi = seed_eta.size, phi.size
    seed, flat, deta = _cone_candidates(seed_eta, eta, n_phi, radius)
    dphi = wrap_delta_phi_array(phi[flat % n_phi] - seed_phi[seed])
    dr = np.sqrt(deta * deta + dphi * dphi)
    in_cone = (dr < radius) & has_et[flat]
    seed, flat, dphi, dr = seed[in_cone], flat[in_cone], dphi[in_cone], dr[in_cone]
    owner = np.full(has_et.size, n_seeds, dtype=np.int64)
    np.minimum.at(owner, flat, seed)
    owned = owner[flat] == seed  # one candidate per owned tower
    tower_dphi = np.zeros(has_et.size)
    tower_dr = np.zeros(has_et.size)
    tower_dphi[flat[owned]] = dphi[owned]
    tower_dr[flat[owned]] = dr[owned]
    return owner, tower_dphi, tower_dr
