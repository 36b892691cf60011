"""A simulated DVS camera under saccades: static grey-level images -> ON/OFF event streams
(the data of the built-in `digits-dvs` dataset; needs `nirbridge[data]`).

N-MNIST was recorded by moving an event camera in three saccades in front of MNIST digits shown
on a monitor (Orchard et al., 2015). This module simulates that recording.

Scene. The image g (values in [0, 1]) is upsampled by ``upsample`` (bilinear) to h x w and moves
over a sensor of (w + A) x (h + A) pixels, A = ``amplitude``, along three straight saccades of
``saccade_us`` each, through the corners of N-MNIST's triangle:
(dx, dy) = (0, 0) -> (A/2, A) -> (A, 0) -> (0, 0). The irradiance of pixel (x, y) is the
bilinear interpolation E(x, y, t) = g(x - dx(t), y - dy(t)), and 0 outside the image.

Pixel. Each pixel compares its log intensity L = ln(E + eps) with a reference R, the value of L
at its last signal event. In steps t_k = k dt, k = 1 .. K-1, K = 3 saccade_us / dt:

    d_k     = L(t_k) - R
    ready_k = t_k - t_last >= t_ref                           (refractory period)
    signal:   ready_k and |d_k| >= C        ->  p = [d_k > 0] (1 = ON, 0 = OFF),  R <- L(t_k)
    noise:    ready_k, no signal, u_k < r dt ->  p = [u_k < r dt / 2],           R unchanged
    any event: t_last <- t_k

with R = L(0) and t_last = -inf at the start, C the contrast threshold, r the noise rate and
u_k ~ U(0, 1) independent per pixel and step. The u_k of image i come from
``numpy.random.default_rng((seed, ids[i]))``, so an image's events depend only on the image, the
parameters, ``seed`` and its id. A pixel emits at most one event per step; an event's timestamp
is t_k in microseconds. Events are tonic structured arrays (x, y, t, p), sorted by t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EVENT_DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])  # as tonic's NMNIST


@dataclass(frozen=True)
class DVSParams:
    """Parameters of the simulated sensor and its motion (times in microseconds)."""

    upsample: int = 2  # image scale factor before motion (8x8 digits -> 16x16)
    amplitude: int = 4  # saccade amplitude A in pixels; the sensor is (w + A) x (h + A)
    saccade_us: int = 100_000  # duration of each of the three saccades
    dt_us: int = 1_000  # simulation step dt
    threshold: float = 0.2  # contrast threshold C on ln intensity
    refractory_us: int = 2_000  # refractory period t_ref
    noise_hz: float = 2.0  # noise rate r per pixel
    eps: float = 0.1  # ln(E + eps): dark level

    @property
    def duration_us(self) -> int:
        return 3 * self.saccade_us

    def sensor_size(self, image_shape: tuple[int, int]) -> tuple[int, int, int]:
        """tonic's (x, y, p) sensor size for images of shape (rows, cols)."""
        h, w = (s * self.upsample for s in image_shape)
        return (w + self.amplitude, h + self.amplitude, 2)


def saccade_offsets(params: DVSParams) -> np.ndarray:
    """(K, 2) offsets (dx, dy) in pixels at t_k = k dt: the triangle of N-MNIST's saccades."""
    a = float(params.amplitude)
    corners = np.array([[0, 0], [a / 2, a], [a, 0], [0, 0]])
    t = np.arange(0, params.duration_us, params.dt_us)
    knots = np.arange(4) * params.saccade_us
    return np.stack([np.interp(t, knots, corners[:, i]) for i in range(2)], axis=1)


def _upsample(images: np.ndarray, factor: int) -> np.ndarray:
    from scipy.ndimage import zoom  # nirbridge[data]

    if factor == 1:
        return images.astype(np.float64)
    return np.clip(zoom(images.astype(np.float64), (1, factor, factor), order=1), 0.0, 1.0)


