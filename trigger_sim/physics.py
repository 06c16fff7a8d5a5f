"""Event generation: pile-up minimum bias plus, in a fraction of events, one hard process.

A deliberately simple, fast generator (no parton shower): enough to give a tracker and a
calorimeter realistic occupancy, and objects a trigger menu can select on. The processes:

- "minbias": pile-up only.
- "dijet": two back-to-back partons from a falling pT spectrum, fragmented into wide jets.
- "electron": W -> e nu; one isolated electron (Jacobian peak near m_W / 2) and an invisible
  neutrino (truth missing ET only).
- "htautau": the rare signal, a 125 GeV scalar decaying to two taus that both decay
  hadronically (1-prong or 3-prong, with pi0 -> two photons): narrow, low-multiplicity jets.

Truth objects (dijet partons, visible taus, electrons) are parallel arrays; each particle's
`origin` is 0 for pile-up or the index + 1 of the truth object it comes from. Every event is
reproducible from (seed, Level-1 id) alone, whichever process makes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger_sim.config import PhysicsConfig

# Particle kinds.
CHARGED_HADRON = 0
PHOTON = 1
NEUTRAL_HADRON = 2
ELECTRON = 3

# Particle origin: 0 is pile-up; k >= 1 is the truth object k - 1 of the event.
ORIGIN_PILEUP = 0

# Truth object kinds.
TRUTH_JET = 0  # a parton of the hard dijet
TRUTH_TAU = 1  # the visible part of a hadronically decaying tau
TRUTH_ELECTRON = 2

# Processes, in the order their fractions are laid out on [0, 1) (minimum bias takes the rest).
MINBIAS = "minbias"
DIJET = "dijet"
ELECTRON_PROCESS = "electron"
HTAUTAU = "htautau"
PROCESSES = (DIJET, ELECTRON_PROCESS, HTAUTAU, MINBIAS)

ETA_MAX_GENERATED = 3.0

W_MASS_GEV = 80.4
W_WIDTH_GEV = 2.1
W_MAX_RAPIDITY = 2.5
H_MASS_GEV = 125.0
H_MAX_RAPIDITY = 2.0
BOSON_MEAN_PT_GEV = 10.0  # exponential transverse boost of the W and the H
TAU_MASS_GEV = 1.777
TAU_ONE_PRONG_FRACTION = 0.76  # of hadronic decays
TAU_ONE_PRONG_PI0 = (0.25, 0.55, 0.20)  # P(0, 1, 2 pi0) in 1-prong decays
TAU_THREE_PRONG_PI0 = (0.67, 0.33)  # P(0, 1 pi0) in 3-prong decays
TAU_NEUTRINO_MAX_FRACTION = 0.5  # the neutrino takes U(0, this) of the tau momentum
TAU_MAX_CONE = 0.3  # cap of the decay-product cone m_tau / pT_visible, for soft taus


@dataclass(frozen=True)
class Particles:
    """Final-state particles of one bunch crossing, as parallel arrays."""

    pt_gev: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    charge: np.ndarray  # -1, 0, +1
    kind: np.ndarray
    vz_mm: np.ndarray
    origin: np.ndarray  # ORIGIN_PILEUP, or index + 1 of the truth object

    def __len__(self) -> int:
        return len(self.pt_gev)


@dataclass(frozen=True)
class GeneratedEvent:
    """Particles plus the truth a trigger is judged against.

    truth_*: the hard objects, parallel arrays; for taus the visible momentum (decay products
    without the neutrino). true_met_gev: magnitude of the neutrinos' transverse momentum sum.
    """

    particles: Particles
    process: str  # one of PROCESSES
    n_pileup: int
    truth_kind: np.ndarray  # int8: TRUTH_JET, TRUTH_TAU or TRUTH_ELECTRON
    truth_pt_gev: np.ndarray
    truth_eta: np.ndarray
    truth_phi: np.ndarray
    true_met_gev: float
    primary_vz_mm: float

    def truth_of_kind(self, kind: int) -> np.ndarray:
        """Indices of the truth objects of one kind (particles of object i have origin i + 1)."""
        return np.flatnonzero(self.truth_kind == kind)


def event_rng(seed: int, l1_id: int) -> np.random.Generator:
    """The random stream of one event: independent of every other event's."""
    return np.random.default_rng([seed, l1_id])


