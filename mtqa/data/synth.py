"""Procedural product-surface images with pixel-exact defect masks, generated on the fly.

Five materials (brushed metal, matte plastic, fabric weave, wood grain, painted panel) under varied
lighting (gradient, vignetting, specular highlight, sensor noise) carry four defect types: scratch
(thin bright or dark line), crack (dark branching random walk), stain (blotchy colour change) and
deformation (dent or warp rendered by shading a Gaussian height field). Each defect is drawn in its
bounding box only, and its mask is exactly the pixels it changes by at least a visibility threshold
(raised on rough materials), so a defect too faint to see is neither drawn nor labelled.

Speed comes from a per-seed bank of noise fields (built once) cropped at random offsets, and from
vectorised numpy restricted to each defect's box. Images are deterministic per (seed, *key).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from mtqa.data.errors import DatasetError

DEFECT_TYPES: tuple[str, ...] = ("scratch", "crack", "stain", "deformation")
MATERIALS: tuple[str, ...] = ("brushed_metal", "matte_plastic", "fabric", "wood", "painted_panel")

# Peak luminance change (0..1 units) of each defect type at severity 1.
_CONTRAST = {"scratch": 0.35, "crack": 0.5, "stain": 0.55, "deformation": 0.4}
# Texture amplitude of each material; the visibility threshold grows with it.
_ROUGHNESS = {
    "brushed_metal": 0.05,
    "matte_plastic": 0.02,
    "fabric": 0.07,
    "wood": 0.08,
    "painted_panel": 0.015,
}
_STAIN_GAIN = 1.4  # stains are tinted copies of the local luminance, brightened by this factor
_STAIN_COLOURS = np.array(
    [[0.25, 0.17, 0.08], [0.08, 0.08, 0.08], [0.55, 0.3, 0.1], [0.35, 0.4, 0.2]], dtype=np.float32
)


@dataclass(frozen=True)
class SynthConfig:
    """Generator settings: image size, per-type appearance probability, defects cap, severity."""

    size: int = 128
    defect_probs: dict[str, float] = field(
        default_factory=lambda: {"scratch": 0.3, "crack": 0.25, "stain": 0.3, "deformation": 0.25}
    )
    max_defects: int = 3
    severity: tuple[float, float] = (0.1, 1.0)
    visibility: float = 0.04  # least luminance change (0..1) that counts as a visible defect pixel
    classes: tuple[str, ...] = DEFECT_TYPES

    def __post_init__(self) -> None:
        unknown = [c for c in (*self.classes, *self.defect_probs) if c not in DEFECT_TYPES]
        if unknown:
            raise DatasetError(f"unknown synthetic defect type(s) {unknown}; known: {DEFECT_TYPES}")
        if self.size < 16:
            raise DatasetError(f"synthetic image size must be >= 16, got {self.size}")
        lo, hi = self.severity
        if not 0 <= lo <= hi <= 1:
            raise DatasetError(
                f"severity range must satisfy 0 <= lo <= hi <= 1, got {self.severity}"
            )
        if self.max_defects < 0:
            raise DatasetError(f"max_defects must be >= 0, got {self.max_defects}")

    def to_dict(self) -> dict:
        """JSON-able form (stored in the bundle's ``source``)."""
        return {
            "size": self.size,
            "defect_probs": dict(self.defect_probs),
            "max_defects": self.max_defects,
            "severity": list(self.severity),
            "visibility": self.visibility,
            "classes": list(self.classes),
        }


@dataclass
class SynthSample:
    """One generated image: uint8 HxWx3, per-type masks bool [K,H,W], class-index mask uint8 HxW."""

    image: np.ndarray
    masks: np.ndarray
    index_mask: np.ndarray
    material: str


class SynthGenerator:
    """Deterministic generator: ``generate(*key)`` returns the same image for the same key."""

    def __init__(self, config: SynthConfig | None = None, seed: int = 0) -> None:
        self.config = config or SynthConfig()
        self.seed = int(seed)
        s = self.config.size
        rng = np.random.default_rng([self.seed, 0x5EED])
        big = 2 * s
        white = rng.standard_normal((6, big, big)).astype(np.float32)
        # Smooth fields at three scales (two of each), brushed (streaks along x) and fine grain.
        sigmas = (s / 6, s / 6, s / 16, s / 16, s / 40, s / 40)
        self._smooth = np.stack(
            [
                _unit(ndimage.gaussian_filter(w, sg, mode="wrap"))
                for w, sg in zip(white, sigmas, strict=True)
            ]
        )
        streaks = rng.standard_normal((big, big)).astype(np.float32)
        self._brushed = _unit(ndimage.gaussian_filter(streaks, (0.6, s / 3), mode="wrap"))
        self._fine = rng.standard_normal((2, big, big)).astype(np.float32)
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
        self._xx, self._yy = xx, yy
        self._r2 = ((xx - s / 2) ** 2 + (yy - s / 2) ** 2) / (s * s / 2)
        self._probs = np.array([self.config.defect_probs.get(c, 0.0) for c in self.config.classes])

    # -- public -------------------------------------------------------------------------------
    def generate(self, *key: int) -> SynthSample:
        """Render the image for ``key`` (e.g. (split, epoch, index)); same key, same image."""
        # Surface and defects draw from separate streams: the same key with defects switched off
        # gives the same surface, so a defect's effect is exactly the difference of the two.
        key_ints = [int(k) for k in key]
        rng = np.random.default_rng([self.seed, *key_ints, 0])
        rng_defects = np.random.default_rng([self.seed, *key_ints, 1])
        s, classes = self.config.size, self.config.classes
        material = MATERIALS[int(rng.integers(len(MATERIALS)))]
        lum, colour = self._material(material, rng)
        lum = self._lighting(lum, material, rng)
        # Visible = mean RGB change >= tau_rgb; luminance deltas are scaled by the colour's mean.
        tau_rgb = self.config.visibility + 0.5 * _ROUGHNESS[material]
        tau = tau_rgb / float(colour.mean())
        masks = np.zeros((len(classes), s, s), dtype=bool)
        index_mask = np.zeros((s, s), dtype=np.uint8)
        stains: list[tuple[tuple[slice, slice], np.ndarray, np.ndarray]] = []
        for k in self._pick_defects(rng_defects):
            name = classes[k]
            sev = rng_defects.uniform(*self.config.severity)
            if name == "stain":
                box, alpha, tint = self._stain(rng_defects, sev)
                # A hue shift shows even when it moves only one channel.
                change = np.abs(_STAIN_GAIN * tint - colour).max()
                visible = alpha * lum[box] * np.float32(change) >= tau_rgb
                if visible.any():
                    stains.append((box, alpha, tint))
            else:
                box, delta, visible = getattr(self, f"_{name}")(rng_defects, sev, tau)
                if visible.any():
                    lum[box] += delta
            if visible.any():
                masks[k][box] |= visible
                index_mask[box][visible] = k + 1  # later defects win on the index mask
        rgb = lum[:, :, None] * colour[None, None, :]
        for box, alpha, tint in stains:
            a = alpha[:, :, None]
            rgb[box] = (
                rgb[box] * (1 - a) + a * _STAIN_GAIN * tint[None, None, :] * lum[box][:, :, None]
            )
        noise = self._crop(self._fine[1], rng) * rng.uniform(0.004, 0.015)
        rgb += noise[:, :, None]
        image = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return SynthSample(image=image, masks=masks, index_mask=index_mask, material=material)

    # -- background ---------------------------------------------------------------------------
    def _crop(
        self, fld: np.ndarray, rng: np.random.Generator, size: int | None = None
    ) -> np.ndarray:
        n = size or self.config.size
        oy, ox = rng.integers(0, fld.shape[0] - n + 1, size=2)
        out = fld[oy : oy + n, ox : ox + n]
        return out.T if rng.random() < 0.5 else out

    def _material(self, material: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        sm = self._smooth
        base = rng.uniform(0.45, 0.65)
        fine = self._crop(self._fine[0], rng)
        if material == "brushed_metal":
            streak = self._crop(self._brushed, rng)
            lum = base + 0.05 * self._crop(sm[0], rng) + 0.04 * streak + 0.01 * fine
            colour = np.array([0.92, 0.94, 0.98]) * rng.uniform(0.9, 1.1)
        elif material == "matte_plastic":
            lum = base + 0.03 * self._crop(sm[1], rng) + 0.012 * fine
            colour = _random_colour(rng)
        elif material == "fabric":
            period = rng.uniform(3.0, 7.0)
            warp = 0.8 * self._crop(sm[4], rng)
            k = np.float32(2 * np.pi / period)
            weave = np.sin(k * self._xx + warp) * np.sin(k * self._yy)
            lum = base + 0.06 * weave + 0.02 * self._crop(sm[3], rng) + 0.02 * fine
            colour = _random_colour(rng)
        elif material == "wood":
            period = rng.uniform(0.08, 0.2) * self.config.size
            rings = np.sin(2 * np.pi * (self._yy / period + 0.6 * self._crop(sm[2], rng)))
            lum = base + 0.06 * rings + 0.03 * self._crop(self._brushed, rng) + 0.01 * fine
            colour = np.array([0.95, 0.68, 0.42]) * rng.uniform(0.85, 1.15)
        else:  # painted_panel: flat colour with faint orange peel
            lum = base + 0.012 * self._crop(sm[5], rng) + 0.006 * fine
            colour = _random_colour(rng)
        return lum.astype(np.float32), np.clip(colour, 0.3, 1.0).astype(np.float32)

    def _lighting(self, lum: np.ndarray, material: str, rng: np.random.Generator) -> np.ndarray:
        s = self.config.size
        gx, gy = rng.uniform(-0.25, 0.25, size=2) / s
        light = 1.0 + gx * (self._xx - s / 2) + gy * (self._yy - s / 2)
        light -= rng.uniform(0.0, 0.25) * self._r2  # vignetting
        lum = lum * light
        if material != "fabric" and rng.random() < 0.6:  # specular highlight on smooth surfaces
            cx, cy = rng.uniform(0, s, size=2)
            width = rng.uniform(0.15, 0.4) * s
            d2 = (self._xx - cx) ** 2 + (self._yy - cy) ** 2
            lum = lum + rng.uniform(0.05, 0.2) * np.exp(d2 * np.float32(-1.0 / (2 * width * width)))
        return lum.astype(np.float32)

    # -- defects ------------------------------------------------------------------------------
    def _pick_defects(self, rng: np.random.Generator) -> list[int]:
        hit = rng.random(len(self._probs)) < self._probs
        picked = [k for k in np.flatnonzero(hit) for _ in range(1 + int(rng.random() < 0.2))]
        rng.shuffle(picked)
        return [int(k) for k in picked[: self.config.max_defects]]

    def _box(self, cx: float, cy: float, rx: float, ry: float) -> tuple[slice, slice]:
        s = self.config.size
        y0, y1 = max(0, int(cy - ry)), min(s, int(cy + ry) + 1)
        x0, x1 = max(0, int(cx - rx)), min(s, int(cx + rx) + 1)
        return slice(y0, max(y1, y0 + 1)), slice(x0, max(x1, x0 + 1))

    def _grid(self, box: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        return self._xx[box], self._yy[box]

    def _scratch(self, rng, sev, tau):
        s = self.config.size
        length = rng.uniform(0.2, 0.7) * s
        theta = rng.uniform(0, np.pi)
        dx, dy = length * np.cos(theta), length * np.sin(theta)
        x0, y0 = rng.uniform(0.1 * s, 0.9 * s, size=2) - (dx / 2, dy / 2)
        width = rng.uniform(1.2, 2.5) * s / 128
        box = self._box(x0 + dx / 2, y0 + dy / 2, abs(dx) / 2 + 2 * width, abs(dy) / 2 + 2 * width)
        xx, yy = self._grid(box)
        t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / (length * length), 0, 1)
        dist2 = (xx - x0 - t * dx) ** 2 + (yy - y0 - t * dy) ** 2
        profile = np.clip(1.0 - dist2 / (width * width), 0, 1)
        peak = sev * _CONTRAST["scratch"]
        delta = (peak * (1 if rng.random() < 0.5 else -1)) * profile
        # A visible line is labelled along its whole core (half-width), so its mask never breaks
        # into dashes where the pixel grid misses the centre of a thin line.
        if peak < tau:
            return box, delta.astype(np.float32), np.zeros(profile.shape, dtype=bool)
        return box, delta.astype(np.float32), (np.abs(delta) >= tau) | (profile >= 0.5)

    def _crack(self, rng, sev, tau):
        s = self.config.size
        steps = int(rng.uniform(0.2, 0.6) * s)
        start = rng.uniform(0.15 * s, 0.85 * s, size=2)
        paths = [self._walk(rng, start, rng.uniform(0, 2 * np.pi), steps)]
        if rng.random() < 0.5:  # one branch from a point along the main path
            fork = paths[0][int(rng.integers(steps // 3, steps))]
            paths.append(self._walk(rng, fork, rng.uniform(0, 2 * np.pi), steps // 2))
        pts = np.concatenate(paths)
        if rng.random() < 0.5 * sev:  # severe cracks are wider
            pts = np.concatenate([pts, pts + (1, 0), pts + (0, 1)])
        ij = np.clip(np.rint(pts).astype(np.int64), 0, s - 1)
        lo, hi = ij.min(axis=0), ij.max(axis=0) + 1
        box = (slice(lo[1], hi[1]), slice(lo[0], hi[0]))
        hit = np.zeros((hi[1] - lo[1], hi[0] - lo[0]), dtype=bool)
        hit[ij[:, 1] - lo[1], ij[:, 0] - lo[0]] = True
        depth = sev * _CONTRAST["crack"]
        delta = np.where(hit, np.float32(-depth), np.float32(0))
        return box, delta, hit if depth >= tau else np.zeros_like(hit)

    @staticmethod
    def _walk(rng, start, heading, steps):
        angles = heading + np.cumsum(rng.normal(0.0, 0.35, steps))
        step = np.stack([np.cos(angles), np.sin(angles)], axis=1) * 0.8
        return start + np.cumsum(step, axis=0)

    def _stain(self, rng, sev):
        s = self.config.size
        rx, ry = rng.uniform(0.05, 0.2, size=2) * s
        cx, cy = rng.uniform(0.1 * s, 0.9 * s, size=2)
        theta = rng.uniform(0, np.pi)
        box = self._box(cx, cy, 1.4 * max(rx, ry), 1.4 * max(rx, ry))
        xx, yy = self._grid(box)
        u = ((xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)) / rx
        v = (-(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)) / ry
        edge = self._crop(self._smooth[4], rng, size=s)[box]
        r = np.sqrt(u * u + v * v) + 0.25 * edge
        alpha = np.clip((1.0 - r) / 0.3, 0, 1) * (sev * _CONTRAST["stain"] / 0.55 * 0.8)
        tint = _STAIN_COLOURS[int(rng.integers(len(_STAIN_COLOURS)))]
        return box, alpha.astype(np.float32), tint

    def _deformation(self, rng, sev, tau):
        s = self.config.size
        a = rng.uniform(0.04, 0.15) * s
        b = a * rng.uniform(1.0, 3.0)  # elongated -> warp / crease
        cx, cy = rng.uniform(0.15 * s, 0.85 * s, size=2)
        theta = rng.uniform(0, np.pi)
        box = self._box(cx, cy, 2.5 * b, 2.5 * b)
        xx, yy = self._grid(box)
        c, sn = np.cos(theta), np.sin(theta)
        u = ((xx - cx) * c + (yy - cy) * sn) / a
        v = (-(xx - cx) * sn + (yy - cy) * c) / b
        height = np.exp(-(u * u + v * v))
        # Shading: light from direction phi hits the slope of the (dent or bump) height field.
        phi = rng.uniform(0, 2 * np.pi)
        du, dv = -2 * u * height, -2 * v * height * (a / b)
        shade = np.cos(phi) * du + np.sin(phi) * dv
        amp = sev * _CONTRAST["deformation"] * (1 if rng.random() < 0.5 else -1)
        delta = amp * (0.8 * shade - 0.5 * height)
        change = np.abs(delta)
        visible = change >= tau
        # A clearly visible dent is labelled over its footprint (height >= 0.4 of the peak), also
        # where shading and darkening cancel; a faint one only where it shows.
        if change.max() >= 2 * tau:
            visible |= height >= 0.4
        return box, delta.astype(np.float32), visible


def _unit(x: np.ndarray) -> np.ndarray:
    return ((x - x.mean()) / (x.std() + 1e-8)).astype(np.float32)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    rgb = rng.uniform(0.3, 1.0, size=3)
    return rgb / rgb.max() * rng.uniform(0.75, 1.0)


def synth_classes(classes: Sequence[str] | None) -> tuple[str, ...]:
    """Validate a requested subset of the synthetic defect types (None: all four)."""
    if classes is None:
        return DEFECT_TYPES
    unknown = [c for c in classes if c not in DEFECT_TYPES]
    if unknown:
        raise DatasetError(
            f"unknown class(es) {unknown} for the synthetic set; known {DEFECT_TYPES}"
        )
    if not classes:
        raise DatasetError("classes must name at least one defect type")
    return tuple(classes)
