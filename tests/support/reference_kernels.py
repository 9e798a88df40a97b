"""Plain numpy mirrors of the native packings and arithmetic: the tests' independent reference.

Written from the format descriptions (ggml's and bitnet.cpp's block layouts), not from the C++ code.
"""

from __future__ import annotations

import numpy as np

BLOCK = 256
I2_GROUP = 128
POW3 = np.array([1, 3, 9, 27, 81], dtype=np.uint8)


def _codes(w: np.ndarray) -> np.ndarray:
    return (w.astype(np.int16) + 1).astype(np.uint8)


def pack_tq2_0(w: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """w int8 [rows, cols] in {-1,0,1}; scales float [rows, cols/256] -> bytes."""
    rows, cols = w.shape
    c = _codes(w).reshape(rows, cols // BLOCK, 2, 4, 32)  # [.., half, n, m]: element 128h + 32n + m
    qs = np.zeros((rows, cols // BLOCK, 2, 32), dtype=np.uint8)
    for n in range(4):
        qs |= c[:, :, :, n, :] << (2 * n)
    d = scales.astype(np.float16).reshape(rows, cols // BLOCK, 1).view(np.uint8)
    return np.concatenate([qs.reshape(rows, cols // BLOCK, 64), d], axis=2).reshape(-1)


def _base3_byte(digits: np.ndarray) -> np.ndarray:
    """digits [..., 5] most significant first -> stored byte ceil(v * 256 / 243)."""
    v = np.zeros(digits.shape[:-1], dtype=np.int32)
    for i in range(5):
        v = v * 3 + digits[..., i]
    return ((v * 256 + 242) // 243).astype(np.uint8)


def pack_tq1_0(w: np.ndarray, scales: np.ndarray) -> np.ndarray:
    rows, cols = w.shape
    c = _codes(w).reshape(rows, cols // BLOCK, BLOCK).astype(np.int32)
    a = c[:, :, :160].reshape(rows, -1, 5, 32).transpose(0, 1, 3, 2)  # [.., m, n]
    b = c[:, :, 160:240].reshape(rows, -1, 5, 16).transpose(0, 1, 3, 2)
    h = c[:, :, 240:].reshape(rows, -1, 4, 4).transpose(0, 1, 3, 2)
    h = np.concatenate([h, np.zeros(h.shape[:-1] + (1,), np.int32)], axis=-1)
    d = scales.astype(np.float16).reshape(rows, cols // BLOCK, 1).view(np.uint8)
    return np.concatenate([_base3_byte(a), _base3_byte(b), _base3_byte(h), d], axis=2).reshape(-1)


def pack_i2_s(w: np.ndarray, scale: float) -> np.ndarray:
    rows, cols = w.shape
    c = _codes(w).reshape(-1, 4, 32)  # groups of 128: element 32n + m
    q = np.zeros((c.shape[0], 32), dtype=np.uint8)
    for n in range(4):
        q |= c[:, n, :] << (6 - 2 * n)
    tail = np.zeros(32, dtype=np.uint8)
    tail[:4] = np.array([scale], dtype=np.float32).view(np.uint8)
    return np.concatenate([q.reshape(-1), tail])


def unpack_tq2_0(data: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    blocks = data.reshape(rows, cols // BLOCK, 66)
    qs = blocks[:, :, :64].reshape(rows, -1, 2, 1, 32)
    shifts = (2 * np.arange(4, dtype=np.uint8)).reshape(1, 1, 1, 4, 1)
    c = (qs >> shifts) & 3
    w = c.reshape(rows, cols).astype(np.int8) - 1
    return w, blocks[:, :, 64:].copy().view(np.float16).reshape(rows, -1).astype(np.float32)


def _base3_digits(b: np.ndarray, n_digits: int) -> np.ndarray:
    out = [(((b * POW3[n]).astype(np.uint16) * 3) >> 8).astype(np.uint8) for n in range(n_digits)]
    return np.stack(out, axis=-2)  # [..., n, m]


def unpack_tq1_0(data: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    blocks = data.reshape(rows, cols // BLOCK, 54)
    a = _base3_digits(blocks[:, :, :32], 5).reshape(rows, -1, 160)
    b = _base3_digits(blocks[:, :, 32:48], 5).reshape(rows, -1, 80)
    h = _base3_digits(blocks[:, :, 48:52], 4).reshape(rows, -1, 16)
    w = np.concatenate([a, b, h], axis=2).reshape(rows, cols).astype(np.int8) - 1
    return w, blocks[:, :, 52:].copy().view(np.float16).reshape(rows, -1).astype(np.float32)


def unpack_i2_s(data: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    n = rows * cols
    q = data[: n // 4].reshape(-1, 1, 32)
    shifts = (6 - 2 * np.arange(4, dtype=np.uint8)).reshape(1, 4, 1)
    w = ((q >> shifts) & 3).reshape(rows, cols).astype(np.int8) - 1
    return w, data[n // 4 : n // 4 + 4].copy().view(np.float32)


def pack_i2_s4(w: np.ndarray, scale: float) -> np.ndarray:
    """I2_S units with rows interleaved in fours: group g, unit u, row i of the group at ((g * units + u) * 4 + i)
    * 32; rows padded to a multiple of four with zero weights."""
    rows, cols = w.shape
    padded = np.zeros((-(-rows // 4) * 4, cols), np.int8)
    padded[:rows] = w
    i2 = pack_i2_s(padded, scale)
    units = i2[:-32].reshape(-1, 4, cols // 128, 32)  # [group, row in group, unit, byte]
    return np.concatenate([units.transpose(0, 2, 1, 3).reshape(-1), i2[-32:]])


def unpack_i2_s4(data: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    groups = -(-rows // 4)
    units = data[:-32].reshape(groups, cols // 128, 4, 32).transpose(0, 2, 1, 3).reshape(-1)
    w, scale = unpack_i2_s(np.concatenate([units, data[-32:]]), groups * 4, cols)
    return w[:rows], scale


PACK = {"TQ2_0": pack_tq2_0, "TQ1_0": pack_tq1_0, "I2_S": pack_i2_s, "I2_S4": pack_i2_s4}
UNPACK = {"TQ2_0": unpack_tq2_0, "TQ1_0": unpack_tq1_0, "I2_S": unpack_i2_s, "I2_S4": unpack_i2_s4}
ONE_SCALE = ("I2_S", "I2_S4")  # one tensor scale; the TQ packings have one per 256-block


def pack(fmt: str, w: np.ndarray, scales: np.ndarray) -> np.ndarray:
    if fmt in ONE_SCALE:
        return PACK[fmt](w, float(scales.reshape(-1)[0]))
    return PACK[fmt](w, scales.reshape(w.shape[0], -1))


def matmul(fmt: str, w: np.ndarray, scales: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Y[t, r] = sum over blocks of scale * integer dot, in float64. x: int8 [n, cols]."""
    xi = x.astype(np.int64)
    if fmt in ONE_SCALE:
        return (xi @ w.T.astype(np.int64)).astype(np.float64) * float(scales.reshape(-1)[0])
    rows, cols = w.shape
    nb = cols // BLOCK
    wb = w.reshape(rows, nb, BLOCK).astype(np.int64)
    xb = xi.reshape(x.shape[0], nb, BLOCK)
    per_block = np.einsum("rbk,tbk->trb", wb, xb).astype(np.float64)
    d = scales.reshape(rows, nb).astype(np.float16).astype(np.float64)
    return (per_block * d[None, :, :]).sum(axis=2)


def quantize_activations(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BitNet per-token absmax: scale = 127 / max|x| (clamped to 1e-5), q = clip(round_half_even(x * scale))."""
    x = np.atleast_2d(x).astype(np.float32)
    amax = np.maximum(np.abs(x).max(axis=1), np.float32(1e-5))
    scale = (np.float32(127.0) / amax).astype(np.float32)
    q = np.clip(np.round(x * scale[:, None]), -128, 127).astype(np.int8)
    return q, scale