def choose_process(u: float, cfg: PhysicsConfig) -> str:
    """The process of an event whose uniform draw is `u`: fractions laid out in PROCESSES order."""
    edge = 0.0
    for name, fraction in ((DIJET, cfg.dijet_fraction), (ELECTRON_PROCESS, cfg.electron_fraction), (HTAUTAU, cfg.signal_fraction)):
        edge += fraction
        if u < edge:
            return name
    return MINBIAS


def _minimum_bias(rng: np.random.Generator, n_collisions: int, vz_mm: np.ndarray, cfg: PhysicsConfig) -> dict:
    mean_charged = cfg.minbias_charged_per_eta * 2 * ETA_MAX_GENERATED
    n_charged = rng.poisson(mean_charged, size=n_collisions)
    n_neutral = rng.poisson(0.6 * mean_charged, size=n_collisions)  # photons from pi0 decays
    counts = n_charged + n_neutral
    n = int(counts.sum())
    collision = np.repeat(np.arange(n_collisions), counts)
    charged = _charged_then_neutral(n_charged, n_neutral)
    pt = 0.1 + rng.exponential(0.45, size=n)  # soft spectrum, mean ~0.55 GeV
    return dict(
        pt_gev=pt,
        eta=rng.uniform(-ETA_MAX_GENERATED, ETA_MAX_GENERATED, size=n),
        phi=rng.uniform(-np.pi, np.pi, size=n),
        charge=np.where(charged, rng.choice(np.array([-1, 1]), size=n), 0),
        kind=np.where(charged, np.int8(CHARGED_HADRON), np.int8(PHOTON)),
        vz_mm=vz_mm[collision],
        origin=np.full(n, ORIGIN_PILEUP, np.int8),
    )


def _charged_then_neutral(n_charged: np.ndarray, n_neutral: np.ndarray) -> np.ndarray:
    """Per particle, whether it is charged: each collision lists its charged particles first,
    then its photons (one np.repeat over the interleaved counts)."""
    n_runs = 2 * len(n_charged)
    counts = np.empty(n_runs, np.int64)
    counts[0::2] = n_charged
    counts[1::2] = n_neutral
    is_charged_run = np.zeros(n_runs, bool)
    is_charged_run[0::2] = True
    return np.repeat(is_charged_run, counts)


def _wrap(phi: np.ndarray | float) -> np.ndarray:
    return np.angle(np.exp(1j * np.asarray(phi)))


def _jet(rng: np.random.Generator, pt_gev: float, eta: float, phi: float, vz_mm: float, origin: int) -> dict:
    """Fragment a parton into constituents collimated around its direction."""
    n = max(2, int(rng.poisson(4.0 + 2.5 * np.log(pt_gev))))
    z = rng.dirichlet(np.full(n, 0.6))
    spread = rng.exponential(0.06, size=n) + 0.005
    angle = rng.uniform(0, 2 * np.pi, size=n)
    kinds = rng.choice(np.array([CHARGED_HADRON, PHOTON, NEUTRAL_HADRON]), size=n, p=[0.62, 0.26, 0.12])
    charge = np.where(kinds == CHARGED_HADRON, rng.choice(np.array([-1, 1]), size=n), 0)
    return dict(
        pt_gev=pt_gev * z,
        eta=eta + spread * np.cos(angle),
        phi=_wrap(phi + spread * np.sin(angle)),
        charge=charge,
        kind=kinds,
        vz_mm=np.full(n, vz_mm),
        origin=np.full(n, origin),
    )


# --- four-vectors (E, px, py, pz), GeV ------------------------------------------------------------

def _p4_from_mass_pt_y_phi(mass_gev: float, pt_gev: float, rapidity: float, phi: float) -> np.ndarray:
    mt = np.hypot(mass_gev, pt_gev)
    return np.array([mt * np.cosh(rapidity), pt_gev * np.cos(phi), pt_gev * np.sin(phi), mt * np.sinh(rapidity)])