def _place(images: np.ndarray, dx: float, dy: float, size: tuple[int, int]) -> np.ndarray:
    """E[n, y, x] = images[n, y - dy, x - dx] by bilinear interpolation on a (rows, cols) canvas."""
    n, h, w = images.shape
    ix, iy = int(np.floor(dx)), int(np.floor(dy))
    fx, fy = dx - ix, dy - iy
    q = np.zeros((n, size[0] + 1, size[1] + 1))
    q[:, 1 + iy : 1 + iy + h, 1 + ix : 1 + ix + w] = images
    q = (1 - fy) * q[:, 1:, :] + fy * q[:, :-1, :]
    return (1 - fx) * q[:, :, 1:] + fx * q[:, :, :-1]


def simulate_dvs(
    images: np.ndarray,
    params: DVSParams = DVSParams(),
    *,
    seed: int = 0,
    ids: np.ndarray | None = None,
    chunk: int = 64,
) -> list[np.ndarray]:
    """Events of a DVS watching each image (n, rows, cols), values in [0, 1], under three saccades.

    Returns one structured array (x, y, t, p) per image; see the module docstring for the model.
    ``ids`` (default 0..n-1) with ``seed`` select each image's noise stream.
    """
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must have shape (n, rows, cols), got {images.shape}")
    ids = np.arange(len(images)) if ids is None else np.asarray(ids)
    if len(ids) != len(images):
        raise ValueError(f"{len(ids)} ids for {len(images)} images")
    out: list[np.ndarray] = []
    for start in range(0, len(images), chunk):
        sl = slice(start, start + chunk)
        out.extend(_simulate_chunk(images[sl], ids[sl], params, seed))
    return out


def _simulate_chunk(images, ids, params: DVSParams, seed: int) -> list[np.ndarray]:
    up = _upsample(images, params.upsample)
    cols, rows, _ = params.sensor_size(images.shape[1:])
    offsets = saccade_offsets(params)
    n, steps = len(images), len(offsets)
    p_noise = params.noise_hz * params.dt_us * 1e-6
    noise_u = np.stack(
        [np.random.default_rng((seed, int(i))).random((steps, rows, cols), dtype=np.float32) for i in ids]
    )

    def log_e(dx, dy):
        return np.log(_place(up, dx, dy, (rows, cols)) + params.eps)

    ref = log_e(*offsets[0])
    t_last = np.full((n, rows, cols), -np.inf)
    found = [(np.zeros(0, int),) * 5]  # per step: (image, y, x, t, p)
    for k in range(1, steps):
        t = k * params.dt_us
        level = log_e(*offsets[k])
        d = level - ref
        ready = t - t_last >= params.refractory_us
        signal = ready & (np.abs(d) >= params.threshold)
        u = noise_u[:, k]
        noise = ready & ~signal & (u < p_noise)
        fired = signal | noise
        ref = np.where(signal, level, ref)
        t_last = np.where(fired, t, t_last)
        idx = np.nonzero(fired)
        pol = np.where(signal[idx], d[idx] > 0, u[idx] < p_noise / 2)
        found.append((*idx, np.full(len(idx[0]), t), pol.astype(int)))

    img, y, x, t, p = (np.concatenate(c) for c in zip(*found))
    order = np.argsort(img, kind="stable")  # stable: time order kept within each image
    bounds = np.cumsum(np.bincount(img, minlength=n))[:-1]
    events = np.empty(len(order), EVENT_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = x[order], y[order], t[order], p[order]
    return np.split(events, bounds)


def to_frames(events: np.ndarray, sensor_size: tuple[int, int, int], T: int, duration_us: int) -> np.ndarray:
    """Bin events into T frames of (ON/OFF) counts with tonic's ToFrame: (T, 2, rows, cols) int16.

    Frame k counts the events with k w <= t < (k + 1) w, w = duration_us // T.
    """
    from tonic.transforms import ToFrame  # nirbridge[data]

    w = duration_us // T
    if len(events) == 0:  # tonic returns a single frame for no events
        return np.zeros((T, *sensor_size[::-1]), np.int16)
    frames = ToFrame(sensor_size=sensor_size, time_window=w, start_time=0, end_time=T * w)(events)
    assert frames.shape[0] == T, frames.shape
    return frames
