"""Command-line options shared by the benchmarks that build VesselQuant phantoms (seeds, dose, geometry)."""

from __future__ import annotations

import argparse


def add_phantom_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--noise", type=float, nargs="+", default=[30.0, 90.0], help="noise SD in HU (30 normal, 90 low dose)"
    )
    parser.add_argument("--size", type=int, nargs=3, default=[160, 160, 100], help="voxels (x y z)")
    parser.add_argument("--spacing", type=float, nargs=3, default=[0.7, 0.7, 1.0], help="voxel size in mm (x y z)")
    parser.add_argument("--psf", type=float, nargs=3, default=[0.8, 0.8, 1.0], help="PSF FWHM in mm (x y z)")


def phantom_geometry(args: argparse.Namespace) -> dict:
    """``make_vessel_phantom`` keyword arguments for the geometry options."""
    return dict(size_xyz=tuple(args.size), spacing_xyz=tuple(args.spacing), psf_fwhm_mm=tuple(args.psf))
