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


def pack_q2(w: np.ndarray, scales: np.ndarray, block: int) -> np.ndarray:
    """ggml's block_q2_0 (block 64) and PrismML's (block 128): f16 d, then weight j of the block in byte j // 4 at
    bits 2 * (j % 4), code q meaning (q - 1) * d."""
    rows, cols = w.shape
    c = _codes(w).reshape(rows, cols // block, block // 4, 4)
    qs = np.zeros((rows, cols // block, block // 4), np.uint8)
    for j in range(4):
        qs |= c[..., j] << (2 * j)
    d = scales.astype(np.float16).reshape(rows, cols // block, 1).view(np.uint8)
    return np.concatenate([d, qs], axis=2).reshape(-1)


def unpack_q2(data: np.ndarray, rows: int, cols: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    blocks = data.reshape(rows, cols // block, 2 + block // 4)
    qs = blocks[:, :, 2:, None]
    c = (qs >> (2 * np.arange(4, dtype=np.uint8))) & 3
    w = c.reshape(rows, cols).astype(np.int8) - 1
    return w, blocks[:, :, :2].copy().view(np.float16).reshape(rows, -1).astype(np.float32)


def _r16_codes(w: np.ndarray) -> np.ndarray:
    """I2_R16's code bytes: rows padded to 16 (zero weights); row group g, chunk c of 16 columns, 64 bytes where byte
    32h + 4(r % 8) + k % 4 (h = (r % 16) // 8) holds column k at bits 2 * ((k % 16) // 4)."""
    rows, cols = w.shape
    padded = np.zeros((-(-rows // 16) * 16, cols), np.int8)
    padded[:rows] = w
    c = _codes(padded).reshape(-1, 2, 8, cols // 16, 4, 4)  # [group, h, r%8, chunk, plane p, k%4]
    out = np.zeros((c.shape[0], cols // 16, 2, 8, 4), np.uint8)
    for p in range(4):
        out |= c[:, :, :, :, p, :].transpose(0, 3, 1, 2, 4) << (2 * p)
    return out.reshape(-1)


def pack_i2_r16(w: np.ndarray, scale: float) -> np.ndarray:
    tail = np.zeros(32, dtype=np.uint8)
    tail[:4] = np.array([scale], dtype=np.float32).view(np.uint8)
    return np.concatenate([_r16_codes(w), tail])


def pack_i2_r16_groups(w: np.ndarray, scales: np.ndarray, group: int) -> np.ndarray:
    """I2_R16's codes, then one f16 per row and group, [row group][group][16 rows] (padding rows: 0)."""
    rows, cols = w.shape
    padded = np.zeros((-(-rows // 16) * 16, cols // group), np.float16)
    padded[:rows] = scales.reshape(rows, -1)
    s = padded.reshape(-1, 16, cols // group).transpose(0, 2, 1)
    return np.concatenate([_r16_codes(w), s.reshape(-1).view(np.uint8)])


def unpack_i2_r16_codes(data: np.ndarray, rows: int, cols: int) -> np.ndarray:
    groups = -(-rows // 16)
    b = data[: groups * 16 * cols // 4].reshape(groups, cols // 16, 2, 8, 4)  # [group, chunk, h, r%8, k%4]
    planes = np.stack([(b >> (2 * p)) & 3 for p in range(4)], axis=4)  # [group, chunk, h, r%8, p, k%4]
    c = planes.transpose(0, 2, 3, 1, 4, 5).reshape(groups * 16, cols)
    return (c.astype(np.int8) - 1)[:rows]


def unpack_i2_r16(data: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    return unpack_i2_r16_codes(data, rows, cols), data[-32:-28].copy().view(np.float32)


def unpack_i2_r16_groups(data: np.ndarray, rows: int, cols: int, group: int) -> tuple[np.ndarray, np.ndarray]:
    groups = -(-rows // 16)
    s = data[groups * 16 * cols // 4 :].copy().view(np.float16).reshape(groups, cols // group, 16)
    return unpack_i2_r16_codes(data, rows, cols), s.transpose(0, 2, 1).reshape(-1, cols // group)[:rows].astype(
        np.float32
    )


PACK = {
    "TQ2_0": pack_tq2_0,
    "TQ1_0": pack_tq1_0,
    "I2_S": pack_i2_s,
    "I2_S4": pack_i2_s4,
    "Q2_0": lambda w, s: pack_q2(w, s, 64),
    "Q2_0_128": lambda w, s: pack_q2(w, s, 128),
    "I2_R16": pack_i2_r16,
    "I2_R16_G64": lambda w, s: pack_i2_r16_groups(w, s, 64),
    "I2_R16_G128": lambda w, s: pack_i2_r16_groups(w, s, 128),
    "I2_R16_G256": lambda w, s: pack_i2_r16_groups(w, s, 256),
}
UNPACK = {
    "TQ2_0": unpack_tq2_0,
    "TQ1_0": unpack_tq1_0,
    "I2_S": unpack_i2_s,
    "I2_S4": unpack_i2_s4,
    "Q2_0": lambda d, r, c: unpack_q2(d, r, c, 64),
    "Q2_0_128": lambda d, r, c: unpack_q2(d, r, c, 128),
    "I2_R16": unpack_i2_r16,
    "I2_R16_G64": lambda d, r, c: unpack_i2_r16_groups(d, r, c, 64),
    "I2_R16_G128": lambda d, r, c: unpack_i2_r16_groups(d, r, c, 128),
    "I2_R16_G256": lambda d, r, c: unpack_i2_r16_groups(d, r, c, 256),
}
ONE_SCALE = ("I2_S", "I2_S4", "I2_R16")  # one tensor scale; the others have one per block or group
GROUP = {
    "TQ2_0": 256,
    "TQ1_0": 256,
    "Q2_0": 64,
    "Q2_0_128": 128,
    "I2_R16_G64": 64,
    "I2_R16_G128": 128,
    "I2_R16_G256": 256,
}


def pack(fmt: str, w: np.ndarray, scales: np.ndarray) -> np.ndarray:
    if fmt in ONE_SCALE:
        return PACK[fmt](w, float(scales.reshape(-1)[0]))
    return PACK[fmt](w, scales.reshape(w.shape[0], -1))


def matmul(
    fmt: str, w: np.ndarray, scales: np.ndarray, x: np.ndarray, x_scales: np.ndarray | None = None, block: int = 0
) -> np.ndarray:
    """Y[t, r] = sum over groups of weight scale (x block scale) * integer dot, in float64. x: int8 [n, cols];
    x_scales [n, cols / block] for per-block activations (x ~ q * scale), else none."""
    xi = x.astype(np.int64)
    rows, cols = w.shape
    n = x.shape[0]
    g = 0 if fmt in ONE_SCALE else GROUP[fmt]
    if g == 0 and block == 0:
        return (xi @ w.T.astype(np.int64)).astype(np.float64) * float(scales.reshape(-1)[0])
    step = min(v for v in (g, block) if v)  # the finer of the two: one scale of each over every piece
    wb = w.reshape(rows, cols // step, step).astype(np.int64)
    xb = xi.reshape(n, cols // step, step)
    per = np.einsum("rbk,tbk->trb", wb, xb).astype(np.float64)
    if g:
        d = np.repeat(scales.reshape(rows, cols // g).astype(np.float16).astype(np.float64), g // step, axis=1)
    else:
        d = np.full((rows, cols // step), float(scales.reshape(-1)[0]))
    per = per * d[None, :, :]
    if block:
        per = per * np.repeat(x_scales.reshape(n, cols // block).astype(np.float64), block // step, axis=1)[:, None, :]
    return per.sum(axis=2)


def quantize_blocks(x: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-block absmax: d = max|x| / 127 per block (max clamped to 1e-5), q = clip(round_half_even(x * 127 / max))."""
    x = np.atleast_2d(x).astype(np.float32)
    n, k = x.shape
    xb = x.reshape(n, k // block, block)
    amax = np.maximum(np.abs(xb).max(axis=2), np.float32(1e-5))
    q = np.clip(np.round(xb * (np.float32(127.0) / amax)[..., None]), -128, 127).astype(np.int8).reshape(n, k)
    return q, (amax / np.float32(127.0)).astype(np.float32)


def quantize_activations(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BitNet per-token absmax: scale = 127 / max|x| (clamped to 1e-5), q = clip(round_half_even(x * scale))."""
    x = np.atleast_2d(x).astype(np.float32)
    amax = np.maximum(np.abs(x).max(axis=1), np.float32(1e-5))
    scale = (np.float32(127.0) / amax).astype(np.float32)
    q = np.clip(np.round(x * scale[:, None]), -128, 127).astype(np.int8)
    return q, scale
