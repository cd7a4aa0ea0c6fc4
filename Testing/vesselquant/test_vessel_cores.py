"""Unit tests of the VesselQuant cores with known answers (data made by the tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage as ndi

from RadiologyAICommonLib.errors import RadiologyAIError
from VesselQuantLib.centerline import compute_centerline, skeletonize_vessels, vessel_edt
from VesselQuantLib.graphcut import segment_vessels
from VesselQuantLib.lungmask import segment_lungs
from VesselQuantLib.parameters import VesselQuantParameters
from VesselQuantLib.quantify import assign_bins, loglinear_fit, per_radius_table, small_vessel_volume_ml
from VesselQuantLib.thinvessels import edge_blur_mm, grow_thin_vessels, growth_threshold_hu, thin_vessel_contrast_hu
from VesselQuantLib.vesselness import gaussian_smoothed, multiscale_vesselness, symmetric_eigenvalues


def test_closed_form_eigenvalues_match_numpy():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(500, 3, 3))
    m = m + np.transpose(m, (0, 2, 1))
    m[:10] = np.diag([1.0, 2.0, 2.0])  # repeated eigenvalues
    m[10:12] = 0.0
    got = np.stack(symmetric_eigenvalues(m[:, 0, 0], m[:, 1, 1], m[:, 2, 2], m[:, 0, 1], m[:, 0, 2], m[:, 1, 2]), 1)
    want = np.linalg.eigvalsh(m)
    want = np.take_along_axis(want, np.argsort(np.abs(want), axis=1), axis=1)
    np.testing.assert_allclose(np.sort(got, 1), np.sort(want, 1), atol=1e-8)
    assert np.all(np.diff(np.abs(got), axis=1) >= -1e-9)


def _tube_volume(
    radius_mm,
    spacing_zyx,
    shape=(40, 48, 48),
    axis_dir=(0.3, 0.2, 1.0),
    psf_mm=0.35,
    noise=0.0,
    seed=0,
    offset_mm=(0, 0, 0),
):
    """Blurred bright straight tube (HU 40) in parenchyma (-850), supersampled partial volume.

    The tube passes ``offset_mm`` (z, y, x) from the centre of the volume.
    """
    spacing = np.asarray(spacing_zyx, float)
    d = np.asarray(axis_dir, float)
    d /= np.linalg.norm(d)
    centre = (np.asarray(shape) - 1) / 2 * spacing + np.asarray(offset_mm, float)
    sub = (np.arange(3) + 0.5) / 3 - 0.5
    frac = np.zeros(shape)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).astype(float)
    for oz in sub:
        for oy in sub:
            for ox in sub:
                p = (grid + (oz, oy, ox)) * spacing - centre
                along = p @ d
                dist = np.linalg.norm(p - along[..., None] * d, axis=-1)
                frac += dist <= radius_mm
    frac /= 27.0
    hu = -850.0 + 890.0 * frac
    image = sitk.GetImageFromArray(hu.astype(np.float32))
    image.SetSpacing(tuple(spacing[::-1]))
    hu = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(image, psf_mm))
    if noise:
        hu = hu + np.random.default_rng(seed).normal(0, noise, hu.shape)
    return hu.astype(np.float32), frac


def test_vesselness_in_mm_is_high_on_tube_and_low_in_background():
    spacing = (1.0, 0.7, 0.7)
    hu, frac = _tube_volume(1.0, spacing, noise=10.0)
    mask = np.ones(hu.shape, bool)
    v = multiscale_vesselness(hu, spacing, mask).vesselness
    core = frac > 0.9
    far = ndi.distance_transform_edt(frac == 0, sampling=spacing) > 4.0
    assert v.min() >= 0 and v.max() <= 1
    assert np.median(v[core]) > 0.6
    # noise ridges respond a little (Frangi's c is set from the noise), far below the tube
    assert np.median(v[far]) < 0.01 and np.percentile(v[far], 95) < 0.15


def test_tube_axis_follows_the_tube():
    from VesselQuantLib.kernels import tube_axes

    spacing = (1.0, 0.7, 0.7)
    hu, frac = _tube_volume(0.7, spacing, noise=10.0)
    smoothed = gaussian_smoothed(hu, spacing, 0.5)
    flat = np.flatnonzero(frac > 0.5)
    axes = np.empty((flat.size, 3), np.float32)
    tube_axes(smoothed, flat, np.asarray(spacing), 1.0, axes)
    d = np.array([0.3, 0.2, 1.0]) / np.linalg.norm([0.3, 0.2, 1.0])
    assert flat.size > 50 and np.median(np.abs(axes @ d)) > 0.95


def _thin_vessel_segmentation(parameters):
    """A sub-resolution vessel (r = 0.3 mm) beside a thick one, segmented by the graph cut.

    Returns the segmented voxels per mm of the thin vessel and the share of its axis points found.
    """
    spacing = (1.0, 0.7, 0.7)
    shape = (40, 56, 56)
    thin_dir = np.array([0.3, 0.2, 1.0]) / np.linalg.norm([0.3, 0.2, 1.0])
    thick, _ = _tube_volume(1.5, spacing, shape, axis_dir=(1.0, 0.1, 0.2), offset_mm=(0, -10, 0))
    thin, _ = _tube_volume(0.3, spacing, shape, axis_dir=thin_dir)
    hu = (thick + thin + 850.0 + np.random.default_rng(0).normal(0, 15.0, shape)).astype(np.float32)
    lung = np.ones(shape, bool)
    maps = multiscale_vesselness(hu, spacing, lung, parameters)
    label, _ = segment_vessels(hu, maps.vesselness, lung, spacing, parameters, maps=maps)
    # the thin vessel's middle 20 mm (away from the cut ends), sampled every 0.25 mm
    centre = (np.asarray(shape) - 1) / 2 * np.asarray(spacing)
    points = centre + np.arange(-10.0, 10.0, 0.25)[:, None] * thin_dir
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1) * np.asarray(spacing)
    relative = grid - centre
    along = relative @ thin_dir
    distance = np.linalg.norm(relative - along[..., None] * thin_dir, axis=-1)
    near = (np.abs(along) < 10.0) & (distance < 2.0)
    voxels_per_mm = label[near].sum() / 20.0
    vessel_voxels = np.argwhere(label) * np.asarray(spacing)
    gaps = np.min(np.linalg.norm(points[:, None, :] - vessel_voxels[None, :, :], axis=-1), axis=1)
    found = float(np.mean(gaps <= 0.3 + 0.5 * np.linalg.norm(spacing)))
    return voxels_per_mm, found


def test_sub_resolution_vessel_is_segmented_on_its_ridge():
    """Non-maximum suppression across the tube keeps a vessel thinner than the blur about one voxel thick
    (as its partial-volume truth is), where without it the band is as wide as the blur."""
    thin_line, found = _thin_vessel_segmentation(VesselQuantParameters())
    band, found_band = _thin_vessel_segmentation(VesselQuantParameters(thin_vessel_ridge_slack=0.01))
    assert found >= 0.9 and found_band >= 0.9
    assert thin_line <= 3.0, thin_line  # a 26-connected line through 0.7 x 0.7 x 1 mm voxels: about 1.5 per mm
    assert band >= 1.5 * thin_line, (band, thin_line)


@pytest.mark.parametrize("psf_mm", [0.35, 0.6, 0.8])
def test_edge_blur_is_measured_on_thick_vessel_edges(psf_mm):
    """The blur (PSF and smoothing together) is recovered from the steepness of a thick vessel's edge."""
    spacing = (1.0, 0.7, 0.7)
    hu, _ = _tube_volume(3.0, spacing, shape=(40, 48, 48), psf_mm=psf_mm, noise=20.0)
    smoothed = gaussian_smoothed(hu, spacing, 0.5)
    blur = edge_blur_mm(smoothed, np.ones(hu.shape, bool), -850.0, 40.0, spacing)
    assert blur == pytest.approx(np.hypot(psf_mm, 0.5), rel=0.08)
    assert edge_blur_mm(smoothed, np.zeros(hu.shape, bool), -850.0, 40.0, spacing) is None  # no edges to measure


