"""Eta-phi calorimeter: deposits split between the EM and hadronic compartments by particle
kind, lateral EM spread, stochastic resolution, electronic noise and zero suppression.

The calorimeter is non-compensating: a hadron's visible energy is `had_response` times an
electron's of the same energy. A particle hitting near a tower edge shares part of its EM
energy with the nearest neighbour in eta and in phi. `simulate_calo` runs its per-particle
work in numba kernels and is bit for bit (and random draw for random draw) its plain-numpy
twin `simulate_calo_reference`.
"""

from __future__ import annotations

import functools

import numpy as np

from trigger_sim.config import CaloConfig
from trigger_sim.detector.geometry import (
    _PI,
    _TWO_PI,
    CALO_RADIUS_MM,
    CaloTowers,
    _uses_kernels,
    _wrap_phi_scalar,
    curvature_radius_mm,
    wrap_phi,
)
from trigger_sim.kernels._jit import njit
from trigger_sim.physics import (
    CHARGED_HADRON,
    ELECTRON,
    NEUTRAL_HADRON,
    PHOTON,
    Particles,
)


def em_lateral_shares(position: np.ndarray, tower_width: float, shower_width: float) -> np.ndarray:
    """Fraction of an EM shower leaking into the nearest neighbouring tower along one axis.

    position: where the shower axis hits, in units of the tower width from its lower edge, in
    [0, 1). A shower with an exponential lateral profile of scale `shower_width` (same units
    as `tower_width`) puts 0.5 * exp(-d / shower_width) beyond a boundary at distance d.
    """
    with np.errstate(over="ignore"):  # a very narrow shower: exp(-inf) = 0, no leak
        return _lateral_leak(position, tower_width, shower_width)


def _lateral_leak(position: np.ndarray, tower_width: float, shower_width: float) -> np.ndarray:
    """`em_lateral_shares` without its floating-point error state (callers set it once)."""
    if shower_width <= 0:
        return np.zeros_like(position)
    distance = np.minimum(position, 1.0 - position) * tower_width
    return 0.5 * np.exp(-distance / shower_width)


# Per particle kind, as a table indexed by kind + 1 (clipped to the table): the first and the
# last entry stand for every kind that is neither electromagnetic nor hadronic.
_KIND_TABLE_KINDS = (None, CHARGED_HADRON, PHOTON, NEUTRAL_HADRON, ELECTRON, None)


@functools.lru_cache(maxsize=16)
def _kind_tables(had_em_fraction: float, had_response: float) -> tuple[np.ndarray, np.ndarray]:
    """EM share of the deposit and visible-energy response per kind, for `_per_kind` lookups.

    EM particles put everything in the EM compartment at response 1; hadrons put
    `had_em_fraction` there at `had_response`; anything else deposits hadronically at response 1.
    """
    em_kinds, had_kinds = (PHOTON, ELECTRON), (CHARGED_HADRON, NEUTRAL_HADRON)
    em_share = np.array([1.0 if k in em_kinds else had_em_fraction if k in had_kinds else 0.0 for k in _KIND_TABLE_KINDS])
    response = np.array([had_response if k in had_kinds else 1.0 for k in _KIND_TABLE_KINDS])
    em_share.flags.writeable = response.flags.writeable = False
    return em_share, response


