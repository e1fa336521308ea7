"""Drawing a colour-fundus-like image of a :class:`FundusCase` with numpy and OpenCV.

Lengths are expressed in disc diameters (``dd``) so that every structure scales with the image
size. Colours are RGB floats in [0, 1]; the result is converted to an 8-bit BGR array for
``cv2.imwrite``. Each kind of structure is drawn into one 8-bit mask with OpenCV's anti-aliased
primitives, blurred once and alpha-blended once, which keeps a 256 px image at a few milliseconds.
"""
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import List, NamedTuple, Sequence, Tuple

import cv2
import numpy as np

from .cases import FundusCase

_SHIFT = 4  # sub-pixel bits of OpenCV's drawing functions
_SCALE = 1 << _SHIFT

VEIN_RGB = (0.46, 0.07, 0.06)
ARTERY_RGB = (0.74, 0.22, 0.13)
HEMORRHAGE_RGB = (0.38, 0.03, 0.02)
MICROANEURYSM_RGB = (0.45, 0.03, 0.03)
EXUDATE_RGB = (1.0, 0.90, 0.40)
DRUSEN_RGB = (0.93, 0.80, 0.48)
COTTON_WOOL_RGB = (0.96, 0.92, 0.82)
PIGMENT_RGB = (0.16, 0.08, 0.04)
ATROPHY_RGB = (0.93, 0.84, 0.68)


class FundusImage(NamedTuple):
    """A drawn image and its segmentation masks.

    Attributes:
        image: ``(H, W, 3)`` uint8, BGR (OpenCV order).
        vessels: ``(H, W)`` uint8, 1 on vessels inside the field of view, else 0.
        disc: ``(H, W)`` bool, the optic disc (including the cup).
        cup: ``(H, W)`` bool, the optic cup (empty for a swollen disc).
    """

    image: np.ndarray
    vessels: np.ndarray
    disc: np.ndarray
    cup: np.ndarray


@dataclass
class _Vessel:
    points: np.ndarray  # (N, 2) float32 pixel coordinates, from the disc outwards
    width: float  # pixels at the start
    kind: str  # 'artery' or 'vein'
    region: str  # 'superior' or 'inferior' half of the retina
    wiggle: float  # heading noise per step (tortuosity), inherited by branches


@lru_cache(maxsize=8)
def _grid(size: int) -> Tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    xs.flags.writeable = ys.flags.writeable = False
    return xs, ys


def _fixed(points: np.ndarray) -> np.ndarray:
    """Pixel coordinates as OpenCV's fixed-point int32."""
    return np.round(np.asarray(points, np.float32) * _SCALE).astype(np.int32)


def _point(xy: Sequence[float]) -> Tuple[int, int]:
    return int(round(xy[0] * _SCALE)), int(round(xy[1] * _SCALE))