def test_thin_vessel_growth_threshold_and_hysteresis():
    # the centre of a blurred disc of radius r: contrast x (1 - exp(-r^2 / (2 s^2)))
    assert thin_vessel_contrast_hu(0.25, 0.6, 890.0) == pytest.approx(890.0 * (1 - np.exp(-0.0625 / 0.72)))
    assert thin_vessel_contrast_hu(0.25, 0.6, 890.0) > thin_vessel_contrast_hu(0.25, 1.2, 890.0)
    ridges = np.random.default_rng(0).normal(-800.0, 20.0, 10_000)
    assert growth_threshold_hu(ridges, 60.0, 1.0) == pytest.approx(np.median(ridges) + 30.0)
    assert growth_threshold_hu(ridges, 30.0, 1.0) is None  # half of it is within the ridges' noise: nothing grown

    label = np.zeros((9, 9, 9), bool)
    label[4, 4, :4] = True
    ridge = np.array([[5, 5, 4], [6, 6, 5], [4, 4, 8], [0, 0, 0]])  # a diagonal chain touching, then two apart
    grown = grow_thin_vessels(label, ridge, np.array([10.0, 10.0, 10.0, 10.0]), 5.0)
    assert grown[5, 5, 4] and grown[6, 6, 5] and not grown[4, 4, 8] and not grown[0, 0, 0]
    dim = grow_thin_vessels(label, ridge, np.array([10.0, 1.0, 10.0, 10.0]), 5.0)  # below the threshold
    assert dim[5, 5, 4] and not dim[6, 6, 5]
    assert np.array_equal(grow_thin_vessels(label, ridge, np.zeros(4), 5.0), label)


def _noisy_lung_with_vessels(noise_hu=60.0, vessels=True):
    """A large noisy lung (parenchyma -860 HU) with two bright tubes: plenty of noise ridges for the graph to hold.
    ``vessels=False``: the same noise without the tubes."""
    spacing = (1.0, 0.7, 0.7)
    shape = (36, 72, 72)
    a, _ = _tube_volume(1.5, spacing, shape, axis_dir=(1.0, 0.1, 0.2), offset_mm=(0, -8, 0))
    b, _ = _tube_volume(0.6, spacing, shape, axis_dir=(0.3, 0.2, 1.0))
    noise = ndi.gaussian_filter(np.random.default_rng(4).normal(0, 1.0, shape), (0.4, 0.7, 0.7))
    tubes = a + b + 850.0 - 10.0 if vessels else -860.0  # each tube volume holds the -850 HU parenchyma
    hu = (tubes + noise * noise_hu / noise.std()).astype(np.float32)
    return hu, np.ones(shape, bool), spacing


def test_thin_vessel_channel_is_judged_against_the_parenchyma():
    """The sub-resolution channel's reference is the parenchyma's line-averaged HU (median, robust SD over the lung),
    not the background seeds (voxels with no vesselness at any scale, which are darker than the parenchyma): with
    the tubes, the reference is the one the same noise gives without them."""
    import VesselQuantLib.graphcut as graphcut

    def line_null(vessels):
        hu, lung, spacing = _noisy_lung_with_vessels(vessels=vessels)
        maps = multiscale_vesselness(hu, spacing, lung)
        return graphcut._ThinVesselEvidence(hu, lung, maps.vesselness, spacing, VesselQuantParameters(), maps).line_null

    centre, sd = line_null(True)
    noise_centre, noise_sd = line_null(False)
    assert abs(noise_centre + 860.0) < 0.1 * noise_sd  # the parenchyma itself
    assert abs(centre - noise_centre) < 0.25 * noise_sd and sd == pytest.approx(noise_sd, rel=0.1)
    hu, lung, spacing = _noisy_lung_with_vessels()
    maps = multiscale_vesselness(hu, spacing, lung)
    seeds = hu[lung & (maps.vesselness < VesselQuantParameters().background_vesselness)]
    assert np.median(seeds) < centre - 0.5 * sd  # what the channel was once judged against


def test_thin_vessel_ridge_test_is_skipped_only_where_it_cannot_matter(monkeypatch):
    """Candidates whose line average cannot raise their probability, or cannot raise it above the pruning level, skip
    the ridge test: the segmentation and the graph are those of testing every candidate."""
    import VesselQuantLib.graphcut as graphcut

    p = VesselQuantParameters()
    base, lifted = np.array([0.3, 0.3, 0.5, 0.2]), np.array([0.3, 0.6, 0.4, 0.34])
    assert graphcut._ridge_can_matter(base, lifted, p).tolist() == [False, True, False, False]  # pruned below 0.35
    assert graphcut._ridge_can_matter(base, lifted, VesselQuantParameters(thin_vessel_min_radius_mm=0.3)).all()
    hu, lung, spacing = _noisy_lung_with_vessels()
    maps = multiscale_vesselness(hu, spacing, lung)
    skipped, info = segment_vessels(hu, maps.vesselness, lung, spacing, maps=maps)
    monkeypatch.setattr(graphcut, "_ridge_can_matter", lambda base, lifted, p: np.ones(base.shape, bool))
    maps = multiscale_vesselness(hu, spacing, lung)
    tested, tested_info = segment_vessels(hu, maps.vesselness, lung, spacing, maps=maps)
    assert skipped.any() and np.array_equal(skipped, tested)
    assert info.graph_nodes == tested_info.graph_nodes


def test_graph_reductions_leave_the_segmentation_unchanged(monkeypatch):
    """Background islands (exact) and thin-channel specks (which the clean-up removes anyway) leave the graph, and
    the segmentation is the one the full graph gives."""
    import VesselQuantLib.graphcut as graphcut

    hu, lung, spacing = _noisy_lung_with_vessels()
    maps = multiscale_vesselness(hu, spacing, lung)
    reduced, info = segment_vessels(hu, maps.vesselness, lung, spacing, maps=multiscale_vesselness(hu, spacing, lung))
    assert info.background_island_voxels > 0 and info.speck_thin_voxels > 0
    monkeypatch.setattr(
        graphcut, "_background_islands", lambda flat_state, flat, prob, shape: np.zeros(flat.shape, bool)
    )
    monkeypatch.setattr(graphcut, "_speck_attractors", lambda thin, *args: np.zeros(thin.shape, bool))
    full, full_info = segment_vessels(hu, maps.vesselness, lung, spacing, maps=maps)
    assert full_info.graph_nodes > info.graph_nodes
    assert reduced.any() and np.array_equal(reduced, full)


