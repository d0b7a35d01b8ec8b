"""GeoTIFF frame stacks: read one frame at a time, write x4 outputs with scaled georeferencing.

Reading (:func:`open_geotiff_stack`) accepts one file, a folder or a glob. Frames are either the
band groups of one multi-band file (``bands_per_frame``) or one file per frame (natural name
order); all files must share one grid. :meth:`GeoTiffStack.read` reads only the bands of the
asked frame, so a 4096 x 4096 stack costs one frame of memory.

Writing (:class:`GeoTiffFramesWriter`, :class:`GeoTiffStackWriter`) follows the geospatial
checklist of ``docs/geotiff.md``: CRS copied as is, ``transform * Affine.scale(1/s)``
(rotated and sheared transforms stay right), GCPs and RPCs rescaled, ``AREA_OR_POINT``, dtype,
nodata, band descriptions, colour interpretation, scales, offsets and units kept; tiled,
compressed with the right predictor, ``BIGTIFF=IF_SAFER``, optional COG; provenance tags. Every
output is written under a temporary name in the destination folder and renamed into place, so
an interrupted run never leaves a half-written file under the final name.

The writers take data that is already in the native dtype: clipping and rounding are the
caller's job (the engine does it). Nothing here clips, rounds or casts values; the one change
is that a valid pixel whose value equals the nodata value is moved one step off it (else it
would read back as nodata). Floats without a nodata value get NaN on invalid pixels; integers
without one get an internal mask band.

The package: :mod:`.meta` (metadata, value range, georeferencing of the x4 grid), :mod:`.nodata`
(invalid pixels), :mod:`.read` (stacks), :mod:`.write` (per-frame files, whole or by row strips)
and :mod:`.stack` (one stacked file). The names below are its public interface.
"""

from __future__ import annotations

import rasterio
import rasterio.shutil

from satvsr_cli.io.geotiff.meta import (
    AI_NOTE,
    COMPRESSIONS,
    GEOTIFF_SUFFIXES,
    VALUE_RANGE_TAG,
    GeoMeta,
    scaled_georef,
    upsample_mask,
)
from satvsr_cli.io.geotiff.nodata import fill_invalid
from satvsr_cli.io.geotiff.read import GeoTiffStack, is_geotiff, open_geotiff_stack
from satvsr_cli.io.geotiff.stack import GeoTiffStackWriter
from satvsr_cli.io.geotiff.write import GeoRowWriter, GeoTiffFramesWriter

__all__ = [
    "AI_NOTE",
    "COMPRESSIONS",
    "GEOTIFF_SUFFIXES",
    "VALUE_RANGE_TAG",
    "GeoMeta",
    "GeoRowWriter",
    "GeoTiffFramesWriter",
    "GeoTiffStack",
    "GeoTiffStackWriter",
    "fill_invalid",
    "is_geotiff",
    "open_geotiff_stack",
    "rasterio",
    "scaled_georef",
    "upsample_mask",
]
