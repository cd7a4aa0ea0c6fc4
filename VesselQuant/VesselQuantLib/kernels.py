"""Compiled per-voxel kernels of VesselQuant (numba, run in parallel on all cores).

The per-voxel work of the vesselness filter (Hessian by central differences, closed-form eigen
decomposition, Frangi's measure, tube axis), of the graph cut's data term (line averages along the
tube axis, merging scales, index arithmetic), of the centreline's cross-section radius and of the lung mask's chords
across a vessel's end is compiled with numba: ITK's
HessianToObjectnessMeasureImageFilter only works on whole images (the slow baseline VesselQuant has
to beat), NumPy would need a dozen full-length temporaries per step, and numpy.linalg.eigvalsh on
millions of 3x3 matrices is slower still. Kernels are cached on disk after the first compilation.
Imported only inside the functions that use them, so Slicer can load the module before its Python
requirements are installed.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _eigen_sorted(a11, a22, a33, a12, a13, a23):
    """Eigenvalues of a symmetric 3x3 matrix (closed form, Smith 1961), sorted by |value|."""
    q = (a11 + a22 + a33) / 3.0
    p1 = a12 * a12 + a13 * a13 + a23 * a23
    b11, b22, b33 = a11 - q, a22 - q, a33 - q
    p = np.sqrt((b11 * b11 + b22 * b22 + b33 * b33 + 2.0 * p1) / 6.0)
    safe = p if p > 0 else 1.0
    det = (b11 * (b22 * b33 - a23 * a23) - a12 * (a12 * b33 - a23 * a13) + a13 * (a12 * a23 - b22 * a13)) / (
        safe * safe * safe
    )
    phi = np.arccos(min(max(det / 2.0, -1.0), 1.0)) / 3.0
    e1 = q + 2.0 * p * np.cos(phi)
    e3 = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
    e2 = 3.0 * q - e1 - e3
    # sort three values by magnitude (stable, like argsort)
    if abs(e2) < abs(e1):
        e1, e2 = e2, e1
    if abs(e3) < abs(e2):
        e2, e3 = e3, e2
        if abs(e2) < abs(e1):
            e1, e2 = e2, e1
    return e1, e2, e3


@numba.njit(cache=True)
def _unravel(index, ny, nx):
    """(z, y, x) of a flat C-order index into an array with ``ny`` rows and ``nx`` columns per slice."""
    z, rest = divmod(index, ny * nx)
    y, x = divmod(rest, nx)
    return z, y, x


@numba.njit(cache=True)
def _hessian(a, z, y, x, hz, hy, hx, scale2):
    """Scale-normalised central-difference Hessian of ``a`` at (z, y, x), edge values repeated at the border.

    Returns (xx, yy, zz, xy, xz, yz).
    """
    nz, ny, nx = a.shape
    zm, zp = max(z - 1, 0), min(z + 1, nz - 1)
    ym, yp = max(y - 1, 0), min(y + 1, ny - 1)
    xm, xp = max(x - 1, 0), min(x + 1, nx - 1)
    c2 = 2.0 * np.float64(a[z, y, x])
    hxx = (np.float64(a[z, y, xp]) + a[z, y, xm] - c2) / (hx * hx)
    hyy = (np.float64(a[z, yp, x]) + a[z, ym, x] - c2) / (hy * hy)
    hzz = (np.float64(a[zp, y, x]) + a[zm, y, x] - c2) / (hz * hz)
    hxy = (np.float64(a[z, yp, xp]) - a[z, ym, xp] - a[z, yp, xm] + a[z, ym, xm]) / (4.0 * hx * hy)
    hxz = (np.float64(a[zp, y, xp]) - a[zm, y, xp] - a[zp, y, xm] + a[zm, y, xm]) / (4.0 * hx * hz)
    hyz = (np.float64(a[zp, yp, x]) - a[zm, yp, x] - a[zp, ym, x] + a[zm, ym, x]) / (4.0 * hy * hz)
    return hxx * scale2, hyy * scale2, hzz * scale2, hxy * scale2, hxz * scale2, hyz * scale2


@numba.njit(cache=True)
def _frangi(l1, l2, l3, alpha, beta, c):
    """Frangi's vesselness of a bright tube from eigenvalues sorted by magnitude."""
    if l2 >= 0.0 or l3 >= 0.0:
        return 0.0
    a2, a3 = abs(l2), abs(l3)
    ra = a2 / a3
    rb = abs(l1) / np.sqrt(a2 * a3)
    s2 = l1 * l1 + l2 * l2 + l3 * l3
    return (
        (1.0 - np.exp(-(ra * ra) / (2.0 * alpha * alpha)))
        * np.exp(-(rb * rb) / (2.0 * beta * beta))
        * (1.0 - np.exp(-s2 / (2.0 * c * c)))
    )