def test_thin_vessel_prefilter_is_the_channels_bound_with_the_callers_parameters(monkeypatch):
    """The pre-filter of the thin-vessel channel is the fine-scale tube likelihood alone, exactly the data term with
    the intensity weight at 0, and with the caller's parameters, not the defaults (a user's vessel threshold or
    probability floor would be ignored there)."""
    from dataclasses import replace

    import VesselQuantLib.graphcut as graphcut

    seen = []
    real = graphcut._tube_probability

    def recording(fine, p):
        seen.append(p)
        return real(fine, p)

    monkeypatch.setattr(graphcut, "_tube_probability", recording)
    hu, lung, spacing = _noisy_lung_with_vessels(noise_hu=20.0)
    caller = VesselQuantParameters(vessel_vesselness=0.7, probability_floor=0.02)
    maps = multiscale_vesselness(hu, spacing, lung, caller)
    segment_vessels(hu, maps.vesselness, lung, spacing, caller, maps=maps)
    assert seen and all(q == caller for q in seen)
    fine = np.geomspace(1e-7, 1.0, 300)
    any_hu = np.random.default_rng(0).uniform(-1000, 200, fine.size)
    model = graphcut.IntensityModel(-860.0, 30.0, 40.0, -410.0, 30.0)
    thin_only = graphcut.vessel_probability(any_hu, fine, model, replace(caller, intensity_weight=0.0))
    np.testing.assert_array_equal(real(fine, caller), thin_only)
    assert real(fine, caller).min() == 0.02


def test_mask_sample_is_the_draw_of_its_voxel_list():
    from VesselQuantLib.vesselness import sample_of_mask

    mask = np.random.default_rng(2).random((30, 40, 50)) < 0.3
    count = int(mask.sum())
    expected = np.random.default_rng(7).choice(np.flatnonzero(mask), 5000, replace=False)
    assert np.array_equal(sample_of_mask(mask, count, np.random.default_rng(7), 5000), expected)
    assert np.array_equal(sample_of_mask(mask, count, np.random.default_rng(7), 10**6), np.flatnonzero(mask))
    mask[::3] = False  # empty slices, and slices the draw misses
    mask[1, :, :] = False
    mask[1, 5, 7] = True
    count = int(mask.sum())
    expected = np.random.default_rng(8).choice(np.flatnonzero(mask), 200, replace=False)
    assert np.array_equal(sample_of_mask(mask, count, np.random.default_rng(8), 200), expected)


def test_vesselness_respects_anisotropic_spacing():
    """The same physical tube gives the same response whatever the voxel spacing."""
    results = []
    for spacing in [(0.7, 0.7, 0.7), (1.4, 0.7, 0.7)]:
        hu, frac = _tube_volume(1.5, spacing, shape=(30 if spacing[0] > 1 else 60, 40, 40), axis_dir=(0, 0, 1))
        v = multiscale_vesselness(hu, spacing, np.ones(hu.shape, bool)).vesselness
        results.append(float(v[frac > 0.95].mean()))
    assert abs(results[0] - results[1]) < 0.1


def test_a_subsampled_scale_smoothed_from_the_finer_one_is_the_gaussian_of_its_own_sigma(monkeypatch):
    """The 2.8 mm scale on 0.7 mm voxels works on every second voxel; it is smoothed there from the 1.6 mm scale (its
    blur leaves nothing that grid cannot hold), which must give that grid's samples of the 2.8 mm Gaussian."""
    from VesselQuantLib import vesselness

    spacing = (0.7, 0.7, 0.7)
    hu, _ = _tube_volume(2.5, spacing, noise=30.0, shape=(48, 48, 48))
    calls = []
    original = vesselness.gaussian_smoothed

    def spy(values, steps, sigma):
        out = original(values, steps, sigma)
        calls.append((tuple(float(s) for s in steps), sigma, out))
        return out

    monkeypatch.setattr(vesselness, "gaussian_smoothed", spy)
    p = VesselQuantParameters(vesselness_sigmas_mm=(1.6, 2.8))
    multiscale_vesselness(hu, spacing, np.ones(hu.shape, bool), p)
    coarse = [(steps, round(sigma, 3), out) for steps, sigma, out in calls if steps != spacing]
    assert [(steps, sigma) for steps, sigma, _ in coarse] == [((1.4, 1.4, 1.4), round((2.8**2 - 1.6**2) ** 0.5, 3))]
    direct = original(hu, spacing, 2.8)[::2, ::2, ::2]
    assert np.abs(coarse[0][2] - direct)[3:-3, 3:-3, 3:-3].max() < 0.02 * float(hu.std())


@pytest.mark.parametrize("shape", [(19, 7, 33), (19, 1, 33)])
def test_gaussian_smoothing_in_mm_is_scipys_gaussian_along_each_axis_in_turn(shape):
    """The threaded smoothing, in place after its first pass, gives scipy's Gaussian along each axis in turn with that
    axis's sigma in voxels, to the bit: anisotropic voxels, an integer CT, three threads, and (second case) an axis
    with fewer voxels than threads."""
    hu = np.random.default_rng(2).normal(-800.0, 100.0, shape).astype(np.int16)
    spacing = (1.3, 0.6, 0.8)
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(3)
    try:
        smoothed = gaussian_smoothed(hu, spacing, 0.9)
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    expected = hu.astype(np.float32)
    for axis, s in enumerate(spacing):  # each pass into a new array
        expected = ndi.gaussian_filter1d(expected, 0.9 / s, axis=axis, mode="nearest", truncate=4.0)
    assert smoothed.dtype == np.float32 and np.array_equal(smoothed, expected)
    assert not np.shares_memory(smoothed, hu)