def _per_kind(table: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """Look a per-kind value up in a `_kind_tables` table (kinds outside 0..3 get the 'other' entry).

    kind + 1 may wrap for the largest int8 kind; it then lands below 0 and still clips to 'other'.
    """
    return np.take(table, kind + 1, mode="clip")


def simulate_calo(p: Particles, cfg: CaloConfig, field_t: float, rng: np.random.Generator) -> CaloTowers:
    """Tower energies: deposit (with lateral EM spread), hadron response, resolution, noise, zero suppression.

    Bit for bit and draw for draw the same as `simulate_calo_reference`: numpy takes the
    transcendental functions (arcsin, cosh, exp) and the random draws, compiled kernels the rest.
    """
    if not _uses_kernels(p):
        return simulate_calo_reference(p, cfg, field_t, rng)
    two_r_mm = 2 * curvature_radius_mm(p.pt_gev, field_t)
    charged = p.charge != 0
    sel = np.flatnonzero((~charged | (two_r_mm > CALO_RADIUS_MM)) & (np.abs(p.eta) < cfg.eta_max))
    eta = p.eta[sel]
    bend = np.where(charged[sel], np.arcsin(np.minimum(CALO_RADIUS_MM / two_r_mm[sel], 1.0)), 0.0)
    ie, ip, f_eta, f_phi, em_dep, had_dep, leak_exponent = _calo_deposits_kernel(
        p.pt_gev[sel], eta, np.cosh(eta), p.phi[sel], p.charge[sel].astype(np.float64), bend, p.kind[sel].astype(np.int64),
        float(cfg.had_em_fraction), float(cfg.had_response), float(cfg.eta_max), int(cfg.n_eta), int(cfg.n_phi),
        float(2 * cfg.eta_max / cfg.n_eta), float(2 * np.pi / cfg.n_phi), float(cfg.em_shower_width),
    )
    spread = cfg.em_shower_width > 0
    leak_exp = np.exp(leak_exponent) if spread else leak_exponent  # (eta leaks, phi leaks)
    size = cfg.n_eta * cfg.n_phi
    em_normal = rng.normal(size=size)  # resolution and electronic noise draws, per tower
    had_normal = rng.normal(size=size)
    em, had = _calo_towers_kernel(
        ie, ip, f_eta, f_phi, leak_exp, spread, em_dep, had_dep, int(cfg.n_eta), int(cfg.n_phi), em_normal, had_normal,
        float(cfg.em_stochastic**2), float(cfg.em_noise_gev**2), float(cfg.had_stochastic**2), float(cfg.had_noise_gev**2),
        float(cfg.zero_suppression_gev),
    )
    return CaloTowers(em, had)


@njit(error_model="numpy")
def _tower_index(u, top):
    """int64(u) clamped to [0, top]; NaN gives 0, as numpy's cast (INT64_MIN on x86) then clip do."""
    if not u == u:
        return 0
    i = np.int64(u)
    return min(max(i, 0), top)


@njit(error_model="numpy")
def _calo_deposits_kernel(pt_gev, eta, cosh_eta, phi0, charge, bend, kind, had_em_fraction, had_response, eta_max, n_eta, n_phi,
                          eta_width, phi_width, shower_width):
    """Per depositing particle: tower (ie, ip), position in it (f_eta, f_phi in [0, 1]), EM and
    hadronic visible energy, and the exponents -d / shower_width of the lateral leaks (all eta
    leaks, then all phi leaks; zeros when showers do not spread)."""
    n = len(eta)
    ie = np.empty(n, np.int64)
    ip = np.empty(n, np.int64)
    f_eta = np.empty(n)
    f_phi = np.empty(n)
    em_dep = np.empty(n)
    had_dep = np.empty(n)
    leak_exponent = np.zeros(2 * n)
    for i in range(n):
        phi = _wrap_phi_scalar(phi0[i] - charge[i] * bend[i])
        k = kind[i]
        is_em = k == PHOTON or k == ELECTRON
        is_had = k == CHARGED_HADRON or k == NEUTRAL_HADRON
        em_share = 1.0 if is_em else (had_em_fraction if is_had else 0.0)
        visible = pt_gev[i] * cosh_eta[i] * (had_response if is_had else 1.0)
        em_dep[i] = visible * em_share
        had_dep[i] = visible * (1 - em_share)
        u_eta = (eta[i] + eta_max) / (2 * eta_max) * n_eta
        u_phi = (phi + _PI) / _TWO_PI * n_phi
        ie[i] = _tower_index(u_eta, n_eta - 1)
        ip[i] = _tower_index(u_phi, n_phi - 1)
        f_eta[i] = _clamp_unit(u_eta - ie[i])
        f_phi[i] = _clamp_unit(u_phi - ip[i])
        if shower_width > 0:
            leak_exponent[i] = -(min(f_eta[i], 1.0 - f_eta[i]) * eta_width) / shower_width
            leak_exponent[n + i] = -(min(f_phi[i], 1.0 - f_phi[i]) * phi_width) / shower_width
    return ie, ip, f_eta, f_phi, em_dep, had_dep, leak_exponent


@njit(error_model="numpy")
def _clamp_unit(f):
    """f clamped to [0, 1]; NaN stays NaN."""
    if f < 0.0:
        return 0.0
    if f > 1.0:
        return 1.0
    return f


@njit(error_model="numpy")
def _calo_towers_kernel(ie, ip, f_eta, f_phi, leak_exp, spread, em_dep, had_dep, n_eta, n_phi, em_normal, had_normal,
                        em_stochastic2, em_noise2, had_stochastic2, had_noise2, zero_suppression_gev):
    """Float32 (em, had) tower grids: deposits with lateral EM spread, each share summed into its
    own grid in particle order and the grids added in order (own tower, eta, phi, diagonal
    neighbour), as the reference's bincounts do; then resolution, noise, zero suppression."""
    n = len(ie)
    size = n_eta * n_phi
    own = np.zeros(size)
    eta_nb = np.zeros(size)
    phi_nb = np.zeros(size)
    diag_nb = np.zeros(size)
    had_true = np.zeros(size)
    for i in range(n):
        leak_eta = 0.5 * leak_exp[i] if spread else 0.0
        leak_phi = 0.5 * leak_exp[n + i] if spread else 0.0
        je = ie[i] + (-1 if f_eta[i] < 0.5 else 1)
        if not (je >= 0 and je < n_eta):
            leak_eta = 0.0
        je = min(max(je, 0), n_eta - 1)
        jp = (ip[i] + (-1 if f_phi[i] < 0.5 else 1)) % n_phi
        stay_eta = 1 - leak_eta
        stay_phi = 1 - leak_phi
        row = ie[i] * n_phi
        row_nb = je * n_phi
        e = em_dep[i]
        own[row + ip[i]] += e * (stay_eta * stay_phi)
        eta_nb[row_nb + ip[i]] += e * (leak_eta * stay_phi)
        phi_nb[row + jp] += e * (stay_eta * leak_phi)
        diag_nb[row_nb + jp] += e * (leak_eta * leak_phi)
        had_true[row + ip[i]] += had_dep[i]
    em_out = np.empty(size, np.float32)
    had_out = np.empty(size, np.float32)
    for t in range(size):
        em_true = own[t] + eta_nb[t] + phi_nb[t] + diag_nb[t]
        em = em_true + em_normal[t] * np.sqrt(em_stochastic2 * em_true + em_noise2)
        had = had_true[t] + had_normal[t] * np.sqrt(had_stochastic2 * had_true[t] + had_noise2)
        keep = (em + had) > zero_suppression_gev
        em_out[t] = (0.0 if em < 0.0 else em) if keep else 0.0  # np.maximum(em, 0.0): NaN stays
        had_out[t] = (0.0 if had < 0.0 else had) if keep else 0.0
    return em_out.reshape(n_eta, n_phi), had_out.reshape(n_eta, n_phi)


def simulate_calo_reference(p: Particles, cfg: CaloConfig, field_t: float, rng: np.random.Generator) -> CaloTowers:
    """`simulate_calo` in plain numpy: the definition the compiled path is tested against."""
    two_r_mm = 2 * curvature_radius_mm(p.pt_gev, field_t)
    charged = p.charge != 0
    reaches = ~charged | (two_r_mm > CALO_RADIUS_MM)
    # Only particles that deposit are followed further (element-wise the same arithmetic).
    sel = np.flatnonzero(reaches & (np.abs(p.eta) < cfg.eta_max))
    charge, eta, kind = p.charge[sel], p.eta[sel], p.kind[sel]
    bend = np.where(charged[sel], np.arcsin(np.minimum(CALO_RADIUS_MM / two_r_mm[sel], 1.0)), 0.0)
    phi = wrap_phi(p.phi[sel] - charge * bend)
    energy = p.pt_gev[sel] * np.cosh(eta)
    em_share_by_kind, response_by_kind = _kind_tables(cfg.had_em_fraction, cfg.had_response)
    em_share = _per_kind(em_share_by_kind, kind)
    visible = energy * _per_kind(response_by_kind, kind)
    # Position in tower units; the integer part is the tower, the rest where inside it.
    u_eta = (eta + cfg.eta_max) / (2 * cfg.eta_max) * cfg.n_eta
    u_phi = (phi + np.pi) / (2 * np.pi) * cfg.n_phi
    ie = _clamp_int(u_eta.astype(np.int64), cfg.n_eta - 1)
    ip = _clamp_int(u_phi.astype(np.int64), cfg.n_phi - 1)
    size = cfg.n_eta * cfg.n_phi
    em_dep = visible * em_share
    row = ie * cfg.n_phi
    had_true = np.bincount(row + ip, weights=visible * (1 - em_share), minlength=size)
    em_true = _spread_em(em_dep, u_eta - ie, u_phi - ip, ie, ip, row, cfg)
    em = em_true + rng.normal(size=size) * np.sqrt(cfg.em_stochastic**2 * em_true + cfg.em_noise_gev**2)
    had = had_true + rng.normal(size=size) * np.sqrt(cfg.had_stochastic**2 * had_true + cfg.had_noise_gev**2)
    suppressed = ~((em + had) > cfg.zero_suppression_gev)  # NaN sums stay, as NaN
    shape = (cfg.n_eta, cfg.n_phi)
    return CaloTowers(_zero_suppressed_f32(em, suppressed, shape), _zero_suppressed_f32(had, suppressed, shape))


def _clamp_int(index: np.ndarray, top: int) -> np.ndarray:
    """Integer indices clamped into [0, top], in place (np.clip without its call overhead)."""
    np.maximum(index, 0, out=index)
    return np.minimum(index, top, out=index)


def _spread_em(
    em_dep: np.ndarray, f_eta: np.ndarray, f_phi: np.ndarray, ie: np.ndarray, ip: np.ndarray, row: np.ndarray, cfg: CaloConfig
) -> np.ndarray:
    """EM tower energies (flat grid) with the lateral spread of every deposit.

    Factorised shares to the nearest neighbour in eta (none beyond the grid's edge) and in phi
    (wrapping), and to the diagonal one between them. f_eta, f_phi: where in its tower each
    deposit lands (tower units, clamped to [0, 1] here); ie, ip: its tower; row: ie * n_phi.
    """
    f_eta = np.minimum(np.maximum(f_eta, 0.0), 1.0)  # a signed zero here cannot reach the output
    f_phi = np.minimum(np.maximum(f_phi, 0.0), 1.0)
    with np.errstate(over="ignore"):  # a very narrow shower: exp(-inf) = 0, no leak
        leak_eta = _lateral_leak(f_eta, 2 * cfg.eta_max / cfg.n_eta, cfg.em_shower_width)
        leak_phi = _lateral_leak(f_phi, 2 * np.pi / cfg.n_phi, cfg.em_shower_width)
    ie_nb = ie + np.where(f_eta < 0.5, -1, 1)
    leak_eta = np.where((ie_nb >= 0) & (ie_nb < cfg.n_eta), leak_eta, 0.0)
    row_nb = _clamp_int(ie_nb, cfg.n_eta - 1) * cfg.n_phi
    ip_nb = (ip + np.where(f_phi < 0.5, -1, 1)) % cfg.n_phi
    stay_eta, stay_phi = 1 - leak_eta, 1 - leak_phi
    size = cfg.n_eta * cfg.n_phi
    # Summed in this order (own tower, eta, phi, diagonal neighbour), as one grid per share.
    em_true = np.bincount(row + ip, weights=em_dep * (stay_eta * stay_phi), minlength=size)
    em_true += np.bincount(row_nb + ip, weights=em_dep * (leak_eta * stay_phi), minlength=size)
    em_true += np.bincount(row + ip_nb, weights=em_dep * (stay_eta * leak_phi), minlength=size)
    em_true += np.bincount(row_nb + ip_nb, weights=em_dep * (leak_eta * leak_phi), minlength=size)
    return em_true


def _zero_suppressed_f32(energy_gev: np.ndarray, suppressed: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Float32 tower grid: negative energies (noise) raised to 0, suppressed towers set to 0."""
    out = np.maximum(energy_gev, 0.0).astype(np.float32)
    out[suppressed] = 0.0
    return out.reshape(shape)