@numba.njit(cache=True)
def eigenvalues_many(hxx, hyy, hzz, hxy, hxz, hyz, out):
    for i in range(hxx.size):
        out[i, 0], out[i, 1], out[i, 2] = _eigen_sorted(hxx[i], hyy[i], hzz[i], hxy[i], hxz[i], hyz[i])


@numba.njit(cache=True, parallel=True)
def hessian_norms(a, flat, steps, scale2):
    """Frobenius norm of the scale-normalised Hessian at flat indices of ``a``."""
    ny, nx = a.shape[1], a.shape[2]
    out = np.empty(flat.size)
    for i in numba.prange(flat.size):
        z, y, x = _unravel(flat[i], ny, nx)
        hxx, hyy, hzz, hxy, hxz, hyz = _hessian(a, z, y, x, steps[0], steps[1], steps[2], scale2)
        out[i] = np.sqrt(hxx * hxx + hyy * hyy + hzz * hzz + 2.0 * (hxy * hxy + hxz * hxz + hyz * hyz))
    return out


@numba.njit(cache=True, parallel=True)
def frangi_grid(a, mask, level, steps, scale2, alpha, beta, c, best, ridge_out, scale, best_scale, fine):
    """Frangi vesselness at mask voxels whose value exceeds ``level``, kept in ``best`` where it is larger (the
    maximum over scales: on zeros, the map of this scale).

    Where it is larger, ``scale`` goes into ``best_scale``, and ``fine`` keeps its own maximum, when they have the
    shape of ``a`` (pass empty arrays otherwise). If ``ridge_out`` has that shape, the ridge strength of bright tubes,
    -(l2 + l3) where both cross-sectional eigenvalues are negative (0 elsewhere), goes there too: unlike Frangi's
    measure it does not saturate, and a linear slope (the blurred edge of a nearby thick vessel) adds nothing to it.
    """
    nz, ny, nx = a.shape
    with_ridge = ridge_out.shape == a.shape
    with_scale = best_scale.shape == a.shape
    with_fine = fine.shape == a.shape
    for z in numba.prange(nz):
        for y in range(ny):
            for x in range(nx):
                if mask[z, y, x] and a[z, y, x] > level:
                    hxx, hyy, hzz, hxy, hxz, hyz = _hessian(a, z, y, x, steps[0], steps[1], steps[2], scale2)
                    l1, l2, l3 = _eigen_sorted(hxx, hyy, hzz, hxy, hxz, hyz)
                    v = _frangi(l1, l2, l3, alpha, beta, c)
                    if v > best[z, y, x]:
                        best[z, y, x] = v
                        if with_scale:
                            best_scale[z, y, x] = scale
                    if with_fine and v > fine[z, y, x]:
                        fine[z, y, x] = v
                    if with_ridge and l2 < 0.0 and l3 < 0.0:
                        ridge_out[z, y, x] = -(l2 + l3)