def test_vessel_distance_to_background_is_the_exact_distance_transform():
    """The sparse shell + k-d tree distance equals a full Euclidean distance transform at every vessel voxel,
    with anisotropic voxels and vessels touching the array's faces."""
    rng = np.random.default_rng(3)
    label = ndi.gaussian_filter(rng.normal(size=(24, 30, 28)), 1.5) > 0.05
    label[:, 0, :5] = True  # on a face
    spacing = (1.6, 0.7, 0.9)
    voxels = np.argwhere(label)
    expected = ndi.distance_transform_edt(label, sampling=spacing)[label]
    np.testing.assert_allclose(vessel_edt(label, voxels, spacing), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("width", [2, 4])
def test_skeleton_guard_on_even_thickness_straight_tubes(width):
    """scikit-image deletes straight bars of even thickness; the guard must put a centreline back."""
    from skimage.morphology import skeletonize

    label = np.zeros((30, 16, 16), bool)
    label[3:27, 8 - width // 2 : 8 - width // 2 + width, 8 - width // 2 : 8 - width // 2 + width] = True
    assert not skeletonize(label).any()  # the known failure this guards against
    spacing = (1.0, 0.7, 0.7)
    edt = ndi.distance_transform_edt(label, sampling=spacing)
    skeleton = skeletonize_vessels(label, edt, spacing)
    assert skeleton.any() and not (skeleton & ~label).any()
    covered_slices = np.flatnonzero(skeleton.any(axis=(1, 2)))
    assert covered_slices.min() <= 5 and covered_slices.max() >= 24


@pytest.mark.parametrize("radius", [1.0, 2.0, 3.0])
def test_subvoxel_radius_of_blurred_oblique_tubes(radius):
    spacing = (1.0, 0.7, 0.7)
    hu, frac = _tube_volume(radius, spacing, shape=(36, 56, 56), noise=20.0, seed=int(radius * 10))
    label = hu > (-850 + 40) / 2
    line, radius_map = compute_centerline(hu, label, spacing, 40.0, -850.0)
    inner = (line.points[:, 0] > 8) & (line.points[:, 0] < 28)  # away from the cut ends
    estimate = float(np.median(line.radius_mm[inner]))
    assert abs(estimate - radius) < 0.12, (estimate, radius)
    assert np.all(radius_map[label] > 0) and np.all(radius_map[~label] == 0)
    # the plain distance transform is quantised; the sub-voxel estimate is better
    plain = compute_centerline(hu, label, spacing, 40.0, -850.0, VesselQuantParameters(subvoxel_radius=False))[0]
    assert abs(estimate - radius) <= abs(float(np.median(plain.radius_mm[inner])) - radius) + 0.02


def test_radius_bins_and_table():
    p = VesselQuantParameters()
    index, centres = assign_bins(np.array([0.1, 0.26, 0.4, 1.0, 1.12]), p)
    assert list(centres[index]) == [0.25, 0.25, 0.5, 1.0, 1.0]
    design = VesselQuantParameters(radius_bins_mm=(2.0, 0.5, 1.0)).validate()
    index, centres = assign_bins(np.array([0.1, 0.8, 1.6, 9.0]), design)
    assert list(centres[index]) == [0.5, 1.0, 2.0, 2.0]

    radius = np.array([0.5, 0.5, 0.5, 0.5, 1.0, 1.0])
    hu = np.array([-800.0, -700.0, -600.0, -500.0, 0.0, 10.0])
    table = per_radius_table(radius, hu, voxel_ml=0.001, p=p)
    assert list(table.columns) == ["radius_mm", "voxel_count", "volume_ml", "median_hu", "iqr_hu"]
    assert list(table["radius_mm"]) == [0.5, 1.0]
    assert list(table["voxel_count"]) == [4, 2]
    assert table["volume_ml"].tolist() == pytest.approx([0.004, 0.002])
    assert table["median_hu"].tolist() == pytest.approx([-650.0, 5.0])
    assert table["iqr_hu"].tolist() == pytest.approx([150.0, 5.0])
    with_design = per_radius_table(radius, hu, 0.001, VesselQuantParameters(radius_bins_mm=(0.5, 1.0, 3.0)).validate())
    assert with_design["voxel_count"].tolist() == [4, 2, 0] and np.isnan(with_design["median_hu"].iloc[2])


def test_loglinear_fit_recovers_exponential_histogram():
    p = VesselQuantParameters()
    radii = np.arange(1, 13) * 0.25
    counts = np.rint(np.exp(-1.5 * radii + 7.0)).astype(int)
    samples = np.repeat(radii, counts)
    alpha, beta, r2 = loglinear_fit(samples, p)
    assert alpha == pytest.approx(-1.5, abs=0.02) and beta == pytest.approx(7.0, abs=0.05) and r2 > 0.999
    assert np.isnan(loglinear_fit(np.array([0.5, 0.5]), p)[0])


def test_small_vessel_volume_uses_cross_section_area():
    p = VesselQuantParameters()  # pi r^2 < 5 mm^2  <=>  r < 1.2616 mm
    assert small_vessel_volume_ml(np.array([0.5, 1.2, 1.27, 3.0]), 0.5, p) == pytest.approx(1.0)


def test_lung_mask_on_phantom_excludes_airways(small_phantom):
    mask = sitk.GetArrayFromImage(segment_lungs(small_phantom.image)).astype(bool)
    truth = sitk.GetArrayFromImage(small_phantom.lung_mask).astype(bool)
    dice = 2 * (mask & truth).sum() / (mask.sum() + truth.sum())
    assert dice > 0.97
    assert mask[0].any() and mask[-1].any()  # lungs touch the first and last slice
    hu = sitk.GetArrayFromImage(small_phantom.image)
    body = np.stack([ndi.binary_fill_holes(ndi.binary_closing(s > -500, iterations=3)) for s in hu])
    trachea = body & (hu < -950) & ~ndi.binary_dilation(truth, iterations=2)
    assert trachea.sum() > 100 and not (mask & trachea).any()


def test_lung_mask_on_shrunk_grid_matches(small_phantom):
    """Large scans get their mask on a 2 x 2 in-plane grid: same lungs, no chest-wall rim."""
    params = VesselQuantParameters(lung_mask_shrink_above_voxels=1)
    coarse = sitk.GetArrayFromImage(segment_lungs(small_phantom.image, params)).astype(bool)
    full = sitk.GetArrayFromImage(segment_lungs(small_phantom.image)).astype(bool)
    assert 2 * (coarse & full).sum() / (coarse.sum() + full.sum()) > 0.98
    hu = sitk.GetArrayFromImage(small_phantom.image)
    edge = coarse & ~ndi.binary_erosion(coarse)
    assert np.median(hu[edge]) < -600


def _holder_phantom(interior_hu):
    """A PMMA cylinder (120 HU) holding air or foam, with two rods, in air."""
    z, y, x = np.mgrid[:30, :80, :80]
    r = np.hypot(y - 39.5, x - 39.5)
    hu = np.full(z.shape, -1000.0)
    hu[r < 35] = 120.0
    hu[r < 30] = interior_hu
    hu[(np.hypot(y - 30, x - 40) < 3) | (np.hypot(y - 50, x - 45) < 2)] = 100.0
    image = sitk.GetImageFromArray(hu.astype(np.int16))
    image.SetSpacing((0.7, 0.7, 1.0))
    return image, r < 30


@pytest.mark.parametrize("interior", [-1000.0, -900.0])
def test_lung_mask_on_holder_phantom(interior):
    image, truth = _holder_phantom(interior)
    mask = sitk.GetArrayFromImage(segment_lungs(image)).astype(bool)
    dice = 2 * (mask & truth).sum() / (mask.sum() + truth.sum())
    assert dice > 0.97  # the interior, rods included (filled holes)


def _vessels_not_enclosed_in_any_slice():
    """A foam-filled holder (-900 HU; wall 120 HU, inner radius 28 mm) with a rod (radius 2 mm, 100 HU) that runs
    in-plane from the wall 24 mm into the lung, and a heart-like bulge (a half cylinder of radius 15 mm, 40 HU) on
    the wall. No slice encloses the rod, and 3D hole filling cannot either: it is open to the wall."""
    spacing = (0.7, 0.7, 1.0)
    z, y, x = np.mgrid[:40, :120, :120]
    xm, ym, zm = (x - 59.5) * 0.7, (y - 59.5) * 0.7, z * 1.0
    r = np.hypot(xm, ym)
    hu = np.full(z.shape, -1000.0)
    hu[r < 33] = 120.0
    hu[r < 28] = -900.0
    in_plane = (np.hypot(ym, zm - 20) < 2) & (xm > 4) & (r < 28)
    bulge = (np.hypot(xm, ym + 28) < 15) & (r < 28)
    hu[in_plane] = 100.0
    hu[bulge] = 40.0
    image = sitk.GetImageFromArray(hu.astype(np.int16))
    image.SetSpacing(spacing)
    return image, in_plane, bulge


def test_vessel_running_in_plane_from_the_wall_joins_the_lung_and_a_bulge_stays_out():
    image, in_plane, bulge = _vessels_not_enclosed_in_any_slice()
    mask = sitk.GetArrayFromImage(segment_lungs(image)).astype(bool)
    without = sitk.GetArrayFromImage(segment_lungs(image, VesselQuantParameters(lung_closing_mm=0))).astype(bool)
    assert (without & in_plane).sum() < 0.05 * in_plane.sum()
    # up to the wall: the rod's end, which the depth rule leaves out (85 % before), joins as the end of a vessel
    assert (mask & in_plane).sum() > 0.95 * in_plane.sum()
    assert (mask & bulge).sum() < 0.05 * bulge.sum()  # far wider than the ball: stays out


def test_a_vessel_joins_the_lung_up_to_the_wall_and_a_plate_on_the_wall_does_not():
    """The end of the rod is encircled by lung across its axis and joins the lung up to the wall; a fin on the wall
    (a plate 2 mm thick and 7 mm tall, as long as the scan) keeps its base out, as before the ends were taken in:
    lung lies on its two sides only, so only its part deeper than the depth rule's joins."""
    image, in_plane, _ = _vessels_not_enclosed_in_any_slice()
    hu = sitk.GetArrayFromImage(image)
    z, y, x = np.mgrid[: hu.shape[0], : hu.shape[1], : hu.shape[2]]
    xm, ym = (x - 59.5) * 0.7, (y - 59.5) * 0.7
    fin = (np.abs(ym) < 1.0) & (xm < -21) & (np.hypot(xm, ym) < 28)
    hu[fin] = 40
    with_fin = sitk.GetImageFromArray(hu)
    with_fin.CopyInformation(image)
    mask = sitk.GetArrayFromImage(segment_lungs(with_fin)).astype(bool)
    radius = np.hypot(xm, ym)
    assert (in_plane & ~mask).sum() < 0.04 * in_plane.sum() and radius[in_plane & ~mask].min() > 27.3  # the last voxel
    assert 0.35 < (fin & mask).sum() / fin.sum() < 0.5  # its top, deeper than the depth rule's 3 mm
    assert radius[fin & ~mask].min() < 22.5  # its base: the 5 mm of the ball and the 3 mm of the depth rule


def test_lung_encircles_a_tube_across_its_axis_but_not_a_plate_a_wider_tube_or_a_bronchial_wall():
    from VesselQuantLib.kernels import encircled_by_lung

    spacing = np.array([0.8, 0.6, 0.7])
    z, y, x = np.mgrid[:30, :41, :41]
    ym, xm = (y - 20) * spacing[1], (x - 20) * spacing[2]
    rho = np.hypot(ym, xm)
    along = np.ascontiguousarray(z * spacing[0], dtype=np.float32)  # the axis: z, the tube's direction
    points = np.array([[15, 20, 20], [15, 21, 22], [15, 24, 20]])  # on the axis, 1.5 mm and 2.4 mm off it

    def encircled(lung, bright, longest=10.0):
        out = np.zeros(len(points), bool)
        encircled_by_lung(lung, bright, along, points, spacing, longest, out)
        return out.tolist()

    tube = rho < 3.0
    assert encircled(~tube, tube) == [True, True, True]  # chords of up to 6 mm between lung
    assert encircled(~tube, tube, longest=5.0) == [False, False, False]  # each point has a 6 mm chord
    wide = rho < 5.5
    assert encircled(~wide, wide) == [False, False, False]  # 11 mm across: wider than the ball's 10 mm
    plate = np.abs(xm) < 1.5
    assert encircled(~plate, plate) == [False, False, False]  # lung on two sides only: chords along it never end
    wall = (rho > 1.5) & (rho < 3.0)  # a bronchus whose dark lumen is not lung (the airway taken out): chords cross it
    assert encircled(rho >= 3.0, wall) == [False, False, False]
    assert encircled(rho >= 3.0, wall | (rho <= 1.5)) == [True, True, True]  # filled: a tube again


@pytest.mark.parametrize("nodule_scales", [(2.0, 2.5, 4.5, 7.0), None], ids=["wide closing on", "off"])
def test_the_closing_of_step_6_is_the_exact_closing_of_the_lung_with_its_depth_rule(nodule_scales):
    """Step 6 against the definition (scipy's exact distance transform on a volume padded far beyond both balls): the
    lung fills the box to its faces, with in-plane rods, rods at a face and a notch of the wall, and anisotropic voxels;
    with the wide (juxta-pleural) closing on, the small closing's map is taken on a smaller pad than the shared one."""
    from VesselQuantLib.lungmask import _taken_in_by_closings

    spacing = (1.0, 0.7, 0.8)
    z, y, x = np.mgrid[:36, :44, :40]
    zm, ym, xm = z * spacing[0], y * spacing[1], x * spacing[2]
    lung = np.ones(z.shape, bool)
    lung &= np.hypot(zm - 18, ym - 15) >= 2.5  # along x, through the box
    lung &= np.hypot(zm - 2, xm - 20) >= 3.0  # along y, cut by the first slice
    lung &= np.hypot(ym - 30.1, xm - 31.2) >= 4.0  # along z, from face to face
    lung &= ~((xm < 9) & (np.abs(ym - 6) < 4) & (zm > 20))  # a notch of the wall at the x = 0 face
    hu = np.where(lung, -860.0, 40.0)
    p = VesselQuantParameters(nodule_scales_mm=nodule_scales)  # without nodule scales, no wide closing
    out = _taken_in_by_closings(lung, hu, spacing, p)

    pad = 60
    padded = np.pad(lung, pad)
    far = ndi.distance_transform_edt(~padded, sampling=spacing) > p.lung_closing_mm
    depth = ndi.distance_transform_edt(~far, sampling=spacing)[pad:-pad, pad:-pad, pad:-pad]
    deep = depth >= p.lung_closing_mm + p.lung_closing_min_depth_mm
    expected = lung | (deep & (hu >= p.lung_threshold_hu))
    assert (out & ~lung).sum() > 500  # the rods are taken in
    near_limit = np.abs(depth - (p.lung_closing_mm + p.lung_closing_min_depth_mm)) < 1e-3  # float32 ties
    shallow = ~deep  # where the ends of vessels join too (beyond the faces no lung lies: the rod along x ends there)
    assert np.array_equal(out[~near_limit & ~shallow], expected[~near_limit & ~shallow])
    assert not (expected & ~out).any()
    ends = out & ~expected
    rods = (
        (np.hypot(zm - 18, ym - 15) < 2.5) | (np.hypot(zm - 2, xm - 20) < 3.0) | (np.hypot(ym - 30.1, xm - 31.2) < 4.0)
    )
    assert ends.sum() > 100 and (ends & ~rods).sum() <= 0.01 * ends.sum()


def _juxta_pleural_nodule(radius_mm=10.0, noise_hu=0.0):
    """The holder of ``_vessels_not_enclosed_in_any_slice`` with a solid ball (40 HU) on the wall opposite the
    bulge, its centre 0.8 of its radius inside the wall (a fifth of its radius lies in the wall)."""
    image, in_plane, bulge = _vessels_not_enclosed_in_any_slice()
    hu = sitk.GetArrayFromImage(image).astype(np.float64)
    z, y, x = np.mgrid[: hu.shape[0], : hu.shape[1], : hu.shape[2]]
    xm, ym, zm = (x - 59.5) * 0.7, (y - 59.5) * 0.7, z * 1.0
    ball = np.sqrt(xm**2 + (ym - (28 - 0.8 * radius_mm)) ** 2 + (zm - 20) ** 2) < radius_mm
    nodule = ball & (np.hypot(xm, ym) < 28)  # the part in the holder's interior
    hu[ball] = 40.0
    hu += np.random.default_rng(3).normal(0, noise_hu, hu.shape) if noise_hu else 0.0
    out = sitk.GetImageFromArray(np.rint(hu).astype(np.int16))
    out.SetSpacing(image.GetSpacing())
    return out, nodule, bulge


def test_a_juxta_pleural_nodule_joins_the_lung_and_the_bulge_stays_out():
    image, nodule, bulge = _juxta_pleural_nodule()
    mask = sitk.GetArrayFromImage(segment_lungs(image)).astype(bool)
    off = VesselQuantParameters(juxta_pleural_max_radius_mm=0)
    without = sitk.GetArrayFromImage(segment_lungs(image, off)).astype(bool)
    assert (without & nodule).sum() < 0.3 * nodule.sum()  # bright and on the wall: no other step takes it
    assert (mask & nodule).sum() > 0.9 * nodule.sum()
    assert (mask & bulge).sum() < 0.05 * bulge.sum()  # a half cylinder as long as the scan: not compact


def test_a_small_juxta_pleural_nodule_the_small_closing_takes_in_part_of_joins_the_lung_whole():
    """A 6 mm ball on the wall: the closing of step 6 takes in its deep part and leaves a crescent on the wall,
    neither compact nor ball-shaped; judged together with that part, the whole nodule joins the lung."""
    image, nodule, bulge = _juxta_pleural_nodule(radius_mm=6.0)
    mask = sitk.GetArrayFromImage(segment_lungs(image)).astype(bool)
    assert (mask & nodule).sum() > 0.95 * nodule.sum()  # before: 55 %, the part step 6 took
    assert (mask & bulge).sum() < 0.05 * bulge.sum()


def test_a_juxta_pleural_nodule_is_reported_not_labelled_vessel():
    from VesselQuantLib.pipeline import run_vessel_quant

    image, nodule, _ = _juxta_pleural_nodule(noise_hu=20.0)
    result = run_vessel_quant(image)
    vessel = sitk.GetArrayFromImage(result.vessel_label).astype(bool)
    found = sitk.GetArrayFromImage(result.nodule_label).astype(bool)
    assert result.summary["nodule_like_count"] == 1
    # the wedge where the ball meets the wall, which the opening does not reach, is the nodule's too (before: 3 %)
    assert (found & nodule).sum() > 0.95 * nodule.sum() and (vessel & nodule).sum() < 0.01 * nodule.sum()
    assert sitk.GetArrayFromImage(result.lung_mask).astype(bool)[nodule].mean() > 0.9


def test_no_lungs_is_an_input_error():
    image = sitk.GetImageFromArray(np.full((20, 40, 40), 40, np.int16))
    arr = sitk.GetArrayFromImage(image)
    arr[:, :5, :] = -1000  # air only at the border
    image = sitk.GetImageFromArray(arr)
    with pytest.raises(RadiologyAIError, match="no lung-like region"):
        segment_lungs(image)


def test_parameters_round_trip_and_validation():
    p = VesselQuantParameters(radius_bins_mm=(1.0, 0.5))
    again = VesselQuantParameters.from_dict(p.to_dict())
    assert again.radius_bins_mm == (0.5, 1.0)
    with pytest.raises(RadiologyAIError):
        VesselQuantParameters(background_vesselness=0.9, vessel_vesselness=0.8).validate()
    with pytest.raises(RadiologyAIError, match="unknown"):
        VesselQuantParameters.from_dict({"no_such": 1})
    with pytest.raises(RadiologyAIError):
        VesselQuantParameters(radius_bins_mm=(0.5, -1.0)).validate()
    assert isinstance(pd.DataFrame([p.to_dict()]), pd.DataFrame)


def _tube_between(grid, a, b, r):
    a, b = np.asarray(a, float), np.asarray(b, float)
    t = np.clip(((grid - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
    return np.linalg.norm(grid - (a + t[..., None] * (b - a)), axis=-1) <= r


def _scene_with_a_nodule(spacing=(0.8, 0.62, 0.62), ball_mm=5.0):
    """A Y of 4.25 mm tubes (its junction bulges), a 1.5 mm tube with a ball (5 mm) on it, blurred to HU."""
    shape = (70, 110, 110)
    grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij"), -1)

    def tube(a, b, r):
        return _tube_between(grid, a, b, r)

    junction = np.array([28.0, 30.0, 20.0])
    vessels = (
        tube([28, 30, 0], junction, 4.25)
        | tube(junction, [10, 10, 60], 4.25)
        | tube(junction, [46, 10, 60], 4.25)
        | tube([28, 55, 5], [28, 55, 65], 1.5)
    )
    ball = np.linalg.norm(grid - np.array([28.0, 55.0 + ball_mm + 0.5, 40.0]), axis=-1) <= ball_mm
    label = vessels | ball
    hu = (-850 + 890 * ndi.gaussian_filter(label.astype(np.float32), 0.8)).astype(np.float32)
    return label, hu, ball, spacing


def test_nodule_like_blobs_are_found_and_tubes_are_not():
    from VesselQuantLib.nodules import find_nodule_like

    label, hu, ball, spacing = _scene_with_a_nodule()
    found, records = find_nodule_like(label, hu, spacing, VesselQuantParameters())
    assert len(records) == 1 and records[0]["radius_mm"] == pytest.approx(5.0, abs=0.6)
    assert (found & ball).sum() / ball.sum() > 0.9  # the nodule is taken...
    assert (found & ~ball).sum() / ball.sum() < 0.1  # ...with little of the tube it hangs on
    assert records[0]["volume_ml"] == pytest.approx(found.sum() * np.prod(spacing) / 1000)
    tubes_only, _ = find_nodule_like(label & ~ball, hu, spacing, VesselQuantParameters())
    assert not tubes_only.any()  # neither the thick Y's junction bulge nor the thin tube is a nodule
    off, none = find_nodule_like(label, hu, spacing, VesselQuantParameters(nodule_scales_mm=None))
    assert not off.any() and none == []
    # on a 2 x 2 in-plane binned grid (large, fine CTs) the same blob is found and mapped back
    binned, again = find_nodule_like(label, hu, spacing, VesselQuantParameters(), (1, 2, 2))
    assert len(again) == 1 and again[0]["radius_mm"] == pytest.approx(5.0, abs=0.8)
    assert (binned & ball).sum() / ball.sum() > 0.85 and not (binned & ~label).any()


def test_a_3_mm_nodule_on_a_thin_vessel_is_found():
    """Its inscribed ball (2.4 mm on this grid) is under the 2.5 mm scale; the 2 mm scale finds it, and neither
    the thin tube it hangs on nor the thick Y's junction is taken."""
    from VesselQuantLib.nodules import find_nodule_like

    label, hu, ball, spacing = _scene_with_a_nodule(ball_mm=3.0)
    found, records = find_nodule_like(label, hu, spacing, VesselQuantParameters())
    assert len(records) == 1 and records[0]["radius_mm"] == pytest.approx(3.0, abs=0.6)
    assert (found & ball).sum() / ball.sum() > 0.9 and (found & ~ball).sum() / ball.sum() < 0.2
    _, before = find_nodule_like(label, hu, spacing, VesselQuantParameters(nodule_scales_mm=(2.5, 4.5, 7.0)))
    assert before == []


def test_a_nodule_against_a_short_thick_vessel_is_cut_free_and_a_beaded_tube_is_not_a_nodule():
    """A 4.4 mm ball against a short 4 mm stub (between 1.5 mm tubes): at the 2.5 mm scale both have a compact core
    and the opening joins them into one piece, too long to be compact and tube-like at the ball's centre; split by
    nearest core, the ball is found and the stub stays vessel. A tube whose radius wavers between 2.55 and 2.95 mm
    has a core of beads at that scale, which the split must not turn into nodules."""
    from VesselQuantLib.nodules import find_nodule_like

    spacing = (0.8, 0.62, 0.62)
    shape = (60, 100, 110)
    grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij"), -1)
    stub = _tube_between(grid, [24, 30, 26], [24, 30, 34], 4.0) | _tube_between(grid, [24, 30, 2], [24, 30, 66], 1.5)
    ball = np.linalg.norm(grid - np.array([24.0, 37.6, 30.0]), axis=-1) <= 4.4
    along = grid[..., 2]
    radius = 2.75 + 0.2 * np.cos(2 * np.pi * along / 6.0)
    beads = (np.linalg.norm(grid[..., :2] - np.array([24.0, 50.0]), axis=-1) <= radius) & (along > 3) & (along < 65)
    label = stub | ball | beads
    hu = (-850 + 890 * ndi.gaussian_filter(label.astype(np.float32), 0.8)).astype(np.float32)
    found, records = find_nodule_like(label, hu, spacing, VesselQuantParameters())
    assert len(records) == 1 and records[0]["radius_mm"] == pytest.approx(4.4, abs=0.5)
    assert (found & ball).sum() / ball.sum() > 0.95
    assert (found & ~ball).sum() / ball.sum() < 0.05  # neither the stub nor a bead is taken
    assert not (found & beads).any()
    binned, again = find_nodule_like(label, hu, spacing, VesselQuantParameters(), (1, 2, 2))  # a large, fine CT
    assert len(again) == 1 and (binned & ball).sum() / ball.sum() > 0.9 and not (binned & beads).any()


def test_a_piece_of_the_opening_is_split_by_the_nearest_core_of_all_as_a_whole_volume_map_gives_it():
    """The split looks for each voxel's nearest core only in its piece's box widened by the opening's reach: the
    shares are those of the nearest core over the whole volume (ties between cores left out), for pieces holding
    several cores with other pieces' cores close by (beyond a wall of the label), with anisotropic voxels."""
    from VesselQuantLib.nodules import _split_by_core

    spacing = (0.8, 0.62, 0.7)
    shape = (40, 56, 50)
    grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij"), -1)
    rng = np.random.default_rng(6)
    centres = rng.uniform([4, 4, 4], [28, 31, 31], size=(16, 3))
    distance = np.stack([np.linalg.norm(grid - c, axis=-1) for c in centres])  # to each core's centre
    cores = np.zeros(shape, np.int32)
    for number, d in enumerate(distance, start=1):
        cores[(d <= 1.2) & (cores == 0)] = number
    within = 3.0
    to_core = np.stack([ndi.distance_transform_edt(cores != k, sampling=spacing) for k in range(1, 17)])
    sub = np.ones(shape, bool)  # the label the opening is cut from: walls between cores, whose pieces then differ
    sub[:, :, 8::8] = False
    sub |= cores > 0
    pieces, count = ndi.label((to_core.min(axis=0) <= within) & sub)
    ordered = np.sort(to_core, axis=0)
    owner = to_core.argmin(axis=0) + 1
    clear = ordered[1] - ordered[0] > 1e-6
    split = 0
    for where, share, rest in _split_by_core(pieces, cores, within, spacing):
        if rest is None:
            continue
        split += 1
        held = np.unique(cores[where][share & (cores[where] > 0)])
        assert held.size == 1
        local = share | rest
        expected = local & (owner[where] == held[0])
        assert np.array_equal(share[clear[where]], expected[clear[where]])
    assert split >= 4  # the pieces that hold several cores


def test_blobness_sees_a_ball_on_a_wall_by_its_own_shape_and_refuses_undersampled_scales():
    from VesselQuantLib.nodules import _blobness

    spacing = (0.8, 0.62, 0.62)
    z, y, x = np.meshgrid(*[np.arange(n) * s for n, s in zip((60, 60, 60), spacing)], indexing="ij")
    centre = np.array([24.0, 18.6, 18.6])
    ball = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= 25.0
    wall = x > centre[2] + 4.0  # a fifth of the 5 mm ball lies in the wall
    hu = ndi.gaussian_filter(np.where(ball | wall, 40.0, -860.0), [0.4 / s for s in spacing])
    at = tuple(int(round(c / s)) for c, s in zip(centre, spacing))
    assert _blobness(hu, at, 4.5, spacing) < 0.5  # the wall makes the Hessian plate-like
    assert _blobness(hu, at, 4.5, spacing, lung=~wall) > 0.85  # outside the lung counts as parenchyma
    assert _blobness(hu, at, 4.0, (5.0, 0.62, 0.62)) == 0.0  # sigma 2.3 mm, under half a 5 mm slice: not judged


def test_a_ball_centred_between_slices_is_judged_at_its_centre():
    """A 3 mm ball centred between two slices has two deepest voxels, equal but for rounding; a tube beside it makes
    the Hessian at either one differ. The shape test is made at their mean, so the ball and its mirror image in z
    (where rounding would pick the other voxel) get the same blobness."""
    from VesselQuantLib.nodules import _blobness, _deepest_point, _distance_inside

    spacing = (0.8, 0.62, 0.62)
    shape = (24, 40, 40)
    grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij"), -1)
    centre = np.array([11.5, 20.0, 20.0])
    ball = np.linalg.norm(grid - centre * spacing, axis=-1) <= 3.0
    tube = _tube_between(grid, [4.4, 13.6, 0.0], [4.4, 13.6, 24.8], 1.0)  # below the ball and off its axis
    hu = (-850 + 890 * ndi.gaussian_filter((ball | tube).astype(np.float32), 0.8)).astype(np.float32)
    depth = _distance_inside(ball, spacing)
    r_in = float(depth.max())
    at_voxel = [_blobness(hu, (z, 20, 20), r_in, spacing) for z in (11, 12)]
    assert abs(at_voxel[0] - at_voxel[1]) > 0.02  # which deepest voxel is taken matters
    np.testing.assert_allclose(_deepest_point(depth), centre)
    np.testing.assert_allclose(_deepest_point(depth[::-1]), [shape[0] - 1 - centre[0], *centre[1:]])
    judged = _blobness(hu, _deepest_point(depth), r_in, spacing)
    mirrored = _blobness(hu[::-1], _deepest_point(depth[::-1]), r_in, spacing)
    assert judged == pytest.approx(mirrored, abs=1e-3)
    assert min(at_voxel) < judged < max(at_voxel)


def test_nodule_depth_is_the_exact_distance_to_the_nearest_outside_voxel_less_half_a_voxel():
    """The nodule step's depth map (SimpleITK's Maurer transform on the complement) against scipy's exact transform,
    with anisotropic voxels and a mask that reaches the array's faces; within the float32 rounding its tests allow."""
    from VesselQuantLib.nodules import TIE_MM, _distance_inside

    spacing = (0.8, 0.62, 0.7)
    mask = ndi.binary_opening(np.random.default_rng(3).random((30, 36, 40)) > 0.3)
    mask[:, :, -1] = True
    exact = ndi.distance_transform_edt(mask, sampling=spacing) - 0.31
    depth = _distance_inside(mask, spacing)
    assert depth.dtype == np.float32 and not depth[~mask].any()
    assert np.abs(depth[mask] - exact[mask]).max() < 0.01 * TIE_MM
    everything = np.ones((5, 6, 7), bool)  # nothing outside: scipy's convention
    np.testing.assert_allclose(
        _distance_inside(everything, spacing),
        ndi.distance_transform_edt(everything, sampling=spacing) - 0.31,
        rtol=1e-6,
    )


def test_in_slice_holes_up_to_the_vessel_limit_are_filled_in_every_slice_and_larger_ones_left_open():
    from VesselQuantLib.lungmask import _fill_holes_per_slice

    mask = np.zeros((3, 40, 40), bool)
    mask[:, 2:38, 2:38] = True
    mask[0, 10:12, 10:12] = False  # a vessel's cross-section in the first slice: 4 pixels
    mask[1, 20:30, 20:30] = False  # a heart-sized island in one slice: 100 pixels
    mask[2, 5:7, 30:39] = False  # open to the slice's border: not a hole
    mask[2, 15, 15] = False  # one pixel, in the last slice
    filled = _fill_holes_per_slice(mask, pixel_mm2=1.0, max_hole_mm2=50.0)
    assert filled[0, 10:12, 10:12].all() and filled[2, 15, 15]
    assert not filled[1, 20:30, 20:30].any() and not filled[2, 5:7, 30:39].any()
    assert (filled & ~mask).sum() == 5


def test_the_winning_scale_is_kept_only_for_the_thin_vessel_growth():
    """Only the optional growth reads which scale won (it measures the blur on thick vessels' edges): without it no
    such map is made; with it, a thick tube's axis is won by the two coarse scales (one on the full grid, the coarsest
    merged from its subsampled grid), and every other map is the same."""
    spacing, shape = (1.0, 0.7, 0.7), (40, 64, 64)
    thick, thick_frac = _tube_volume(4.0, spacing, shape, axis_dir=(1.0, 0.1, 0.2), offset_mm=(0, -10, 0))
    hu = (thick + np.random.default_rng(0).normal(0, 10.0, shape)).astype(np.float32)
    lung = np.ones(shape, bool)
    without = multiscale_vesselness(hu, spacing, lung)
    growing = VesselQuantParameters(thin_vessel_min_radius_mm=0.3)
    with_scale = multiscale_vesselness(hu, spacing, lung, growing)
    assert without.scale_index is None
    for name in ("vesselness", "fine", "smoothed_finest", "ridge_finest"):
        np.testing.assert_array_equal(getattr(without, name), getattr(with_scale, name))
    coarsest = len(growing.vesselness_sigmas_mm) - 1
    d = np.array([1.0, 0.1, 0.2]) / np.linalg.norm([1.0, 0.1, 0.2])
    relative = np.argwhere(thick_frac > 0.999) * spacing - ((np.array(shape) - 1) / 2 * spacing + (0, -10, 0))
    along = relative @ d
    axis = (np.linalg.norm(relative - along[:, None] * d, axis=1) < 1.0) & (np.abs(along) < 10.0)
    thick_axis = with_scale.scale_index[tuple(np.argwhere(thick_frac > 0.999)[axis].T)]
    assert axis.sum() > 20 and thick_axis.min() >= 2 and (thick_axis == coarsest).any(), np.bincount(thick_axis)


def test_the_data_term_is_the_same_in_chunks_of_any_size_and_with_wide_indices(monkeypatch):
    """The data term is computed chunk by chunk on compact (int32) node indices: chunks of a few hundred nodes and
    int64 indices give the same graph and the same segmentation."""
    import VesselQuantLib.graphcut as graphcut

    hu, lung, spacing = _noisy_lung_with_vessels()
    maps = multiscale_vesselness(hu, spacing, lung)
    label, info = segment_vessels(hu, maps.vesselness, lung, spacing, maps=maps)
    monkeypatch.setattr(graphcut, "_DATA_TERM_CHUNK", 337)
    monkeypatch.setattr(graphcut, "_index_type", lambda size: np.int64)
    maps = multiscale_vesselness(hu, spacing, lung)
    chunked, chunked_info = segment_vessels(hu, maps.vesselness, lung, spacing, maps=maps)
    assert info.graph_nodes > 1000 and info.speck_thin_voxels > 0
    assert (chunked_info.graph_nodes, chunked_info.speck_thin_voxels) == (info.graph_nodes, info.speck_thin_voxels)
    assert label.any() and np.array_equal(chunked, label)
