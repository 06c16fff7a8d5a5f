"""Pile-up subtraction for calorimeter jets: the median energy density of the event, times the jet's area.

What the ATLAS and CMS HLT do for jets and HT (Cacciari-Salam "jet area" subtraction; CMS's
`FixedGridRho` on calorimeter towers): pile-up spreads soft energy evenly over the calorimeter,
a hard jet occupies a small part of it, so the median over coarse cells of the ET per unit of
eta-phi area, rho, measures the pile-up alone, event by event. A jet of area A then carries
about rho x A of pile-up, which is subtracted from its pT:

- rho: the calorimeter is divided into cells of `RHO_CELL_TOWERS` towers (eta x phi, about
  0.5 x 0.4 with the default 0.1 x 0.098 towers, near CMS's 0.55 grid); per cell, the sum of
  tower ET divided by the cell's eta-phi area; rho is the median over cells (0 when the
  calorimeter is empty);
- a jet's area: the eta-phi area of the towers whose centres lie within the cone radius of the
  jet axis (a cone cut by the calorimeter's edge in eta is smaller);
- the jet's pT becomes max(pT - rho x area, 0). The jets stay in their order and number, so
  the tagger's scores (computed on the jets as measured) still line up with them. The menu's
  jet, HT and EM-jet thresholds apply to the subtracted pT; chains with a tagger cut keep the
  measured pT, the scale the tagger was trained on (`menu.TriggerObjects`).
"""

from __future__ import annotations

import numpy as np

from trigger_sim.kernels.calo_jets import JET_ETA, JET_PHI, JET_PT

RHO_CELL_TOWERS = (5, 4)  # towers per rho cell in eta and in phi


def median_density_gev(em_gev: np.ndarray, had_gev: np.ndarray, eta_centers: np.ndarray,
                       cell_towers: tuple[int, int] = RHO_CELL_TOWERS) -> float:
    """rho: the median over cells of their ET per unit eta-phi area (GeV). Towers beyond the last
    whole cell in eta or phi are left out."""
    n_eta, n_phi = em_gev.shape
    ce, cp = cell_towers
    if ce < 1 or cp < 1 or ce > n_eta or cp > n_phi:
        raise ValueError(f"rho cells of {ce} x {cp} towers do not fit a {n_eta} x {n_phi} calorimeter")
    et = (em_gev.astype(np.float64) + had_gev) / np.cosh(np.asarray(eta_centers, np.float64))[:, None]
    m_eta, m_phi = n_eta // ce, n_phi // cp
    cells = et[: m_eta * ce, : m_phi * cp].reshape(m_eta, ce, m_phi, cp).sum(axis=(1, 3))
    tower_area = _tower_area(eta_centers, n_phi)
    return float(np.median(cells)) / (ce * cp * tower_area)


def jet_areas(jets: np.ndarray, eta_centers: np.ndarray, phi_centers: np.ndarray, radius: float) -> np.ndarray:
    """Per jet: the eta-phi area of the towers whose centres are within `radius` of its axis."""
    if len(jets) == 0:
        return np.zeros(0)
    eta_c, phi_c = np.asarray(eta_centers, np.float64), np.asarray(phi_centers, np.float64)
    deta = jets[:, JET_ETA].astype(np.float64)[:, None] - eta_c[None, :]  # (jets, n_eta)
    dphi = np.angle(np.exp(1j * (jets[:, JET_PHI].astype(np.float64)[:, None] - phi_c[None, :])))  # (jets, n_phi)
    inside = deta[:, :, None] ** 2 + dphi[:, None, :] ** 2 < radius**2
    return inside.sum(axis=(1, 2)) * _tower_area(eta_c, len(phi_c))


def subtract_pileup(jets: np.ndarray, rho_gev: float, areas: np.ndarray) -> np.ndarray:
    """A copy of `jets` with pT reduced by rho x area (never below 0); order and columns kept."""
    out = np.array(jets, copy=True)
    if len(out):
        out[:, JET_PT] = np.maximum(out[:, JET_PT].astype(np.float64) - rho_gev * areas, 0.0)
    return out


def _tower_area(eta_centers: np.ndarray, n_phi: int) -> float:
    deta = float(eta_centers[1] - eta_centers[0]) if len(eta_centers) > 1 else 1.0
    return deta * 2.0 * np.pi / n_phi


def menu_jets(jets: np.ndarray, em_gev: np.ndarray, had_gev: np.ndarray, eta_centers: np.ndarray, phi_centers: np.ndarray,
              radius: float, enabled: bool = True) -> np.ndarray | None:
    """The jets the menu's untagged jet thresholds and HT see: pile-up subtracted when
    `enabled` (`features.jet_pileup_subtraction`), else None (the menu then uses the jets as
    measured)."""
    if not enabled:
        return None
    if len(jets) == 0:
        return jets
    rho = median_density_gev(em_gev, had_gev, eta_centers)
    return subtract_pileup(jets, rho, jet_areas(jets, eta_centers, phi_centers, radius))