@numba.njit(cache=True, parallel=True)
def tube_axes(a, flat, steps, scale2, out):
    """Unit tube axis (z, y, x) at flat indices: the Hessian eigenvector of the smallest-magnitude eigenvalue.

    Closed form: the largest cross product of two rows of (H - l1 I).
    """
    ny, nx = a.shape[1], a.shape[2]
    for i in numba.prange(flat.size):
        z, y, x = _unravel(flat[i], ny, nx)
        hxx, hyy, hzz, hxy, hxz, hyz = _hessian(a, z, y, x, steps[0], steps[1], steps[2], scale2)
        l1, _, _ = _eigen_sorted(hxx, hyy, hzz, hxy, hxz, hyz)
        rows = ((hxx - l1, hxy, hxz), (hxy, hyy - l1, hyz), (hxz, hyz, hzz - l1))
        best, bx, by, bz = -1.0, 0.0, 0.0, 1.0
        for j, k in ((0, 1), (0, 2), (1, 2)):
            u, w = rows[j], rows[k]
            cx = u[1] * w[2] - u[2] * w[1]
            cy = u[2] * w[0] - u[0] * w[2]
            cz = u[0] * w[1] - u[1] * w[0]
            n = cx * cx + cy * cy + cz * cz
            if n > best:
                best, bx, by, bz = n, cx, cy, cz
        length = np.sqrt(best)
        if length > 0:
            out[i, 0], out[i, 1], out[i, 2] = bz / length, by / length, bx / length
        else:
            out[i, 0], out[i, 1], out[i, 2] = 1.0, 0.0, 0.0


@numba.njit(cache=True, parallel=True)
def merge_scale(values, scale, mask, best, best_scale, fine, into_fine):
    """Keep the per-voxel maximum over scales (and over the fine scales) inside ``mask``; the winning ``scale`` goes
    into ``best_scale`` when it has the shape of ``values`` (pass an empty array otherwise)."""
    nz, ny, nx = values.shape
    with_scale = best_scale.shape == values.shape
    for z in numba.prange(nz):
        for y in range(ny):
            for x in range(nx):
                if mask[z, y, x]:
                    v = values[z, y, x]
                    if v > best[z, y, x]:
                        best[z, y, x] = v
                        if with_scale:
                            best_scale[z, y, x] = scale
                    if into_fine and v > fine[z, y, x]:
                        fine[z, y, x] = v


@numba.njit(cache=True)
def _cell(c, n):
    """Lower corner and weight of the linear-interpolation cell of coordinate ``c`` on an axis of ``n`` voxels
    (clamped to the grid, like scipy's mode="nearest")."""
    c = min(max(c, 0.0), n - 1.0)
    lower = min(int(c), max(n - 2, 0))
    return lower, min(lower + 1, n - 1), c - lower


@numba.njit(cache=True)
def _trilinear(a, z, y, x):
    """Linear interpolation of ``a`` at a continuous (z, y, x) index."""
    z0, z1, fz = _cell(z, a.shape[0])
    y0, y1, fy = _cell(y, a.shape[1])
    x0, x1, fx = _cell(x, a.shape[2])
    return _in_cell(a, z0, z1, fz, y0, y1, fy, x0, x1, fx)


@numba.njit(cache=True)
def _in_cell(a, z0, z1, fz, y0, y1, fy, x0, x1, fx):
    """Linear interpolation of ``a`` in the cell of corners (z0, y0, x0)-(z1, y1, x1) at fractions (fz, fy, fx)."""
    c00 = a[z0, y0, x0] * (1 - fx) + a[z0, y0, x1] * fx
    c01 = a[z0, y1, x0] * (1 - fx) + a[z0, y1, x1] * fx
    c10 = a[z1, y0, x0] * (1 - fx) + a[z1, y0, x1] * fx
    c11 = a[z1, y1, x0] * (1 - fx) + a[z1, y1, x1] * fx
    return (c00 * (1 - fy) + c01 * fy) * (1 - fz) + (c10 * (1 - fy) + c11 * fy) * fz


@numba.njit(cache=True)
def _line_mean(a, z, y, x, sz, sy, sx, offsets):
    """Mean of ``a`` at the continuous index (z, y, x) and at ``offset x (sz, sy, sx)`` from it."""
    total = _trilinear(a, z, y, x)
    for o in offsets:
        total += _trilinear(a, z + o * sz, y + o * sy, x + o * sx)
    return total / (1 + offsets.size)


