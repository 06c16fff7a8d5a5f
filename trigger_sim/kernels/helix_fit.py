"""Helix fit of tracks: a circle in the transverse plane, then a straight line in (s, z).

Conventions (those of trigger_sim.detector.simulate_tracker): a particle of charge q in a field
B along +z bends with radius R_mm = pT / (0.3 B) * 1000; from the beam line, phi(r) =
phi0 - q asin(r / 2R), so a positive track turns clockwise. The perigee is the point of closest
approach (PCA) of the circle to the beam line (x = y = 0): phi is the direction of motion
there, d0 is signed so that the PCA is (x, y) = (-d0 sin phi, d0 cos phi) (d0 > 0: the PCA lies
to the left of the direction of motion), and z0 is z at the PCA.

Algorithm (both implementations follow it exactly), per track, with the hits h whose
track_of_hit[h] equals the track's id, in hit order, in float64:

1. x = r cos(phi_hit), y = r sin(phi_hit), and r^2 from r itself.
2. Circle: the non-iterative fit of V. Karimaki, NIM A305 (1991) 187, with equal weights. It
   fits the curvature directly, so it stays exact for straight tracks. With means <.> over the
   n hits: C_xx = <xx> - <x><x>, C_xy, C_yy likewise, C_xr = <x r^2> - <x><r^2>, C_yr likewise,
   C_rr = <r^4> - <r^2>^2; q1 = C_rr C_xy - C_xr C_yr, q2 = C_rr (C_xx - C_yy) - C_xr^2 + C_yr^2;
   phi = atan2(2 q1, q2) / 2. The track is taken to move from its PCA towards its hits: if
   <x> cos phi + <y> sin phi < 0, phi is turned by pi (wrapped into (-pi, pi]) and sin phi,
   cos phi change sign. Then
   kappa = (sin phi C_xr - cos phi C_yr) / C_rr, delta = -kappa <r^2> + sin phi <x> - cos phi <y>,
   root = sqrt(1 - 4 delta kappa), rho = 2 kappa / root (signed curvature, 1/mm: rho > 0 for a
   clockwise track), d = 2 delta / (1 + root) (Karimaki's signed distance, PCA = d (sin phi,
   -cos phi)), so d0 = -d.
3. pT = 0.3 B / (1000 |rho|) GeV, charge = sign(rho) (rho == 0: pT = inf, charge 0).
4. Residual of each hit, its signed distance to the circle (stable for any rho):
   f = rho r^2 / 2 - (1 + rho d) (x sin phi - y cos phi) + rho d^2 / 2 + d,
   eps = 2 f / (1 + sqrt(max(1 + 2 rho f, 0))); chi2 = sum eps^2 / RPHI_RESOLUTION_MM^2 (the
   simulation's 0.015 mm hit resolution), chi2_ndf = chi2 / (n - 3) (NaN for n == 3).
5. Arc length from the PCA to each hit: (dx, dy) = (x, y) - PCA, chord c = sqrt(dx^2 + dy^2),
   a = |rho| c / 2, s = c asin(min(a, 1)) / a (s = c if a == 0), negative if
   x cos phi + y sin phi < 0.
6. Line z = z0 + s cot(theta), least squares with equal weights: S_ss = sum s^2 - n <s>^2,
   S_sz = sum s z - n <s> <z>, cot = S_sz / S_ss, z0 = <z> - cot <s>, eta = asinh(cot).

Tracks with fewer than 3 hits, and degenerate ones (C_rr <= 0, i.e. all hits at one radius;
1 - 4 delta kappa <= 0; S_ss <= 0), get NaN parameters; TRACK_N_HITS is always filled.
"""

from __future__ import annotations

import math

import numpy as np

from trigger_sim.kernels._jit import njit

# Columns of the array returned by fit_helices / fit_helices_reference.
TRACK_PT = 0  # GeV
TRACK_PHI = 1  # direction at the PCA, (-pi, pi]
TRACK_ETA = 2
TRACK_D0 = 3  # mm, signed transverse impact parameter
TRACK_Z0 = 4  # mm, z at the PCA
TRACK_CHARGE = 5  # +1, -1 (0 for a fit with zero curvature)
TRACK_N_HITS = 6
TRACK_CHI2_NDF = 7  # of the circle fit, hit resolution RPHI_RESOLUTION_MM
N_TRACK_COLUMNS = 8

