"""Whole-column float formatting: ``format(x, ".8g")`` for a numpy array at once.

The CSV writer of :meth:`cloudphys.inference.result.Prediction.write_csv` writes millions of float
cells; one Python ``format`` call per cell made 10,000 inputs x 200 temperatures a matter of
minutes. :func:`g8_slots` renders a whole block of cells with numpy instead, as the same text Python
writes, digit for digit, for every float64 (NaN: an empty cell).

Layout: every cell is :data:`WIDTH` byte *slots* -- a leading comma, the sign, the ``0.000`` of
small numbers, the 8 digits each followed by a possible decimal point, the exponent, ``inf`` -- and
a boolean mask of the slots the cell uses. The slots are in text order, so ``slots[mask].tobytes()``
of a block of rows is its CSV text (see ``cloudphys.inference.result._write_table``). The 32 slots
are four 8-byte words, each filled by one table look-up.

How it stays exact: the 8 significant digits are ``rint(|x| * 10**(7 - e))`` in float64, whose
error is a few ulps (below 1e-7 for a value below 1e8). Where that error could change the rounding
-- the scaled value within 1e-6 of a half (a tie or near one) or of the next power of ten -- and for
values outside 1e-290..1e290, Python's own correctly rounded ``f"{x:.7e}"`` gives the digits and the
exponent instead; ``%.8g`` is defined from exactly those two (C99: fixed notation when
-4 <= exponent < 8, trailing zeros removed). So the text equals ``f"{x:.8g}"`` for every value;
``tests/test_numtext.py`` checks it on random and edge values.
"""

from __future__ import annotations

import numpy as np

#: bytes (slots) per cell: 4 words of 8
WIDTH = 32
# word 0: ",-0.000" + an unused slot; words 1-2: d1 . d2 . d3 . d4 . | d5 . d6 . d7 . d8 (.)
# word 3: "e" sign exponent(3) "inf"
_COMMA, _SIGN, _ZERO, _ZDOT, _ZEROS = 0, 1, 2, 3, (4, 5, 6)
_DIGIT = tuple(8 + 2 * j for j in range(8))
_DOT = tuple(9 + 2 * j for j in range(8))
_E, _ESIGN, _EXP, _INF = 24, 25, (26, 27, 28), (29, 30, 31)

# forms: 0..11 fixed notation with exponent form - 4; 12/13 scientific with 2/3 exponent digits;
# 14 zero; 15 inf; 16 NaN (an empty cell)
_FORMS = 17
_NAN_FORM = 16


def _masks() -> np.ndarray:
    """The slot mask of every key ``(neg * _FORMS + form) * 9 + kept digits``, as 4 words."""
    masks = np.zeros((2 * _FORMS * 9, WIDTH), dtype=bool)
    for neg in (0, 1):
        for form in range(_FORMS):
            for k in range(9):
                use = [_COMMA]
                kk = max(k, 1)
                if form == _NAN_FORM:
                    pass
                elif form == 14:
                    use += [_SIGN] * neg + [_ZERO]
                elif form == 15:
                    use += [_SIGN] * neg + list(_INF)
                elif form < 12:
                    e = form - 4
                    use += [_SIGN] * neg
                    if e >= 0:  # all e + 1 integer digits (zeros included), "." and the kept decimals
                        use += list(_DIGIT[: max(kk, e + 1)]) + ([_DOT[e]] if kk > e + 1 else [])
                    else:
                        use += [_ZERO, _ZDOT, *_ZEROS[: -e - 1], *_DIGIT[:kk]]
                else:
                    use += [_SIGN] * neg + list(_DIGIT[:kk]) + ([_DOT[0]] if kk > 1 else []) + [_E, _ESIGN]
                    use += list(_EXP if form == 13 else _EXP[1:])
                masks[(neg * _FORMS + form) * 9 + k, use] = True
    return masks.view(np.uint64)


def _words(rows: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(rows), dtype=np.uint64).copy()