@numba.njit(cache=True, parallel=True)
def line_average(a, points, steps, offsets):
    """Mean of ``a`` at each point and at ``point + offset * step`` for every offset.

    ``points`` (n, 3) are voxel indices, ``steps`` (n, 3) the direction in voxels per unit of offset;
    off-grid samples are linearly interpolated.
    """
    n = points.shape[0]
    out = np.empty(n)
    for i in numba.prange(n):
        out[i] = _line_mean(a, points[i, 0], points[i, 1], points[i, 2], steps[i, 0], steps[i, 1], steps[i, 2], offsets)
    return out


@numba.njit(cache=True, parallel=True)
def cross_section_maximum(a, points, steps, offsets, spacing, cos_limit, slack):
    """Whether each point's line average (as in :func:`line_average`) is at least ``slack`` x that of every
    26-neighbour lying across the line (its offset makes an angle with the line whose cosine is at most
    ``cos_limit``), each averaged along the same line: non-maximum suppression that keeps about one voxel per
    cross-section of a thin tube, like Canny's edge thinning. ``spacing`` (3,) is the voxel size in mm.

    A neighbour's samples lie one voxel off the point's along each axis, so the interpolation cells of every sample
    of the point and its neighbours are found first (3 per axis and sample) and shared by the neighbours: the same
    arithmetic as :func:`_line_mean` at each neighbour, at a third less cost.
    """
    n = points.shape[0]
    samples = offsets.size + 1
    out = np.empty(n, np.bool_)
    for block in numba.prange((n + _BLOCK - 1) // _BLOCK):
        # cells[k, axis, d]: the cell of sample k (0: the point, then the offsets) at neighbour offset d - 1
        lower = np.empty((samples, 3, 3), np.int64)
        upper = np.empty((samples, 3, 3), np.int64)
        frac = np.empty((samples, 3, 3))
        for i in range(block * _BLOCK, min(n, (block + 1) * _BLOCK)):
            for k in range(samples):
                for axis in range(3):
                    for d in range(3):
                        c = points[i, axis] + (d - 1)
                        if k > 0:
                            c = c + offsets[k - 1] * steps[i, axis]
                        lower[k, axis, d], upper[k, axis, d], frac[k, axis, d] = _cell(c, a.shape[axis])
            # the line direction in mm (steps are voxels per mm of offset)
            az, ay, ax = steps[i, 0] * spacing[0], steps[i, 1] * spacing[1], steps[i, 2] * spacing[2]
            anorm = np.sqrt(az * az + ay * ay + ax * ax)
            centre = _mean_over_samples(a, lower, upper, frac, 1, 1, 1)
            keep = True
            for dz in range(-1, 2):
                for dy in range(-1, 2):
                    for dx in range(-1, 2):
                        if not keep or (dz == 0 and dy == 0 and dx == 0):
                            continue
                        oz, oy, ox = dz * spacing[0], dy * spacing[1], dx * spacing[2]
                        along = abs(oz * az + oy * ay + ox * ax) / (np.sqrt(oz * oz + oy * oy + ox * ox) * anorm)
                        if along > cos_limit:
                            continue
                        if slack * _mean_over_samples(a, lower, upper, frac, dz + 1, dy + 1, dx + 1) > centre:
                            keep = False
            out[i] = keep
    return out


# Points per parallel task of :func:`cross_section_maximum` (its scratch cells are allocated once per task).
_BLOCK = 1024


@numba.njit(cache=True)
def _mean_over_samples(a, lower, upper, frac, dz, dy, dx):
    """Mean of the interpolated samples of :func:`cross_section_maximum`'s cells at neighbour index (dz, dy, dx)."""
    total = 0.0
    for k in range(lower.shape[0]):
        total += _in_cell(
            a,
            lower[k, 0, dz],
            upper[k, 0, dz],
            frac[k, 0, dz],
            lower[k, 1, dy],
            upper[k, 1, dy],
            frac[k, 1, dy],
            lower[k, 2, dx],
            upper[k, 2, dx],
            frac[k, 2, dx],
        )
    return total / lower.shape[0]


@numba.njit(cache=True, parallel=True)
def cross_section_radius(hu, label, owner, centres_mm, u, v, spacing, inner, outer, step, vessel_hu, background_hu):
    """Partial-volume radius (mm) at each centreline point (NaN where the vessel has no contrast); see
    :func:`VesselQuantLib.centerline.subvoxel_radius` for the method.

    ``centres_mm`` (n, 3) are the points in mm, ``u`` and ``v`` (n, 3) unit vectors spanning each cross-section;
    the disc of radius ``inner[i]`` is integrated, the ring out to ``outer[i]`` gives the local background. Samples
    lie on a square grid of ``step`` mm; the label (uint8) and ``owner`` (the index of each vessel voxel's nearest
    centreline point) are read at the nearest voxel, the HU linearly interpolated (clamped to the grid).
    """
    n = centres_mm.shape[0]
    out = np.empty(n)
    for i in numba.prange(n):
        g = int(np.ceil(outer[i] / step))
        reach = g * step
        foreign_gap = 1.5 * outer[i] + step  # a segmented sample whose centreline point is farther: another vessel
        ring = np.empty((2 * g + 1) * (2 * g + 1))
        disc_hu = np.empty((2 * g + 1) * (2 * g + 1))  # the disc's HU, NaN where another vessel's
        in_ring = 0
        in_disc = 0
        for ia in range(-g, g + 1):
            for ib in range(-g, g + 1):
                a, b = ia * step, ib * step
                rho = np.hypot(a, b)
                if rho > reach:
                    continue
                z = (centres_mm[i, 0] + a * u[i, 0] + b * v[i, 0]) / spacing[0]
                y = (centres_mm[i, 1] + a * u[i, 1] + b * v[i, 1]) / spacing[1]
                x = (centres_mm[i, 2] + a * u[i, 2] + b * v[i, 2]) / spacing[2]
                value = _trilinear(hu, z, y, x)
                nz = min(max(int(np.rint(z)), 0), hu.shape[0] - 1)
                ny = min(max(int(np.rint(y)), 0), hu.shape[1] - 1)
                nx = min(max(int(np.rint(x)), 0), hu.shape[2] - 1)
                vessel = label[nz, ny, nx] != 0
                if rho > inner[i]:
                    if not vessel:
                        ring[in_ring] = value
                        in_ring += 1
                    continue
                if vessel:
                    j = owner[nz, ny, nx]
                    dz = centres_mm[j, 0] - centres_mm[i, 0]
                    dy = centres_mm[j, 1] - centres_mm[i, 1]
                    dx = centres_mm[j, 2] - centres_mm[i, 2]
                    if np.sqrt(dz * dz + dy * dy + dx * dx) > foreign_gap:
                        value = np.nan
                disc_hu[in_disc] = value
                in_disc += 1
        local_bg = np.median(ring[:in_ring]) if in_ring >= 8 else background_hu
        contrast = vessel_hu - local_bg
        if contrast < 1.0:
            out[i] = np.nan
            continue
        area = 0.0
        for k in range(in_disc):
            if not np.isnan(disc_hu[k]):
                area += (disc_hu[k] - local_bg) / contrast
        out[i] = np.sqrt(max(area * step * step, 0.0) / np.pi)
    return out


@numba.njit(cache=True)
def _chord_to_lung(lung, bright, z, y, x, e, spacing, step, longest):
    """Length (mm) of the chord through voxel (z, y, x) along the unit direction ``e`` (mm, z y x) that crosses only
    bright voxels and ends in ``lung`` on both sides; inf where a side leaves the grid, meets a dark voxel that is not
    lung, or the chord grows longer than ``longest``. Sampled every ``step`` mm, at the nearest voxel."""
    total = 0.0
    n = int(longest / step)
    for sign in (-1.0, 1.0):
        reached = False
        for t in range(1, n + 1):
            d = sign * t * step
            zz = int(np.rint(z + d * e[0] / spacing[0]))
            yy = int(np.rint(y + d * e[1] / spacing[1]))
            xx = int(np.rint(x + d * e[2] / spacing[2]))
            if zz < 0 or yy < 0 or xx < 0 or zz >= lung.shape[0] or yy >= lung.shape[1] or xx >= lung.shape[2]:
                return np.inf
            if lung[zz, yy, xx]:
                total += t * step
                reached = True
                break
            if not bright[zz, yy, xx]:
                return np.inf
        if not reached or total > longest:
            return np.inf
    return total


@numba.njit(cache=True, parallel=True)
def encircled_by_lung(lung, bright, distance, points, spacing, longest, out):
    """Whether lung encircles each point across the axis given by the gradient of ``distance`` (mm, from a vessel's
    part further in): four chords at 45 degrees to each other in the plane perpendicular to that axis each cross
    only bright voxels, end in ``lung`` on both sides and are at most ``longest`` mm long (a disc closing oriented
    by the vessel: it reaches a vessel's end where the vessel enters the wall, which a ball closing does not).
    ``points`` (n, 3) are voxel indices at least one voxel inside the grid."""
    step = 0.5 * min(spacing[0], min(spacing[1], spacing[2]))
    for i in numba.prange(points.shape[0]):
        z, y, x = points[i, 0], points[i, 1], points[i, 2]
        axis = np.empty(3)
        axis[0] = (distance[z + 1, y, x] - distance[z - 1, y, x]) / spacing[0]
        axis[1] = (distance[z, y + 1, x] - distance[z, y - 1, x]) / spacing[1]
        axis[2] = (distance[z, y, x + 1] - distance[z, y, x - 1]) / spacing[2]
        norm = np.sqrt(axis @ axis)
        out[i] = False
        if norm == 0:
            continue
        axis /= norm
        helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        u = helper - (helper @ axis) * axis
        u /= np.sqrt(u @ u)
        w = np.array(
            [axis[1] * u[2] - axis[2] * u[1], axis[2] * u[0] - axis[0] * u[2], axis[0] * u[1] - axis[1] * u[0]]
        )
        encircled = True
        for k in range(4):
            e = np.cos(k * np.pi / 4) * u + np.sin(k * np.pi / 4) * w
            if _chord_to_lung(lung, bright, z, y, x, e, spacing, step, longest) > longest:
                encircled = False
                break
        out[i] = encircled


@numba.njit(cache=True, parallel=True)
def unpadded_flat(flat, padded_shape):
    """Flat indices into an array padded by one voxel on every side -> flat indices into the unpadded array (of
    voxels inside the pad)."""
    out = np.empty(flat.size, np.int64)
    ny, nx = padded_shape[1], padded_shape[2]
    for i in numba.prange(flat.size):
        z, y, x = _unravel(flat[i], ny, nx)
        out[i] = ((z - 1) * (ny - 2) + (y - 1)) * (nx - 2) + (x - 1)
    return out


@numba.njit(cache=True, parallel=True)
def unpadded_index(flat, padded_shape):
    """Flat indices into an array padded by one voxel on every side -> (n, 3) (z, y, x) of the unpadded array."""
    out = np.empty((flat.size, 3), np.int64)
    ny, nx = padded_shape[1], padded_shape[2]
    for i in numba.prange(flat.size):
        z, y, x = _unravel(flat[i], ny, nx)
        out[i, 0], out[i, 1], out[i, 2] = z - 1, y - 1, x - 1
    return out


@numba.njit(cache=True, parallel=True)
def voxels_of_rank(mask, ranks, order, first, lo, hi, out):
    """Flat indices of the voxels of given ranks (their place in C order among the set voxels) of ``mask`` (nz,
    plane): ``ranks`` sorted, ``order`` their places in ``out``; slice z holds the voxels of ranks ``first[z]`` on, and
    its ranks are ``ranks[lo[z]:hi[z]]``. One pass over each slice, up to its last rank wanted."""
    plane = mask.shape[1]
    for z in numba.prange(mask.shape[0]):
        k = lo[z]
        if k == hi[z]:
            continue
        rank = first[z]
        for i in range(plane):
            if mask[z, i]:
                if rank == ranks[k]:
                    out[order[k]] = z * plane + i
                    k += 1
                    if k == hi[z]:
                        break
                rank += 1