RPHI_RESOLUTION_MM = 0.015
_GEV_PER_TESLA_MM = 0.3e-3  # pT [GeV] = 0.3e-3 * B [T] * R [mm]
_PI = math.pi
# Per-track sums of step 2, in this column order in both implementations.
_N, _X, _Y, _XX, _XY, _YY, _XR2, _YR2, _R2, _R4 = range(10)


def _check_inputs(
    track_of_hit: np.ndarray,
    n_tracks: int,
    r_mm: np.ndarray,
    phi: np.ndarray,
    z_mm: np.ndarray,
    field_t: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate shapes, track ids and the field; fix dtypes (float64: float32 hits are exact)."""
    track_of_hit = np.asarray(track_of_hit)
    r_mm = np.ascontiguousarray(r_mm, dtype=np.float64)
    phi = np.ascontiguousarray(phi, dtype=np.float64)
    z_mm = np.ascontiguousarray(z_mm, dtype=np.float64)
    if track_of_hit.ndim != 1 or not track_of_hit.shape == r_mm.shape == phi.shape == z_mm.shape:
        raise ValueError(
            f"track_of_hit {track_of_hit.shape}, r_mm {r_mm.shape}, phi {phi.shape} and z_mm"
            f" {z_mm.shape} must be 1-D arrays of the same length"
        )
    if track_of_hit.size and not np.issubdtype(track_of_hit.dtype, np.integer):
        raise ValueError(f"track_of_hit must hold integer track ids, got {track_of_hit.dtype}")
    if not 0 <= n_tracks <= np.iinfo(np.int32).max:
        raise ValueError(f"n_tracks must lie in [0, 2**31), got {n_tracks}")
    if track_of_hit.size and (track_of_hit.min() < -1 or track_of_hit.max() >= n_tracks):
        raise ValueError(
            f"track ids must lie in [-1, {n_tracks}) (-1: no track), got"
            f" [{track_of_hit.min()}, {track_of_hit.max()}]"
        )
    if not (math.isfinite(field_t) and field_t > 0.0):
        raise ValueError(f"field_t must be positive and finite, got {field_t}")
    return np.ascontiguousarray(track_of_hit, dtype=np.int32), r_mm, phi, z_mm


def fit_helices(
    track_of_hit: np.ndarray,
    n_tracks: int,
    r_mm: np.ndarray,
    phi: np.ndarray,
    z_mm: np.ndarray,
    field_t: float,
) -> np.ndarray:
    """Fit a helix to the hits of each track (numba).

    track_of_hit: (n_hits,) track id of each hit in [0, n_tracks), -1 for none (as build_tracks
    returns); r_mm, phi, z_mm: (n_hits,) hit positions; field_t: solenoid field in tesla.
    Returns float64 (n_tracks, N_TRACK_COLUMNS), columns TRACK_PT .. TRACK_CHI2_NDF.
    """
    track_of_hit, r_mm, phi, z_mm = _check_inputs(track_of_hit, n_tracks, r_mm, phi, z_mm, field_t)
    # Scalars are normalised so that only one compiled specialisation (the cached one) exists.
    return _fit_helices_kernel(track_of_hit, int(n_tracks), r_mm, phi, z_mm, float(field_t))


@njit
def _fit_helices_kernel(track_of_hit, n_tracks, r_mm, phi, z_mm, field_t):
    n_hits = track_of_hit.size
    out = np.full((n_tracks, N_TRACK_COLUMNS), np.nan)

    # Step 1 and the sums of step 2, hits in order (the reference's bincount order).
    sums = np.zeros((n_tracks, 10))
    x = np.empty(n_hits)
    y = np.empty(n_hits)
    for h in range(n_hits):
        t = track_of_hit[h]
        if t < 0:
            continue
        r = r_mm[h]
        xh = r * math.cos(phi[h])
        yh = r * math.sin(phi[h])
        r2 = r * r
        x[h] = xh
        y[h] = yh
        sums[t, _N] += 1.0
        sums[t, _X] += xh
        sums[t, _Y] += yh
        sums[t, _XX] += xh * xh
        sums[t, _XY] += xh * yh
        sums[t, _YY] += yh * yh
        sums[t, _XR2] += xh * r2
        sums[t, _YR2] += yh * r2
        sums[t, _R2] += r2
        sums[t, _R4] += r2 * r2

    # Steps 2-3: circle per track.
    ok = np.zeros(n_tracks, dtype=np.bool_)
    rho = np.zeros(n_tracks)
    d = np.zeros(n_tracks)
    sin_phi = np.zeros(n_tracks)
    cos_phi = np.zeros(n_tracks)
    for t in range(n_tracks):
        n = sums[t, _N]
        out[t, TRACK_N_HITS] = n
        if n < 3.0:
            continue
        mx, my = sums[t, _X] / n, sums[t, _Y] / n
        mr2 = sums[t, _R2] / n
        c_xx = sums[t, _XX] / n - mx * mx
        c_xy = sums[t, _XY] / n - mx * my
        c_yy = sums[t, _YY] / n - my * my
        c_xr = sums[t, _XR2] / n - mx * mr2
        c_yr = sums[t, _YR2] / n - my * mr2
        c_rr = sums[t, _R4] / n - mr2 * mr2
        if not c_rr > 0.0:
            continue
        q1 = c_rr * c_xy - c_xr * c_yr
        q2 = c_rr * (c_xx - c_yy) - c_xr * c_xr + c_yr * c_yr
        ph = 0.5 * math.atan2(2.0 * q1, q2)
        sp, cp = math.sin(ph), math.cos(ph)
        if mx * cp + my * sp < 0.0:
            ph = ph - _PI if ph > 0.0 else ph + _PI
            sp, cp = -sp, -cp
        kappa = (sp * c_xr - cp * c_yr) / c_rr
        delta = -kappa * mr2 + sp * mx - cp * my
        arg = 1.0 - 4.0 * delta * kappa
        if not arg > 0.0:
            continue
        root = math.sqrt(arg)
        rho[t] = 2.0 * kappa / root
        d[t] = 2.0 * delta / (1.0 + root)
        sin_phi[t], cos_phi[t] = sp, cp
        ok[t] = True
        out[t, TRACK_PHI] = ph
        out[t, TRACK_D0] = -d[t]
        if rho[t] == 0.0:
            out[t, TRACK_PT] = np.inf
            out[t, TRACK_CHARGE] = 0.0
        else:
            out[t, TRACK_PT] = _GEV_PER_TESLA_MM * field_t / abs(rho[t])
            out[t, TRACK_CHARGE] = 1.0 if rho[t] > 0.0 else -1.0

    # Steps 4-5: residuals and arc lengths, summed per track in hit order.
    zsums = np.zeros((n_tracks, 5))  # sum eps^2, sum s, sum z, sum s^2, sum s z
    for h in range(n_hits):
        t = track_of_hit[h]
        if t < 0 or not ok[t]:
            continue
        rt, dt, sp, cp = rho[t], d[t], sin_phi[t], cos_phi[t]
        xh, yh, zh = x[h], y[h], z_mm[h]
        r = r_mm[h]
        f = 0.5 * rt * r * r - (1.0 + rt * dt) * (xh * sp - yh * cp) + 0.5 * rt * dt * dt + dt
        eps = 2.0 * f / (1.0 + math.sqrt(max(1.0 + 2.0 * rt * f, 0.0)))
        dx, dy = xh - dt * sp, yh + dt * cp
        chord = math.sqrt(dx * dx + dy * dy)
        a = 0.5 * abs(rt) * chord
        s = chord if a == 0.0 else chord * math.asin(min(a, 1.0)) / a
        if xh * cp + yh * sp < 0.0:
            s = -s
        zsums[t, 0] += eps * eps
        zsums[t, 1] += s
        zsums[t, 2] += zh
        zsums[t, 3] += s * s
        zsums[t, 4] += s * zh

    # Step 6: the line in (s, z), and chi2 / ndf.
    for t in range(n_tracks):
        if not ok[t]:
            continue
        n = sums[t, _N]
        if n > 3.0:
            chi2 = zsums[t, 0] / (RPHI_RESOLUTION_MM * RPHI_RESOLUTION_MM)
            out[t, TRACK_CHI2_NDF] = chi2 / (n - 3.0)
        ms, mz = zsums[t, 1] / n, zsums[t, 2] / n
        s_ss = zsums[t, 3] - n * ms * ms
        s_sz = zsums[t, 4] - n * ms * mz
        if not s_ss > 0.0:
            out[t, :] = np.nan
            out[t, TRACK_N_HITS] = n
            continue
        cot = s_sz / s_ss
        out[t, TRACK_ETA] = math.asinh(cot)
        out[t, TRACK_Z0] = mz - cot * ms
    return out


def fit_helices_reference(
    track_of_hit: np.ndarray,
    n_tracks: int,
    r_mm: np.ndarray,
    phi: np.ndarray,
    z_mm: np.ndarray,
    field_t: float,
) -> np.ndarray:
    """Plain-numpy reference of fit_helices: per-track sums with bincount, vectorised formulas."""
    track_of_hit, r_mm, phi, z_mm = _check_inputs(track_of_hit, n_tracks, r_mm, phi, z_mm, field_t)
    hits = np.flatnonzero(track_of_hit >= 0)
    t = track_of_hit[hits]
    r, z = r_mm[hits], z_mm[hits]
    x, y = r * np.cos(phi[hits]), r * np.sin(phi[hits])
    r2 = r * r

    def per_track(values: np.ndarray) -> np.ndarray:
        return np.bincount(t, weights=values, minlength=n_tracks)

    n = np.bincount(t, minlength=n_tracks).astype(np.float64)
    out = np.full((n_tracks, N_TRACK_COLUMNS), np.nan)
    out[:, TRACK_N_HITS] = n

    with np.errstate(divide="ignore", invalid="ignore"):  # failing tracks become NaN
        mx, my, mr2 = per_track(x) / n, per_track(y) / n, per_track(r2) / n
        c_xx = per_track(x * x) / n - mx * mx
        c_xy = per_track(x * y) / n - mx * my
        c_yy = per_track(y * y) / n - my * my
        c_xr = per_track(x * r2) / n - mx * mr2
        c_yr = per_track(y * r2) / n - my * mr2
        c_rr = per_track(r2 * r2) / n - mr2 * mr2
        q1 = c_rr * c_xy - c_xr * c_yr
        q2 = c_rr * (c_xx - c_yy) - c_xr * c_xr + c_yr * c_yr
        ph = 0.5 * np.arctan2(2.0 * q1, q2)
        sp, cp = np.sin(ph), np.cos(ph)
        backwards = mx * cp + my * sp < 0.0
        ph = np.where(backwards, np.where(ph > 0.0, ph - _PI, ph + _PI), ph)
        sp, cp = np.where(backwards, -sp, sp), np.where(backwards, -cp, cp)
        kappa = (sp * c_xr - cp * c_yr) / c_rr
        delta = -kappa * mr2 + sp * mx - cp * my
        arg = 1.0 - 4.0 * delta * kappa
        ok = (n >= 3.0) & (c_rr > 0.0) & (arg > 0.0)
        root = np.sqrt(arg)
        rho = np.where(ok, 2.0 * kappa / root, 0.0)
        d = np.where(ok, 2.0 * delta / (1.0 + root), 0.0)

        # Per hit: residual and arc length from the PCA.
        rt, dt, spt, cpt = rho[t], d[t], sp[t], cp[t]
        f = 0.5 * rt * r * r - (1.0 + rt * dt) * (x * spt - y * cpt) + 0.5 * rt * dt * dt + dt
        eps = 2.0 * f / (1.0 + np.sqrt(np.maximum(1.0 + 2.0 * rt * f, 0.0)))
        dx, dy = x - dt * spt, y + dt * cpt
        chord = np.sqrt(dx * dx + dy * dy)
        a = 0.5 * np.abs(rt) * chord
        s = np.where(a == 0.0, chord, chord * np.arcsin(np.minimum(a, 1.0)) / a)
        s = np.where(x * cpt + y * spt < 0.0, -s, s)

        ms, mz = per_track(s) / n, per_track(z) / n
        s_ss = per_track(s * s) - n * ms * ms
        s_sz = per_track(s * z) - n * ms * mz
        cot = s_sz / s_ss
        ok &= s_ss > 0.0
        fitted = np.flatnonzero(ok)
        out[fitted, TRACK_PT] = np.where(
            rho == 0.0, np.inf, _GEV_PER_TESLA_MM * field_t / np.abs(rho)
        )[fitted]
        out[fitted, TRACK_PHI] = ph[fitted]
        out[fitted, TRACK_ETA] = np.arcsinh(cot[fitted])
        out[fitted, TRACK_D0] = -d[fitted]
        out[fitted, TRACK_Z0] = (mz - cot * ms)[fitted]
        out[fitted, TRACK_CHARGE] = np.sign(rho[fitted])
        chi2_ndf = per_track(eps * eps) / (RPHI_RESOLUTION_MM * RPHI_RESOLUTION_MM) / (n - 3.0)
        with_ndf = fitted[n[fitted] > 3.0]
        out[with_ndf, TRACK_CHI2_NDF] = chi2_ndf[with_ndf]
    return out