_MASK = _masks()
_MASKV = _MASK.view("V32").ravel()  # a row per key: one 32-byte item per gather
_P10 = np.array([float(f"1e{k}") for k in range(-330, 331)], dtype=np.float64)  # correctly rounded
_P10_OFF = 330
_WORD0 = _words([b",-0.000 "])[0]
_DIG = _words([".".join(f"{k:04d}").encode() + b"." for k in range(10_000)])  # "d.d.d.d."
_EXPW = _words([b"e" + (b"-" if k < 0 else b"+") + f"{abs(k):03d}".encode() + b"inf" for k in range(-400, 400)])
_EXP_OFF = 400
_FORM = np.array([12 + (abs(k) >= 100) if not -4 <= k < 8 else k + 4 for k in range(-400, 400)], dtype=np.int32)
_KEY = _FORM * 9 + 8  # minus trailing zeros, plus the sign's offset
_TZ4 = np.array([4] + [len(f"{k:04d}") - len(f"{k:04d}".rstrip("0")) for k in range(1, 10_000)], dtype=np.int32)


def g8_words(values: np.ndarray, out: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(slots, mask)`` of ``values`` (shape ``S``): two ``uint64`` arrays of shape ``S + (4,)``;
    viewed as bytes (``.view(np.uint8)``, ``.view(bool)``: ``S + (32,)``), ``slots[i][mask[i]]`` is
    ``"," + f"{values[i]:.8g}"``, or ``","`` for NaN.

    :param out: two ``uint64`` arrays (or views) of shape ``S + (4,)`` to write into.
    """
    v = np.asarray(values, dtype=np.float64)
    shape = v.shape
    x = v.ravel()
    n = x.size
    a = np.abs(x)
    with np.errstate(all="ignore"):
        lo_a, hi_a = (a.min(), a.max()) if n else (1.0, 1.0)
        all_regular = bool(lo_a >= 1e-290) and bool(hi_a < 1e290)  # False with a NaN
        regular = None if all_regular else (a >= 1e-290) & (a < 1e290)
        e = np.log10(a) if all_regular else np.log10(a, where=regular, out=np.zeros(n))
        e = np.floor(e, out=e).astype(np.int32)
        y = a * _P10[7 - e + _P10_OFF]
        off = (y >= 1e8).view(np.int8) - (y < 1e7).view(np.int8)
        if off.any():  # log10 one off next to a power of ten
            e += off
            y = a * _P10[7 - e + _P10_OFF]
        m = np.rint(y)
        y -= m
        np.abs(y, out=y)
        slow = y > 0.5 - 1e-6  # near a tie: the float64 error could decide the rounding
        slow |= m >= 1e8
        if not all_regular:
            slow &= regular
            slow |= ~regular & (a > 0) & (a < np.inf)  # tiny and huge
            m[~regular] = 1e7
    mi = m.astype(np.int32)
    for i in np.flatnonzero(slow).tolist():  # Python's correctly rounded digits and exponent
        mant, _, ex = f"{float(a[i]):.7e}".partition("e")
        mi[i] = int(mant.replace(".", ""))
        e[i] = int(ex)
    hi, lo = np.divmod(mi, 10_000)
    np.clip(e, -399, 399, out=e)
    e += _EXP_OFF
    key = _KEY[e]
    key -= _TZ4[lo]
    key -= (lo == 0) * _TZ4[hi]
    key += np.signbit(x) * np.int32(_FORMS * 9)
    if not all_regular:
        neg = np.signbit(x) * np.int32(_FORMS * 9)
        for form, where in ((14, a == 0), (15, np.isinf(a)), (_NAN_FORM, np.isnan(a))):
            key[where] = neg[where] + form * 9 + 1
    if out is None:
        slots = np.empty(shape + (4,), dtype=np.uint64)
        mask = np.empty(shape + (4,), dtype=np.uint64)
    else:
        slots, mask = out
    slots[..., 0] = _WORD0
    slots[..., 1] = _DIG[hi].reshape(shape)
    slots[..., 2] = _DIG[lo].reshape(shape)
    slots[..., 3] = _EXPW[e].reshape(shape)
    mask[...] = np.take(_MASKV, key).view(np.uint64).reshape(shape + (4,))
    return slots, mask


def g8_strings(values: np.ndarray) -> list[str]:
    """``f"{v:.8g}"`` (``""`` for NaN) of every value of ``values``, flattened (tests, small uses)."""
    slots, mask = g8_words(np.asarray(values, dtype=np.float64).ravel())
    s, m = slots.view(np.uint8), mask.view(bool)
    return [bytes(r[k])[1:].decode("ascii") for r, k in zip(s, m)]