def _blur(alpha: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a float32 map; wide blurs run on a 4x smaller copy."""
    height, width = alpha.shape
    if sigma < 4 or min(height, width) < 16:
        return cv2.GaussianBlur(alpha, (0, 0), sigma)
    small = cv2.resize(alpha, ((width + 3) // 4, (height + 3) // 4), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / 4)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _distance(xs: np.ndarray, ys: np.ndarray, point, unit: float) -> np.ndarray:
    """Distance map to ``point``, in units of ``unit`` pixels."""
    return cv2.magnitude(xs - np.float32(point[0]), ys - np.float32(point[1])) * np.float32(
        1 / unit)


class _Painter:
    """Draws one image; holds the canvas, the geometry and the random stream."""

    def __init__(self, case: FundusCase, size: int, rng: np.random.Generator):
        self.case, self.size, self.rng = case, size, rng
        self.side = 1.0 if case.eye == 'right' else -1.0  # the disc lies nasally: right in OD
        centre = size / 2 + rng.uniform(-0.01, 0.01, 2) * size
        self.centre = centre.astype(np.float32)
        self.radius = size * rng.uniform(0.455, 0.475)
        self.dd = size * rng.uniform(0.155, 0.175)
        self.fovea = centre + np.array([-self.side * rng.uniform(0.05, 0.09),
                                        rng.uniform(-0.02, 0.02)]) * size
        self.disc = self.fovea + np.array([self.side * rng.uniform(2.05, 2.3),
                                           rng.uniform(-0.25, 0.1)]) * self.dd
        self.fovea, self.disc = self.fovea.astype(np.float32), self.disc.astype(np.float32)
        xs, ys = _grid(size)
        self.dist_fovea = _distance(xs, ys, self.fovea, self.dd)
        self.dist_centre = _distance(xs, ys, self.centre, self.radius)
        self.image: np.ndarray = None  # RGB float32, set by background()

    @cached_property
    def dist_disc(self) -> np.ndarray:
        return _distance(*_grid(self.size), self.disc, self.dd)

    # ---------------------------------------------------------------- primitives
    def canvas(self) -> np.ndarray:
        return np.zeros((self.size, self.size), np.uint8)

    def blend(self, mask: np.ndarray, rgb, opacity: float = 1.0, blur_dd: float = 0.0) -> None:
        """Alpha-blend ``rgb`` where ``mask`` (uint8 0-255, or float in [0, 1]) is set.

        A uint8 mask is processed only inside the bounding box of its non-zero pixels (grown by
        the blur's reach), which makes small structures cheap.
        """
        sigma = max(blur_dd * self.dd, 0.3) if blur_dd > 0 else 0.0
        rows = cols = slice(None)
        if mask.dtype == np.uint8:
            x, y, w, h = cv2.boundingRect(mask)
            if not w:
                return
            reach = int(np.ceil(4 * sigma)) + 2
            rows = slice(max(y - reach, 0), y + h + reach)
            cols = slice(max(x - reach, 0), x + w + reach)
            alpha = mask[rows, cols].astype(np.float32) * float(opacity / 255)
        else:
            alpha = mask.astype(np.float32) * float(opacity)
        if sigma:
            alpha = _blur(alpha, sigma)
        region = self.image[rows, cols]
        change = cv2.subtract((*map(float, rgb), 0.0), region)  # OpenCV scalar: per channel
        cv2.multiply(change, cv2.merge((alpha, alpha, alpha)), dst=change)
        cv2.add(region, change, dst=region)

    def mix(self, alpha: np.ndarray, other: np.ndarray) -> None:
        """Alpha-blend a whole image ``other`` (float ``alpha`` per pixel)."""
        change = cv2.subtract(other, self.image)
        alpha = alpha.astype(np.float32, copy=False)
        cv2.multiply(change, cv2.merge((alpha, alpha, alpha)), dst=change)
        cv2.add(self.image, change, dst=self.image)

    def shade(self, factor: np.ndarray) -> None:
        """Multiply the image by a per-pixel ``factor``."""
        factor = factor.astype(np.float32, copy=False)
        cv2.multiply(self.image, cv2.merge((factor, factor, factor)), dst=self.image)

    def px(self, length_dd) -> float:
        return float(length_dd) * self.dd

    def walk(self, start, heading: float, length_dd: float, wiggle: float,
             step_dd: float = 0.2) -> np.ndarray:
        """A random-walk polyline (points in pixels) whose heading drifts by ``wiggle``."""
        steps = max(2, int(length_dd / step_dd))
        headings = heading + np.cumsum(self.rng.standard_normal(steps) * wiggle)
        step = self.px(step_dd)
        points = np.empty((steps + 1, 2), np.float32)
        points[0] = start
        points[1:, 0] = np.cumsum(np.cos(headings)) * step + start[0]
        points[1:, 1] = np.cumsum(np.sin(headings)) * step + start[1]
        return points

    def inside(self, points: np.ndarray, margin: float = 0.95) -> np.ndarray:
        """Which points lie inside the field of view (shrunk by ``margin``)."""
        return np.hypot(*(points - self.centre).T) < margin * self.radius

    def scatter(self, count: int, centre, spread_dd: float, avoid_disc: bool = True) -> np.ndarray:
        """``count`` points around ``centre`` (Gaussian), inside the view, off the disc."""
        points = centre + self.rng.standard_normal((3 * count + 8, 2)) * self.px(spread_dd)
        keep = self.inside(points, 0.93)
        if avoid_disc:
            keep &= np.hypot(*(points - self.disc).T) > self.px(0.75)
        points = points[keep][:count]
        return points if len(points) or not count else np.asarray(centre, np.float64)[None]

    def posterior_pole(self, count: int) -> np.ndarray:
        """Points spread over the posterior pole (between and around disc and macula)."""
        centre = (self.fovea * 2 + self.disc) / 3
        return self.scatter(count, centre, 1.6)

    # ---------------------------------------------------------------- background
    def background(self) -> None:
        rng, case = self.rng, self.case
        base = np.array([rng.uniform(0.72, 0.86), rng.uniform(0.25, 0.36),
                         rng.uniform(0.07, 0.14)], np.float32)
        squared = np.square(self.dist_fovea)
        macula = np.exp(squared * (-0.5 / 0.8**2))
        fovea = np.exp(squared * (-0.5 / 0.17**2))
        # choroidal mottling (22 blobs across) over slow variations (5 across), one upsampling
        coarse = cv2.resize(self.rng.standard_normal((5, 5)).astype(np.float32), (22, 22),
                            interpolation=cv2.INTER_CUBIC)
        mottle = 0.03 * self.rng.standard_normal((22, 22)).astype(np.float32) + 0.05 * coarse
        texture = cv2.resize(mottle, (self.size, self.size), interpolation=cv2.INTER_CUBIC)
        shade = 1 + texture - 0.27 * macula - 0.18 * fovea
        self.image = cv2.merge([shade.astype(np.float32) * channel for channel in base])
        if 'tessellated_fundus' in case.findings:
            self.tessellation(case.load('tessellated_fundus'))

    def noise(self, cells: int) -> np.ndarray:
        """Smooth zero-mean noise with about ``cells`` blobs across the image."""
        coarse = self.rng.standard_normal((cells, cells)).astype(np.float32)
        return cv2.resize(coarse, (self.size, self.size), interpolation=cv2.INTER_CUBIC)

    def tessellation(self, load: float) -> None:
        """Choroidal vessels (orange bands) seen between dark pigmented spaces."""
        mask = self.canvas()
        origin = (self.fovea + self.disc) / 2
        for thickness_dd in (0.07, 0.1, 0.13):
            starts = self.centre + (self.rng.random((30, 2)) - 0.5) * 2 * self.radius
            lines = []
            for start in starts:
                heading = np.arctan2(*(start - origin)[::-1]) + self.rng.normal(0, 0.5)
                lines.append(_fixed(self.walk(start, heading, self.rng.uniform(1.5, 3.5), 0.22,
                                              step_dd=0.25)))
            cv2.polylines(mask, lines, False, 255, max(1, round(self.px(thickness_dd))),
                          cv2.LINE_AA, _SHIFT)
        bands = cv2.GaussianBlur(mask, (0, 0), max(0.3, self.px(0.04))).astype(np.float32) / 255
        strength = 0.3 + 0.35 * load
        self.shade(1 - strength * 0.7 + (strength * 0.7) * bands)
        self.blend(bands, (0.9, 0.3, 0.1), strength * 0.12)

    def atrophy(self) -> None:
        """A temporal peripapillary crescent and, in pathologic myopia, patchy atrophy."""
        case, rng = self.case, self.rng
        width = self.px(0.1 + 0.4 * case.load('chorioretinal_atrophy'))
        r = self.dd / 2
        crescent = self.canvas()
        centre = self.disc - np.array([self.side * width * 0.5, 0])
        axes = (round((r + width * 0.5) * _SCALE), round(r * 1.05 * _SCALE))
        cv2.ellipse(crescent, _point(centre), axes, 0, 0, 360, 255, -1, cv2.LINE_AA, _SHIFT)
        if case.details.get('myopic_patches'):
            for _ in range(int(rng.integers(1, 4))):
                centre = self.scatter(1, (self.fovea + self.disc) / 2, 1.0)
                for blob in self.scatter(int(rng.integers(3, 7)), centre[0], 0.25, False):
                    cv2.circle(crescent, _point(blob), round(self.px(rng.uniform(0.15, 0.35))
                                                             * _SCALE), 255, -1, cv2.LINE_AA,
                               _SHIFT)
        rim = cv2.dilate(crescent, np.ones((3, 3), np.uint8), iterations=max(1, round(
            self.px(0.05)))) - crescent
        self.blend(rim, PIGMENT_RGB, 0.55, blur_dd=0.02)
        self.blend(crescent, ATROPHY_RGB, 0.85, blur_dd=0.02)

    # ---------------------------------------------------------------- vessels
    def vessel_tree(self) -> List[_Vessel]:
        """Veins and arteries: four arcades each, then two generations of side branches."""
        case, rng = self.case, self.rng
        findings = case.findings
        artery_scale = 0.55 if {'rao', 'hypertensive_retinopathy'} & set(findings) else 1.0
        if 'optic_atrophy' in findings:
            artery_scale = 0.75
        mains = []
        self.arcades = []  # the temporal vein arcades, superior first
        for kind, width_dd in (('vein', 0.115), ('artery', 0.085)):
            kind_scale = artery_scale if kind == 'artery' else 1.0
            for vertical in (-1.0, 1.0):
                region = 'superior' if vertical < 0 else 'inferior'
                scale, wiggle = kind_scale, 0.06 if kind_scale < 1 else 0.13
                if kind == 'vein' and 'rvo' in findings and (
                        case.details.get('rvo_type') == 'central'
                        or case.details.get('rvo_vein') == region):
                    scale, wiggle = 1.35, 0.3  # dilated, tortuous
                width = self.px(width_dd) * scale
                arcade = _Vessel(self.clip(self.arcade(vertical, kind, wiggle)), width, kind,
                                 region, wiggle)
                angle = rng.uniform(0.6, 1.3)
                nasal = self.walk(self.disc, np.arctan2(vertical * np.sin(angle),
                                                        self.side * np.cos(angle)),
                                  rng.uniform(3.0, 4.5), wiggle)
                mains += [arcade, _Vessel(self.clip(nasal), width * 0.8, kind, region, wiggle)]
                if kind == 'vein':
                    self.arcades.append(arcade)
            macular = self.walk(self.disc, np.arctan2(rng.normal(0, 0.3), -self.side), 1.8, 0.12)
            mains.append(_Vessel(self.clip(macular), self.px(width_dd) * 0.45 * kind_scale, kind,
                                 'superior', 0.12))
        children = self.branches(mains, 2, 5, 1.0)
        return mains + children + self.branches(children, 1, 3, 0.75)

    def branches(self, parents: List[_Vessel], low: int, high: int,
                 reach: float) -> List[_Vessel]:
        """Side branches of ``parents`` (``low`` to ``high - 1`` each), all walked at once.

        Each leaves its parent at a random point, turns away by 25-90 degrees, and runs
        ``reach`` x 1-2.5 disc diameters, narrower than its parent.
        """
        rng = self.rng
        parents = [p for p in parents if p.width >= 1.0 and len(p.points) >= 4]
        if not parents:
            return []
        owner = np.repeat(np.arange(len(parents)), rng.integers(low, high, len(parents)))
        lengths = np.array([len(p.points) for p in parents])[owner]
        offsets = np.cumsum([0] + [len(p.points) for p in parents])[owner]
        points = np.concatenate([p.points for p in parents])
        u = rng.random((5, len(owner)))
        index = offsets + np.clip(((0.15 + 0.75 * u[0]) * lengths).astype(int), 1, lengths - 2)
        direction = points[index + 1] - points[index - 1]
        headings = np.arctan2(direction[:, 1], direction[:, 0]) + np.where(
            u[1] < 0.5, -1.0, 1.0) * (0.45 + 0.65 * u[2])
        steps = ((5 + 7.5 * u[3]) * reach).astype(int)  # 0.2 dd per step
        wiggles = np.array([p.wiggle for p in parents])[owner]
        turns = headings[:, None] + np.cumsum(
            rng.standard_normal((len(owner), steps.max())) * wiggles[:, None], 1)
        paths = np.empty((len(owner), steps.max() + 1, 2), np.float32)
        paths[:, 0] = points[index]
        step = self.px(0.2)
        paths[:, 1:, 0] = paths[:, :1, 0] + np.cumsum(np.cos(turns), 1) * step
        paths[:, 1:, 1] = paths[:, :1, 1] + np.cumsum(np.sin(turns), 1) * step
        ends = np.maximum(np.minimum(self.stop_index(paths), steps + 1), 2)
        widths = np.array([p.width for p in parents])[owner] * (0.55 + 0.2 * u[4])
        return [_Vessel(path[:end], float(width), parents[o].kind, parents[o].region,
                        parents[o].wiggle)
                for path, end, width, o in zip(paths, ends, widths, owner)]

    def arcade(self, vertical: float, kind: str, wiggle: float) -> np.ndarray:
        """A temporal arcade: leaves the disc vertically, bends around the macula."""
        rng = self.rng
        span = abs(self.disc[0] - self.fovea[0]) * rng.uniform(0.9, 1.1)
        height = self.px(rng.uniform(1.6, 2.1) + (rng.uniform(0.1, 0.4) if kind == 'vein' else 0))
        end = rng.uniform(0.5, 0.6)
        theta = np.linspace(0.03, end, 16) * np.pi
        points = np.stack([self.disc[0] - self.side * span * (1 - np.cos(theta)),
                           self.disc[1] + vertical * height * np.sin(theta)], 1)
        points += self.rng.standard_normal(points.shape).cumsum(0) * self.px(wiggle * 0.12)
        heading = np.arctan2(vertical * rng.uniform(0.2, 0.5), -self.side)
        tail = self.walk(points[-1], heading, rng.uniform(2.0, 3.0), wiggle)
        return np.vstack([self.disc, points, tail[1:]]).astype(np.float32)

    def clip(self, points: np.ndarray) -> np.ndarray:
        """Cut a polyline where it leaves the view or enters the foveal avascular zone."""
        return points[:max(self.stop_index(points[None])[0], 2)]

    def stop_index(self, paths: np.ndarray) -> np.ndarray:
        """Per path of ``paths`` (K, N, 2): the index of its first point outside the view or
        inside the foveal avascular zone (N when none)."""
        outside = np.hypot(paths[..., 0] - self.centre[0],
                           paths[..., 1] - self.centre[1]) > 1.02 * self.radius
        foveal = np.hypot(paths[..., 0] - self.fovea[0],
                          paths[..., 1] - self.fovea[1]) < self.px(0.45)
        stop = outside | foveal
        stop[:, 0] = False
        return np.where(stop.any(1), stop.argmax(1), paths.shape[1])

    def draw_vessels(self, vessels: List[_Vessel]) -> Tuple[np.ndarray, np.ndarray]:
        """Vein and artery masks (uint8); each vessel narrows along its second half."""
        groups = {}  # (kind, thickness, value) -> polylines, drawn in one call each
        for vessel in vessels:
            points = _fixed(vessel.points)
            middle = len(points) // 2
            for part, width in ((points[:middle + 1], vessel.width),
                                (points[middle:], vessel.width * 0.7)):
                if len(part) < 2:
                    continue
                key = (vessel.kind, max(1, round(width)), 255 if width >= 1 else
                       int(width * 8) * 32)
                groups.setdefault(key, []).append(part)
        masks = {'vein': self.canvas(), 'artery': self.canvas()}
        for (kind, thickness, value), lines in sorted(groups.items(), key=lambda g: g[0][1:]):
            cv2.polylines(masks[kind], lines, False, value, thickness, cv2.LINE_AA, _SHIFT)
        return masks['vein'], masks['artery']

    def composite_vessels(self, vein: np.ndarray, artery: np.ndarray, vessels: List[_Vessel],
                          cup: np.ndarray) -> None:
        findings = self.case.findings
        vein[cup] //= 2  # the cup stays visible behind the central vessels
        artery[cup] //= 2
        if 'papilledema' in findings:  # vessels vanish in the swollen margin
            ring = np.exp(-0.5 * ((self.dist_disc - 0.65) / 0.18) ** 2)
            keep = 1 - 0.75 * ring
            vein = (vein * keep).astype(np.uint8)
            artery = (artery * keep).astype(np.uint8)
        if 'hypertensive_retinopathy' in findings:
            self.av_nicking(vein, vessels)
        self.blend(vein, VEIN_RGB, 0.85, blur_dd=0.012)
        artery_rgb = (0.85, 0.42, 0.28) if 'hypertensive_retinopathy' in findings else ARTERY_RGB
        self.blend(artery, artery_rgb, 0.75, blur_dd=0.012)
        reflex = self.canvas()
        thick = [_fixed(v.points) for v in vessels if v.kind == 'artery' and v.width >= 2.5]
        cv2.polylines(reflex, thick, False, 255, 1, cv2.LINE_AA, _SHIFT)
        self.blend(reflex, (1.0, 0.75, 0.6),
                   0.6 if 'hypertensive_retinopathy' in findings else 0.3)

    def av_nicking(self, vein: np.ndarray, vessels: List[_Vessel]) -> None:
        """Arteriovenous nicking: the vein narrows where an artery crosses it."""
        mains = [v for v in vessels if v.kind == 'vein' and v.width > self.px(0.08)]
        for vessel in mains[:4]:
            index = int(self.rng.integers(3, max(4, len(vessel.points) // 2)))
            index = min(index, len(vessel.points) - 2)
            p = vessel.points[index]
            direction = vessel.points[index + 1] - vessel.points[index - 1]
            normal = np.array([-direction[1], direction[0]]) / (np.hypot(*direction) + 1e-6)
            cv2.circle(vein, _point(p), round(self.px(0.14) * _SCALE), 0, -1, cv2.LINE_AA,
                       _SHIFT)
            crossing = np.stack([p - normal * self.px(0.35), p + normal * self.px(0.35)])
            cv2.polylines(vein, [_fixed(crossing)], False, 150, max(1, round(self.px(0.05))),
                          cv2.LINE_AA, _SHIFT)

    # ---------------------------------------------------------------- optic disc
    def optic_disc(self) -> Tuple[np.ndarray, np.ndarray]:
        case, rng = self.case, self.rng
        swollen = 'papilledema' in case.findings
        rx = self.dd / 2 * rng.uniform(0.92, 1.0) * (1.35 if swollen else 1.0)
        ry = self.dd / 2 * rng.uniform(1.0, 1.1) * (1.35 if swollen else 1.0)
        disc_axes = (round(rx * _SCALE), round(ry * _SCALE))
        disc = self.canvas()
        cv2.ellipse(disc, _point(self.disc), disc_axes, 0, 0, 360, 255, -1, cv2.LINE_AA, _SHIFT)
        if swollen:
            self.papilledema(rx)
            self.blend(disc, (0.97, 0.58, 0.42), 0.9, blur_dd=0.12)
            return disc > 127, np.zeros_like(disc, bool)
        pale = 'optic_atrophy' in case.findings
        self.blend(disc, (0.98, 0.92, 0.84) if pale else (1.0, 0.62, 0.46), 1.0, blur_dd=0.025)
        cup = self.canvas()
        ratio = case.cup_to_disc
        cup_centre = self.disc - np.array([self.side * self.px(0.04) * (1 - ratio), 0])
        cup_axes = (round(rx * ratio * rng.uniform(0.85, 1.0) * _SCALE),
                    round(ry * ratio * _SCALE))
        cv2.ellipse(cup, _point(cup_centre), cup_axes, 0, 0, 360, 255, -1, cv2.LINE_AA, _SHIFT)
        self.blend(cup, (1.0, 0.97, 0.90) if pale else (1.0, 0.93, 0.78), 0.95, blur_dd=0.025)
        return disc > 127, cup > 127

    def papilledema(self, rx: float) -> None:
        """Peripapillary swelling with radial striations around a swollen disc."""
        halo = self.canvas()
        cv2.circle(halo, _point(self.disc), round(rx * 1.6 * _SCALE), 255, -1, cv2.LINE_AA,
                   _SHIFT)
        self.blend(halo, (0.92, 0.70, 0.55), 0.5, blur_dd=0.2)
        angles = np.linspace(0, 2 * np.pi, 28, endpoint=False) + self.rng.uniform(0, 0.2)
        unit = np.stack([np.cos(angles), np.sin(angles)], 1)
        striae = [_fixed(np.stack([self.disc + u * rx * 0.6, self.disc + u * rx * 1.9]))
                  for u in unit]
        lines = self.canvas()
        cv2.polylines(lines, striae, False, 255, 1, cv2.LINE_AA, _SHIFT)
        self.blend(lines, (1.0, 0.85, 0.7), 0.2, blur_dd=0.03)

    # ---------------------------------------------------------------- retina-wide changes
    def nerve_fibre_sheen(self) -> None:
        """The bright nerve fibre layer reflex along the arcades, and a wedge defect in it."""
        sheen = self.canvas()
        arcades = [_fixed(v.points[:len(v.points) * 2 // 3]) for v in self.arcades]
        cv2.polylines(sheen, arcades, False, 255, max(1, round(self.px(0.5))), cv2.LINE_AA,
                      _SHIFT)
        self.blend(sheen, (1.0, 0.85, 0.75), self.rng.uniform(0.08, 0.16), blur_dd=0.25)
        if 'rnfl_defect' in self.case.findings:
            vertical = -1.0 if self.case.details.get('rnfl_side') == 'superior' else 1.0
            base = np.arctan2(vertical * 1.0, -self.side * 0.55)
            wedge = np.array([self.disc + self.px(0.45) * np.array([np.cos(base), np.sin(base)]),
                              self.disc + self.px(3.2) * np.array([np.cos(base - 0.2),
                                                                   np.sin(base - 0.2)]),
                              self.disc + self.px(3.2) * np.array([np.cos(base + 0.2),
                                                                   np.sin(base + 0.2)])])
            mask = self.canvas()
            cv2.fillPoly(mask, [_fixed(wedge)], 255, cv2.LINE_AA, _SHIFT)
            self.blend(mask, (0.30, 0.07, 0.04), 0.45, blur_dd=0.08)

    def rao(self) -> None:
        """Milky retinal whitening of the posterior pole with a cherry-red fovea."""
        pole = np.exp(-0.5 * (self.dist_fovea / 2.0) ** 2)
        spot = np.exp(-0.5 * (self.dist_fovea / 0.22) ** 2)
        self.blend(0.6 * pole * (1 - spot), (0.93, 0.86, 0.80))
        self.blend(0.8 * spot, (0.75, 0.08, 0.06))

    def retinal_detachment(self) -> np.ndarray:
        """A grey, folded, elevated sector; returns its alpha for the later defocus."""
        side = self.case.details.get('rd_side', 'inferior')
        direction = {'superior': (0.0, -1.0), 'inferior': (0.0, 1.0),
                     'temporal': (-self.side, 0.0), 'nasal': (self.side, 0.0)}[side]
        xs, ys = _grid(self.size)
        along = ((xs - self.centre[0]) * direction[0] + (ys - self.centre[1]) * direction[1])
        along = along / self.radius + 0.1 * self.noise(4)
        border = self.rng.uniform(0.0, 0.3)
        alpha = np.clip((along - border) / 0.08, 0, 1)
        self.blend(alpha, (0.80, 0.66, 0.60), 0.7)
        normal = np.array([-direction[1], direction[0]])
        folds_dark, folds_light = self.canvas(), self.canvas()
        for level in np.linspace(border + 0.12, 0.9, 5):
            start = self.centre + np.array(direction) * level * self.radius - normal * self.radius
            line = self.walk(start, np.arctan2(normal[1], normal[0]), 2 * self.radius / self.dd,
                             0.12, step_dd=0.3)
            cv2.polylines(folds_dark, [_fixed(line)], False, 255, max(1, round(self.px(0.06))),
                          cv2.LINE_AA, _SHIFT)
            shifted = line + np.array(direction) * self.px(0.08)
            cv2.polylines(folds_light, [_fixed(shifted)], False, 255,
                          max(1, round(self.px(0.05))), cv2.LINE_AA, _SHIFT)
        self.blend(folds_dark * alpha / 255, (0.45, 0.30, 0.28), 0.55, blur_dd=0.03)
        self.blend(folds_light * alpha / 255, (0.97, 0.90, 0.86), 0.45, blur_dd=0.03)
        return alpha

    # ---------------------------------------------------------------- lesions
    def spots(self, points: np.ndarray, radii_dd: np.ndarray, rgb, opacity: float,
              blur_dd: float, values: np.ndarray = None) -> None:
        mask = self.canvas()
        values = np.full(len(points), 255) if values is None else values
        for p, r, v in zip(points, radii_dd, values):
            cv2.circle(mask, _point(p), max(1, round(self.px(r) * _SCALE)), int(v), -1,
                       cv2.LINE_AA, _SHIFT)
        self.blend(mask, rgb, opacity, blur_dd)

    def microaneurysms(self) -> None:
        count = int(12 + 30 * self.case.load('microaneurysm'))
        points = self.posterior_pole(count)
        self.spots(points, self.rng.uniform(0.045, 0.07, len(points)), MICROANEURYSM_RGB, 0.95,
                   0.03)

    def hemorrhages(self, vessels: List[_Vessel]) -> None:
        case, rng = self.case, self.rng
        load = case.load('hemorrhage')
        mask = self.canvas()
        flames = []  # (centre, direction angle)
        if 'rvo' in case.findings:
            central = case.details.get('rvo_type') == 'central'
            region = case.details.get('rvo_vein')
            veins = [v for v in vessels if v.kind == 'vein' and (central or v.region == region)]
            points = np.vstack([v.points for v in veins])
            chosen = points[rng.integers(0, len(points), int(25 + 45 * load))]
            chosen = chosen + rng.normal(0, self.px(0.35), chosen.shape)
            for p in chosen[self.inside(chosen, 0.93)]:
                flames.append((p, np.arctan2(*(p - self.disc)[::-1])))
        elif 'amd' in case.findings:
            centre = self.scatter(1, self.fovea, 0.25, False)[0]
            for p in self.scatter(int(rng.integers(2, 5)), centre, 0.25, False):
                cv2.circle(mask, _point(p), round(self.px(rng.uniform(0.2, 0.4)) * _SCALE),
                           255, -1, cv2.LINE_AA, _SHIFT)
        elif 'papilledema' in case.findings:
            for angle in rng.uniform(0, 2 * np.pi, int(3 + 6 * load)):
                u = np.array([np.cos(angle), np.sin(angle)])
                flames.append((self.disc + u * self.px(rng.uniform(0.8, 1.1)), angle))
        else:
            count = int(4 + 20 * load)
            points = self.posterior_pole(count)
            flame_share = 1.0 if case.details.get('flame_only') else 0.3
            for p in points:
                if rng.random() < flame_share:
                    flames.append((p, np.arctan2(*(p - self.disc)[::-1])))
                else:
                    r = self.px(rng.uniform(0.08, 0.2))
                    cv2.circle(mask, _point(p), round(r * _SCALE), 255, -1, cv2.LINE_AA, _SHIFT)
                    offset = rng.normal(0, r * 0.6, 2)
                    cv2.circle(mask, _point(p + offset), round(r * 0.7 * _SCALE), 255, -1,
                               cv2.LINE_AA, _SHIFT)
        for p, angle in flames:
            axes = (round(self.px(rng.uniform(0.15, 0.3)) * _SCALE),
                    round(self.px(rng.uniform(0.05, 0.09)) * _SCALE))
            cv2.ellipse(mask, _point(p), axes, float(np.degrees(angle)), 0, 360, 255, -1,
                        cv2.LINE_AA, _SHIFT)
        self.blend(mask, HEMORRHAGE_RGB, 0.85, blur_dd=0.025)

    def hard_exudates(self) -> None:
        case, rng = self.case, self.rng
        pattern = case.details.get('exudate_pattern', 'scattered')
        load = case.load('hard_exudate')
        if pattern == 'macular':
            angles = rng.uniform(0, 2 * np.pi, int(20 + 30 * load))
            radii = rng.uniform(0.35, 1.0, len(angles))
            points = self.fovea + self.px(1) * np.stack([np.cos(angles), np.sin(angles)], 1) \
                * radii[:, None]
        elif pattern == 'circinate':
            centre = self.posterior_pole(1)[0]
            angles = rng.uniform(0, 2 * np.pi, int(18 + 20 * load))
            ring = self.px(rng.uniform(0.4, 0.7)) * rng.uniform(0.85, 1.15, len(angles))
            points = centre + ring[:, None] * np.stack([np.cos(angles), np.sin(angles)], 1)
        else:
            clusters = self.posterior_pole(int(rng.integers(2, 5)))
            points = np.vstack([self.scatter(int(6 + 12 * load), c, 0.3) for c in clusters])
        points = points[self.inside(points, 0.93)]
        self.spots(points, rng.uniform(0.035, 0.08, len(points)), EXUDATE_RGB, 0.95, 0.01)

    def cotton_wool_spots(self) -> None:
        rng = self.rng
        count = int(rng.integers(2, 4) + 4 * self.case.load('cotton_wool_spot'))
        arcade_points = np.vstack([v.points[: len(v.points) // 2] for v in self.arcades])
        centres = arcade_points[rng.integers(0, len(arcade_points), count)]
        centres = centres + rng.normal(0, self.px(0.3), centres.shape)
        mask = self.canvas()
        for p in centres:
            angle = float(np.degrees(np.arctan2(*(p - self.disc)[::-1])))
            for _ in range(2):
                q = p + rng.normal(0, self.px(0.08), 2)
                axes = (round(self.px(rng.uniform(0.18, 0.3)) * _SCALE),
                        round(self.px(rng.uniform(0.1, 0.17)) * _SCALE))
                cv2.ellipse(mask, _point(q), axes, angle + rng.normal(0, 20), 0, 360, 255, -1,
                            cv2.LINE_AA, _SHIFT)
        self.blend(mask, COTTON_WOOL_RGB, 0.85, blur_dd=0.06)

    def drusen(self) -> None:
        rng, case = self.rng, self.case
        load = case.load('drusen')
        points = self.scatter(int(12 + 55 * load), self.fovea, 0.55 + 0.3 * load, False)
        radii = rng.uniform(0.05, 0.1 + 0.06 * load, len(points))
        self.spots(points, radii, DRUSEN_RGB, 0.8, 0.05, rng.integers(150, 256, len(points)))
        if 'amd' in case.findings:
            clumps = self.scatter(int(rng.integers(3, 9)), self.fovea, 0.5, False)
            self.spots(clumps, rng.uniform(0.03, 0.06, len(clumps)), PIGMENT_RGB, 0.7, 0.01)
            if case.details.get('amd_type') == 'wet':
                membrane = self.canvas()
                cv2.circle(membrane, _point(self.fovea), round(self.px(0.45) * _SCALE), 255, -1,
                           cv2.LINE_AA, _SHIFT)
                self.blend(membrane, (0.45, 0.42, 0.28), 0.55, blur_dd=0.12)

    def laser_scars(self) -> None:
        rng, case = self.rng, self.case
        spacing = self.px(0.38)
        offsets = np.arange(-self.radius, self.radius, spacing)
        grid = np.stack(np.meshgrid(offsets, offsets), -1).reshape(-1, 2) + self.centre
        grid = grid + rng.normal(0, spacing * 0.12, grid.shape)
        keep = self.inside(grid, 0.94) & (np.hypot(*(grid - self.fovea).T) > self.px(1.9))
        keep &= np.hypot(*(grid - self.disc).T) > self.px(1.0)
        keep &= rng.random(len(grid)) > 0.25
        if case.details.get('laser_pattern') == 'sectoral':
            vertical = -1.0 if case.details.get('rvo_vein') == 'superior' else 1.0
            keep &= (grid[:, 1] - self.disc[1]) * vertical > 0
        points = grid[keep]
        radii = rng.uniform(0.1, 0.14, len(points))
        self.spots(points, radii, PIGMENT_RGB, 0.85, 0.015)
        self.spots(points, radii * 0.55, (0.93, 0.84, 0.62), 0.85, 0.015)

    def macular_edema(self) -> None:
        """Yellow-grey thickening of the macula with a petaloid cystoid pattern."""
        thickening = np.exp(-0.5 * (self.dist_fovea / 0.7) ** 2)
        self.blend(0.45 * thickening, (0.86, 0.72, 0.52))
        angles = np.linspace(0, 2 * np.pi, 8, endpoint=False) + self.rng.uniform(0, 0.8)
        petals = self.fovea + self.px(0.28) * np.stack([np.cos(angles), np.sin(angles)], 1)
        self.spots(petals, np.full(len(petals), 0.1), (0.98, 0.88, 0.7), 0.35, 0.05)

    def macular_hole(self) -> None:
        rng = self.rng
        radius = rng.uniform(0.18, 0.28)
        cuff = self.canvas()
        cv2.circle(cuff, _point(self.fovea), round(self.px(radius * 1.7) * _SCALE), 255, -1,
                   cv2.LINE_AA, _SHIFT)
        self.blend(cuff, (0.82, 0.66, 0.56), 0.55, blur_dd=0.08)
        self.spots(self.fovea[None], np.array([radius]), (0.62, 0.08, 0.05), 0.95, 0.02)
        dots = self.scatter(int(rng.integers(3, 7)), self.fovea, radius * 0.4, False)
        self.spots(dots, np.full(len(dots), 0.03), (0.95, 0.82, 0.45), 0.9, 0.005)

    def epiretinal_membrane(self) -> None:
        """A glistening cellophane sheen over the macula with radiating wrinkles."""
        rng = self.rng
        centre = self.fovea + rng.normal(0, self.px(0.2), 2)
        xs, ys = _grid(self.size)
        falloff = np.exp(-0.5 * (np.hypot(xs - centre[0], ys - centre[1]) / self.px(0.9)) ** 2)
        sheen = np.clip(0.5 + 0.8 * self.noise(14), 0, 1) * falloff
        self.blend(0.45 * sheen, (1.0, 0.97, 0.93))
        wrinkles = []
        for angle in rng.uniform(0, 2 * np.pi, int(rng.integers(9, 15))):
            start = centre + self.px(0.15) * np.array([np.cos(angle), np.sin(angle)])
            wrinkles.append(_fixed(self.walk(start, angle, rng.uniform(0.5, 1.2), 0.15,
                                             step_dd=0.1)))
        mask = self.canvas()
        cv2.polylines(mask, wrinkles, False, 255, 1, cv2.LINE_AA, _SHIFT)
        self.blend(mask, (1.0, 0.98, 0.95), 0.4, blur_dd=0.015)

    def foveal_reflex(self) -> None:
        self.spots(self.fovea[None], np.array([0.045]), (1.0, 0.92, 0.85), 0.7, 0.02)

    def vitreous(self) -> None:
        """Haze, defocus and floaters (or haemorrhage clouds) in front of the retina."""
        rng, case = self.rng, self.case
        load = case.load('vitreous_opacity')
        hemorrhage = case.details.get('vitreous_type') == 'hemorrhage'
        clouds = self.canvas()
        for _ in range(int(rng.integers(3, 8))):
            start = self.centre + rng.uniform(-0.6, 0.6, 2) * self.radius
            if hemorrhage:
                start[1] = self.centre[1] + abs(start[1] - self.centre[1])  # settles inferiorly
            strand = self.walk(start, rng.uniform(0, 2 * np.pi), rng.uniform(0.6, 2.0), 0.5,
                               step_dd=0.15)
            cv2.polylines(clouds, [_fixed(strand)], False, 255,
                          max(1, round(self.px(rng.uniform(0.08, 0.3)))), cv2.LINE_AA, _SHIFT)
        sigma = self.size * (0.012 + 0.02 * load)
        blurred = cv2.GaussianBlur(self.image, (0, 0), sigma)
        haze = 0.25 + 0.2 * load
        veil = haze * self.image.reshape(-1, 3).mean(0)
        self.image = cv2.add(blurred * (1 - haze), (*map(float, veil), 0.0))
        rgb = (0.35, 0.03, 0.02) if hemorrhage else (0.12, 0.08, 0.06)
        self.blend(clouds, rgb, 0.75 if hemorrhage else 0.55, blur_dd=0.18)

    # ---------------------------------------------------------------- the whole image
    def draw(self) -> FundusImage:
        case = self.case
        findings = case.findings
        self.background()
        if 'chorioretinal_atrophy' in findings:
            self.atrophy()
        vessels = self.vessel_tree()
        self.nerve_fibre_sheen()
        if 'rao' in findings:
            self.rao()
        detachment = self.retinal_detachment() if 'retinal_detachment' in findings else None
        disc, cup = self.optic_disc()
        vein, artery = self.draw_vessels(vessels)
        self.composite_vessels(vein.copy(), artery.copy(), vessels, cup)
        if 'drusen' in findings:
            self.drusen()
        if 'macular_edema' in findings:
            self.macular_edema()
        if 'microaneurysm' in findings:
            self.microaneurysms()
        if 'hemorrhage' in findings:
            self.hemorrhages(vessels)
        if 'hard_exudate' in findings:
            self.hard_exudates()
        if 'cotton_wool_spot' in findings:
            self.cotton_wool_spots()
        if 'laser_scar' in findings:
            self.laser_scars()
        if 'macular_hole' in findings:
            self.macular_hole()
        if 'epiretinal_membrane' in findings:
            self.epiretinal_membrane()
        if case.details.get('foveal_reflex'):
            self.foveal_reflex()
        if detachment is not None:
            defocused = cv2.GaussianBlur(self.image, (0, 0), self.px(0.06))
            self.mix(0.8 * detachment, defocused)
        if 'vitreous_opacity' in findings:
            self.vitreous()
        return self.finish(vein, artery, disc, cup)

    def finish(self, vein, artery, disc, cup) -> FundusImage:
        """Illumination fall-off, the circular field of view, sensor noise, 8-bit BGR."""
        rng = self.rng
        r = self.dist_centre
        squared = np.square(r)
        steep = rng.uniform(0.2, 0.8)
        falloff = 1 - rng.uniform(0.35, 0.55) * squared * (1 - steep + steep * squared)
        xs, ys = _grid(self.size)
        tilt = rng.normal(0, 0.08, 2) / self.size
        falloff += (xs - self.centre[0]) * tilt[0] + (ys - self.centre[1]) * tilt[1]
        edge = np.clip((1 - r) * self.radius + 0.5, 0, 1)  # anti-aliased border
        grain = np.frombuffer(rng.bytes(self.size**2), np.uint8).reshape(self.size, self.size)
        grain = grain.astype(np.float32) * np.float32(0.03 / 255) + np.float32(0.985)  # sensor
        self.shade(falloff * edge * grain * (rng.uniform(0.9, 1.1) * 255))
        # every value is >= 0, so convertScaleAbs just rounds and saturates to uint8
        image = cv2.cvtColor(cv2.convertScaleAbs(self.image), cv2.COLOR_RGB2BGR)
        fov = r < 1
        vessels = (((vein > 127) | (artery > 127)) & fov).astype(np.uint8)
        return FundusImage(image, vessels, disc & fov, cup & fov)


def draw_fundus(case: FundusCase, size: int, rng: np.random.Generator) -> FundusImage:
    """Draw the image of ``case``.

    Args:
        case: What the image shows.
        size: Side of the square image in pixels (>= 32).
        rng: Random stream used for nothing else (layout, lesion positions, noise).

    Returns:
        The BGR image with its vessel, disc and cup masks.
    """
    if size < 32:
        raise ValueError(f'size must be at least 32 px, got {size}')
    return _Painter(case, size, rng).draw()