def _boost(p4: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Lorentz-boost four-vector `p4` by velocity `beta` (a 3-vector, |beta| < 1)."""
    b2 = float(beta @ beta)
    if b2 == 0.0:
        return p4.copy()
    gamma = 1.0 / np.sqrt(1.0 - b2)
    bp = float(beta @ p4[1:])
    space = p4[1:] + ((gamma - 1.0) * bp / b2 + gamma * p4[0]) * beta
    return np.concatenate(([gamma * (p4[0] + bp)], space))


def _two_body_decay(rng: np.random.Generator, parent: np.ndarray, m1_gev: float, m2_gev: float) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic decay (in the parent's rest frame) into two daughters; lab four-vectors."""
    m = np.sqrt(max(parent[0] ** 2 - parent[1:] @ parent[1:], 0.0))
    p_star = np.sqrt(max((m**2 - (m1_gev + m2_gev) ** 2) * (m**2 - (m1_gev - m2_gev) ** 2), 0.0)) / (2 * m)
    cos_t = rng.uniform(-1.0, 1.0)
    sin_t = np.sqrt(1.0 - cos_t**2)
    phi = rng.uniform(-np.pi, np.pi)
    direction = np.array([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t])
    d1 = np.concatenate(([np.hypot(m1_gev, p_star)], p_star * direction))
    d2 = np.concatenate(([np.hypot(m2_gev, p_star)], -p_star * direction))
    beta = parent[1:] / parent[0]
    return _boost(d1, beta), _boost(d2, beta)


def _pt_eta_phi(px: np.ndarray | float, py: np.ndarray | float, pz: np.ndarray | float) -> tuple:
    pt = np.hypot(px, py)
    return pt, np.arcsinh(pz / pt), np.arctan2(py, px)


def _boson(rng: np.random.Generator, mass_gev: float, max_rapidity: float) -> np.ndarray:
    """A resonance with a small transverse boost, flat in rapidity within +-max_rapidity."""
    pt = rng.exponential(BOSON_MEAN_PT_GEV)
    return _p4_from_mass_pt_y_phi(mass_gev, pt, rng.uniform(-max_rapidity, max_rapidity), rng.uniform(-np.pi, np.pi))


# --- processes: each returns (particle dicts, truth rows (kind, pt, eta, phi), neutrino (px, py)) ----

def _dijet(rng: np.random.Generator, cfg: PhysicsConfig, vz_mm: float) -> tuple[list, list, np.ndarray]:
    # Power-law spectrum above the minimum: inverse-CDF sampling.
    u = rng.random()
    pt = cfg.dijet_min_pt_gev * (1 - u) ** (-1.0 / (cfg.dijet_spectrum_index - 1))
    pt = min(pt, 2000.0)
    balance = rng.normal(1.0, 0.08)
    eta1, eta2 = rng.uniform(-2.2, 2.2, size=2)
    phi1 = rng.uniform(-np.pi, np.pi)
    phi2 = float(_wrap(phi1 + np.pi + rng.normal(0, 0.15)))
    truth = [(TRUTH_JET, pt, eta1, phi1), (TRUTH_JET, pt * balance, eta2, phi2)]
    parts = [_jet(rng, t[1], t[2], t[3], vz_mm, origin=k + 1) for k, t in enumerate(truth)]
    return parts, truth, np.zeros(2)


def _w_to_electron(rng: np.random.Generator, vz_mm: float) -> tuple[list, list, np.ndarray]:
    mass = float(np.clip(W_MASS_GEV + 0.5 * W_WIDTH_GEV * rng.standard_cauchy(), 60.0, 100.0))
    electron, neutrino = _two_body_decay(rng, _boson(rng, mass, W_MAX_RAPIDITY), 0.0, 0.0)
    pt, eta, phi = _pt_eta_phi(*electron[1:])
    charge = int(rng.choice(np.array([-1, 1])))
    part = dict(
        pt_gev=np.array([pt]), eta=np.array([eta]), phi=np.array([phi]), charge=np.array([charge]),
        kind=np.array([ELECTRON]), vz_mm=np.array([vz_mm]), origin=np.array([1]),
    )
    return [part], [(TRUTH_ELECTRON, pt, eta, phi)], neutrino[1:3]


def _tau_decay(rng: np.random.Generator, tau: np.ndarray, charge: int, vz_mm: float, origin: int) -> tuple[dict, tuple, np.ndarray]:
    """A hadronic tau decay in the collinear approximation.

    The neutrino takes a fraction U(0, 0.5) of the tau momentum along its direction; the
    visible pions (pi0 as two photons) share the rest and scatter within a cone of opening
    m_tau / pT_visible around the tau. The truth is the vector sum of the visible products.
    """
    nu_fraction = rng.uniform(0.0, TAU_NEUTRINO_MAX_FRACTION)
    pt_tau, eta_tau, phi_tau = _pt_eta_phi(*tau[1:])
    pt_vis = (1.0 - nu_fraction) * pt_tau
    if rng.random() < TAU_ONE_PRONG_FRACTION:
        n_pi0 = int(rng.choice(3, p=TAU_ONE_PRONG_PI0))
        charges = [charge]
    else:
        n_pi0 = int(rng.choice(2, p=TAU_THREE_PRONG_PI0))
        charges = [charge, charge, -charge]
    n_charged = len(charges)
    share = rng.dirichlet(np.full(n_charged + n_pi0, 2.0))
    split = rng.uniform(0.1, 0.9, size=n_pi0)  # pi0 -> two photons
    pt = np.concatenate([share[:n_charged], share[n_charged:] * split, share[n_charged:] * (1 - split)]) * pt_vis
    n = len(pt)
    cone = min(TAU_MASS_GEV / pt_vis, TAU_MAX_CONE)
    dr = cone * np.sqrt(rng.random(n))  # uniform over the cone's disc
    angle = rng.uniform(0, 2 * np.pi, size=n)
    eta = eta_tau + dr * np.cos(angle)
    phi = _wrap(phi_tau + dr * np.sin(angle))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    vis = _pt_eta_phi(px.sum(), py.sum(), pz.sum())
    part = dict(
        pt_gev=pt, eta=eta, phi=phi,
        charge=np.concatenate([charges, np.zeros(n - n_charged, dtype=np.int64)]),
        kind=np.concatenate([np.full(n_charged, CHARGED_HADRON), np.full(n - n_charged, PHOTON)]),
        vz_mm=np.full(n, vz_mm), origin=np.full(n, origin),
    )
    neutrino_pt = nu_fraction * tau[1:3]
    return part, (TRUTH_TAU, *vis), neutrino_pt


def _h_to_tautau(rng: np.random.Generator, vz_mm: float) -> tuple[list, list, np.ndarray]:
    taus = _two_body_decay(rng, _boson(rng, H_MASS_GEV, H_MAX_RAPIDITY), TAU_MASS_GEV, TAU_MASS_GEV)
    first_charge = int(rng.choice(np.array([-1, 1])))
    parts, truth, neutrinos = [], [], np.zeros(2)
    for k, (tau, charge) in enumerate(zip(taus, (first_charge, -first_charge))):
        part, row, nu = _tau_decay(rng, tau, charge, vz_mm, origin=k + 1)
        parts.append(part), truth.append(row)
        neutrinos = neutrinos + nu
    return parts, truth, neutrinos


def generate_event(cfg: PhysicsConfig, seed: int, l1_id: int) -> GeneratedEvent:
    """Generate the bunch crossing of Level-1 id `l1_id`: pile-up, and a hard process in a fraction."""
    rng = event_rng(seed, l1_id)
    process = choose_process(rng.random(), cfg)
    n_pileup = int(rng.poisson(cfg.pileup_mean))
    n_collisions = n_pileup + 1  # the triggering collision itself plus pile-up
    vz = rng.normal(0.0, cfg.vertex_sigma_z_mm, size=n_collisions)
    parts = [_minimum_bias(rng, n_collisions, vz, cfg)]
    truth: list = []
    neutrino_pt = np.zeros(2)
    if process == DIJET:
        hard, truth, neutrino_pt = _dijet(rng, cfg, vz[0])
        parts += hard
    elif process == ELECTRON_PROCESS:
        hard, truth, neutrino_pt = _w_to_electron(rng, vz[0])
        parts += hard
    elif process == HTAUTAU:
        hard, truth, neutrino_pt = _h_to_tautau(rng, vz[0])
        parts += hard
    merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}  # fresh arrays: no copy below
    particles = Particles(
        pt_gev=merged["pt_gev"].astype(np.float64, copy=False),
        eta=merged["eta"].astype(np.float64, copy=False),
        phi=merged["phi"].astype(np.float64, copy=False),
        charge=merged["charge"].astype(np.int8, copy=False),
        kind=merged["kind"].astype(np.int8, copy=False),
        vz_mm=merged["vz_mm"].astype(np.float64, copy=False),
        origin=merged["origin"].astype(np.int8, copy=False),
    )
    rows = np.array([t[1:] for t in truth], dtype=np.float64).reshape(len(truth), 3)
    return GeneratedEvent(
        particles=particles,
        process=process,
        n_pileup=n_pileup,
        truth_kind=np.array([t[0] for t in truth], dtype=np.int8),
        truth_pt_gev=rows[:, 0].copy(),
        truth_eta=rows[:, 1].copy(),
        truth_phi=rows[:, 2].copy(),
        true_met_gev=float(np.hypot(*neutrino_pt)),
        primary_vz_mm=float(vz[0]),
    )
