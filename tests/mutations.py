"""A hypothesis strategy shared by the fuzzers: a real file's bytes, slightly damaged."""
from __future__ import annotations

from hypothesis import strategies as st


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """`data` with a few bytes flipped, inserted, deleted or duplicated, or cut short."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]))
        pos = draw(st.integers(0, max(len(out) - 1, 0)))
        if kind == "flip" and out:
            out[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=9))
        elif kind == "delete":
            del out[pos:pos + draw(st.integers(1, 9))]
        elif kind == "truncate":
            del out[pos:]
        else:
            out[pos:pos] = out[pos:pos + draw(st.integers(1, 64))]
    return bytes(out)
