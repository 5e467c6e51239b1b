"""Real medical images shipped inside PyPI packages (pydicom / pydicom-data DICOM test files, scikit-image's
bundled samples), decoded once per process and handed out with light random variation."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageOps

MAX_SOURCE_SIDE = 768  # decoded sources are shrunk to this once, so per-figure work stays small


@dataclass(frozen=True)
class ImageSource:
    """One real image: where it comes from, the concept it shows, and how a caption may describe it."""

    name: str  # e.g. "pydicom:693_UNCR.dcm"
    concept: str  # ground-truth concept, e.g. "ct"
    descriptions: tuple[str, ...]  # caption openings, e.g. "Axial CT of the head"
    findings: tuple[str, ...]  # follow-up sentences for the caption body


def _rescale_to_uint8(pixels: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> np.ndarray:
    values = pixels.astype(np.float32)
    low, high = np.percentile(values, [low_pct, high_pct])
    scaled = (values - low) * (255.0 / max(float(high - low), 1e-6))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _read_dicom(file_name: str) -> np.ndarray:
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = get_testdata_file(file_name)
        if path is None:
            raise FileNotFoundError(f"DICOM test file {file_name} is not installed (pip install pydicom-data)")
        dataset = pydicom.dcmread(path)
        pixels = dataset.pixel_array
        photometric = dataset.PhotometricInterpretation
        frames = int(dataset.get("NumberOfFrames") or 1)
        if frames > 1:
            pixels = pixels[0]
        if photometric == "PALETTE COLOR":
            return _rescale_to_uint8(apply_color_lut(pixels, dataset), 0.0, 100.0)
        if photometric in ("RGB", "YBR_FULL", "YBR_FULL_422"):
            return pixels.astype(np.uint8)
        if "WindowCenter" in dataset:
            pixels = apply_voi_lut(apply_modality_lut(pixels, dataset), dataset)
        gray = _rescale_to_uint8(pixels)
    return 255 - gray if photometric == "MONOCHROME1" else gray


def _read_skimage(name: str) -> np.ndarray:
    from skimage import data  # only bundled samples are used: these never touch the network

    return getattr(data, name)()


SOURCES: tuple[tuple[ImageSource, Callable[[], np.ndarray]], ...] = (
    (
        ImageSource(
            "pydicom:693_UNCR.dcm",
            "ct",
            ("Axial CT of the head", "Non-contrast axial CT of the brain", "Axial computed tomography of the head"),
            (
                "No acute intracranial haemorrhage is seen.",
                "The ventricles are of normal size.",
                "Images were acquired with 5 mm slice thickness.",
            ),
        ),
        lambda: _read_dicom("693_UNCR.dcm"),
    ),
    (
        ImageSource(
            "pydicom:CT_small.dcm",
            "ct",
            ("Axial CT of the thorax at the level of a thoracic vertebra", "Axial CT image through the thoracic spine"),
            ("The vertebral body and paraspinal muscles are shown.", "Soft-tissue window."),
        ),
        lambda: _read_dicom("CT_small.dcm"),
    ),
    (
        ImageSource(
            "pydicom:MR-SIEMENS-DICOM-WithOverlays.dcm",
            "mri",
            ("Axial T1-weighted MRI of the abdomen", "Axial magnetic resonance image of the upper abdomen"),
            ("A focal liver lesion is visible in the right lobe.", "Both kidneys are shown at the level of the hilum."),
        ),
        lambda: _read_dicom("MR-SIEMENS-DICOM-WithOverlays.dcm"),
    ),
    (
        ImageSource(
            "pydicom:MR2_UNCR.dcm",
            "mri",
            ("Coronal MRI of the shoulder", "Coronal spin-echo magnetic resonance image of the shoulder joint"),
            ("The humeral head and rotator cuff are shown.", "No joint effusion is present."),
        ),
        lambda: _read_dicom("MR2_UNCR.dcm"),
    ),
    (
        ImageSource(
            "pydicom:RG1_UNCR.dcm",
            "xray",
            ("Posteroanterior chest X-ray", "Chest radiograph in posteroanterior projection"),
            ("The lung fields are clear.", "Cardiac silhouette is within normal limits."),
        ),
        lambda: _read_dicom("RG1_UNCR.dcm"),
    ),
    (
        ImageSource(
            "pydicom:RG3_UNCR.dcm",
            "xray",
            ("Radiograph of the lower leg", "Plain X-ray of the distal tibia"),
            ("A well-defined lucent lesion of the distal tibia is shown.", "Lateral projection."),
        ),
        lambda: _read_dicom("RG3_UNCR.dcm"),
    ),
    (
        ImageSource(
            "pydicom:US1_UNCR.dcm",
            "ultrasound",
            ("Colour Doppler ultrasound of a lymph node", "Power Doppler sonography of an enlarged lymph node"),
            ("Hilar vascularity is preserved.", "Colour signal marks blood flow."),
        ),
        lambda: _read_dicom("US1_UNCR.dcm"),
    ),
    (
        ImageSource(
            "pydicom:gdcm-US-ALOKA-16.dcm",
            "ultrasound",
            ("Transabdominal ultrasound of the pelvis", "Pelvic ultrasonography in two planes"),
            ("The bladder is distended.", "Grey-scale B-mode images."),
        ),
        lambda: _read_dicom("gdcm-US-ALOKA-16.dcm"),
    ),
    (
        ImageSource(
            "pydicom:color-pl.dcm",
            "ultrasound",
            ("Transesophageal echocardiogram with colour Doppler", "Colour Doppler echocardiography"),
            ("A regurgitant jet is visible.", "Mid-oesophageal view."),
        ),
        lambda: _read_dicom("color-pl.dcm"),
    ),
    (
        ImageSource(
            "pydicom:JPEG2000_UNC.dcm",
            "nuclear_medicine",
            ("Whole-body bone scintigraphy", "Whole-body bone scan (nuclear medicine)"),
            ("Anterior view after injection of 99mTc-MDP.", "No focal increased tracer uptake is seen."),
        ),
        lambda: _read_dicom("JPEG2000_UNC.dcm"),
    ),
    (
        ImageSource(
            "skimage:immunohistochemistry",
            "immunohistochemistry",
            ("Immunohistochemistry staining of a tissue section", "Immunohistochemical staining (DAB, brown)"),
            ("Nuclei are counterstained with haematoxylin.", "Membranous staining of tumour cells."),
        ),
        lambda: _read_skimage("immunohistochemistry"),
    ),
    (
        ImageSource(
            "skimage:retina",
            "fundus_photograph",
            ("Fundus photograph of the retina", "Colour fundus photography of the left eye"),
            ("The optic disc and macula are shown.", "Retinal vessels appear normal."),
        ),
        lambda: _read_skimage("retina"),
    ),
    (
        ImageSource(
            "skimage:cell",
            "microscopy",
            ("Phase-contrast micrograph of a single cell", "Light microscopy image of a cell in suspension"),
            ("Cells were imaged in saline.", "Representative field of view."),
        ),
        lambda: _read_skimage("cell"),
    ),
)

SOURCE_BY_NAME: dict[str, ImageSource] = {source.name: source for source, _ in SOURCES}
_LOADERS: dict[str, Callable[[], np.ndarray]] = {source.name: loader for source, loader in SOURCES}


def sources_for(concept: str) -> tuple[ImageSource, ...]:
    return tuple(source for source, _ in SOURCES if source.concept == concept)


def image_concepts() -> tuple[str, ...]:
    return tuple(dict.fromkeys(source.concept for source, _ in SOURCES))


@cache
def decoded(name: str) -> Image.Image:
    """The source image as an 8-bit L or RGB Pillow image, at most MAX_SOURCE_SIDE px; decoded once per process."""
    pixels = _LOADERS[name]()
    image = Image.fromarray(pixels)
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    image.thumbnail((MAX_SOURCE_SIDE, MAX_SOURCE_SIDE), Image.Resampling.LANCZOS)
    image.load()
    return image


LEVEL_FACTORS = (1.0, 0.75, 0.5625, 0.42, 0.316, 0.237)  # a pyramid in steps of 3/4


@cache
def _level(name: str, index: int) -> Image.Image:
    """The source shrunk by LEVEL_FACTORS[index] with a good filter, once per process."""
    base = decoded(name)
    if index == 0:
        return base
    factor = LEVEL_FACTORS[index]
    size = (max(8, round(base.width * factor)), max(8, round(base.height * factor)))
    return base.resize(size, Image.Resampling.LANCZOS)


def _scaled_crop(name: str, box: tuple[int, int, int, int], size: tuple[int, int]) -> Image.Image:
    """`box` of the source resized to `size`. Shrinking samples the nearest pixel of the smallest pyramid level
    still at least as large as the target (at most 4/3 larger, already low-passed): ten times cheaper than
    filtering the full-size source, and visually the same."""
    scale = size[0] / (box[2] - box[0])
    if scale >= 1:
        return decoded(name).resize(size, Image.Resampling.BILINEAR, box=box)
    index = max(i for i, factor in enumerate(LEVEL_FACTORS) if factor >= scale)
    level, factor = _level(name, index), LEVEL_FACTORS[index]
    scaled = (box[0] * factor, box[1] * factor, min(level.width, box[2] * factor), min(level.height, box[3] * factor))
    return level.resize(size, Image.Resampling.NEAREST, box=scaled)


def varied(name: str, rng: np.random.Generator, long_side: int) -> Image.Image:
    """A lightly varied copy of a source: random crop, flip, small rotation, gamma/contrast, resized so its
    longer side is `long_side`."""
    base = decoded(name)
    width, height = base.size
    keep_w, keep_h = rng.uniform(0.72, 1.0, size=2)
    crop_w, crop_h = max(16, int(width * keep_w)), max(16, int(height * keep_h))
    left = int(rng.integers(0, width - crop_w + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    scale = long_side / max(crop_w, crop_h)
    size = (max(8, round(crop_w * scale)), max(8, round(crop_h * scale)))
    image = _scaled_crop(name, (left, top, left + crop_w, top + crop_h), size)
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    if rng.random() < 0.2:
        image = image.rotate(float(rng.uniform(-8, 8)), resample=Image.Resampling.BILINEAR)
    gamma = float(rng.uniform(0.75, 1.3))
    gain = float(rng.uniform(0.9, 1.1))
    lut = np.clip(255.0 * gain * (np.arange(256) / 255.0) ** gamma, 0, 255).astype(np.uint8).tolist()
    return image.point(lut * len(image.getbands()))
