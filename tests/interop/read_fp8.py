#!/usr/bin/env python3
"""Independent reader of compressed-tensors "float-quantized" (FP8) weights.

Written from the published definitions, not from quantd's C++:
  * E4M3 ("float8_e4m3fn") from its bit layout: sign, 4-bit exponent with
    bias 7, 3-bit mantissa, subnormals m * 2**-9, 0x7f/0xff NaN, no Inf;
  * compressed-tensors' FP8 quantization (calculate_qparams and _quantize):
    scale = amax / 448 (FP8_E4M3_DATA.max) per tensor, per output channel or
    per 128 x 128 block, zero scales replaced by the scale dtype's eps,
    q = cast_e4m3(clamp(x / scale, -448, 448)) rounding to nearest even;
    dequantized = q * scale.
It checks the files quantd wrote: names, dtypes and shapes as vLLM and
compressed-tensors load them, every scale and code recomputed from the
source weights (codes to the nearest E4M3 value, ties to even, by search
over the 127 finite magnitudes), the decoded values equal to quantd's
DecodeRef, and the config keys.

Usage: read_fp8.py --generator BIN --workdir DIR
  runs `BIN DIR` (tests/interop/write_fp8.cc), then verifies
  DIR/quantized.safetensors against DIR/expected.safetensors and
  DIR/config.json. Exit status: 0 pass, 1 fail, 77 skipped (python3 lacks
  numpy or safetensors).
"""

import argparse
import json
import struct
import subprocess
import sys

try:
    import numpy as np
    from safetensors import safe_open
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(77)

FP8_MAX = 448.0
BLOCK = 128
# Scale substituted for zero scales: torch.finfo(dtype).eps per scale dtype.
EPS = {"BF16": 2.0**-7, "F16": 2.0**-10, "F32": 2.0**-23}


def read_safetensors(path):
    """name -> (dtype string, raw numpy array): F8_E4M3 as uint8 codes, BF16
    as uint16 bits, others as their numpy type. The header is parsed per the
    format (8-byte little-endian length, JSON, data section); the
    safetensors package validates names, dtypes and shapes."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    types = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F8_E4M3": np.uint8,
             "I64": np.int64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        a = np.frombuffer(data[base + begin : base + end], dtype=types[info["dtype"]])
        out[name] = (info["dtype"], a.reshape(info["shape"]))
    with safe_open(path, framework="numpy") as st:
        if set(st.keys()) != set(out):
            raise AssertionError(f"{path}: safetensors sees {sorted(st.keys())}")
        for name, (dtype, a) in out.items():
            sl = st.get_slice(name)
            assert sl.get_dtype() == dtype and list(sl.get_shape()) == list(a.shape), name
    return out


def to_f32(dtype, a):
    """A weight of dtype F32, F16 or BF16 (raw bits) as float32, exactly."""
    if dtype == "BF16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32)


def e4m3_decode(codes):
    """uint8 codes -> float64 values from the bit definition."""
    c = codes.astype(np.int64)
    sign = np.where(c & 0x80, -1.0, 1.0)
    e = (c >> 3) & 0xF
    m = c & 0x7
    mag = np.where(e == 0, m * 2.0**-9, (1.0 + m / 8.0) * np.exp2(e - 7.0))
    mag = np.where((e == 15) & (m == 7), np.nan, mag)
    return sign * mag


# The 127 finite non-negative E4M3 values, ascending, and their codes.
FINITE_CODES = np.arange(0x7F, dtype=np.uint8)
FINITE_VALUES = e4m3_decode(FINITE_CODES)
assert np.all(np.diff(FINITE_VALUES) > 0) and FINITE_VALUES[-1] == FP8_MAX


def e4m3_encode(x):
    """float values (already within +-448) -> codes: nearest finite value,
    ties to the even code, sign kept (also for zero)."""
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    hi = np.clip(np.searchsorted(FINITE_VALUES, a), 1, len(FINITE_VALUES) - 1)
    lo = hi - 1
    d_lo = a - FINITE_VALUES[lo]
    d_hi = FINITE_VALUES[hi] - a
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (FINITE_CODES[hi] % 2 == 0))
    code = np.where(pick_hi, FINITE_CODES[hi], FINITE_CODES[lo]).astype(np.uint8)
    return code | np.where(np.signbit(x), 0x80, 0).astype(np.uint8)


def f32_to_bf16_bits(x):
    """float32 -> bfloat16 bits, round to nearest even (finite inputs)."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def stored_scale(amax, dtype):
    """compressed-tensors' scale: amax / 448 in float32, rounded to the
    scale dtype; zero groups get eps. A nonzero amax whose scale
    underflows gets the dtype's smallest subnormal (quantd's documented
    choice; compressed-tensors would use eps). Returns (bits, float32 value)."""
    s = (np.asarray(amax, dtype=np.float32) / np.float32(FP8_MAX)).astype(np.float32)
    zero = np.asarray(amax) == 0
    s = np.where(zero, np.float32(EPS[dtype]), s).astype(np.float32)
    if dtype == "BF16":
        bits = f32_to_bf16_bits(s)
        bits = np.where(bits == 0, np.uint16(1), bits).astype(np.uint16)
        value = (bits.astype(np.uint32) << 16).view(np.float32)
    elif dtype == "F16":
        h = s.astype(np.float16)
        bits = h.view(np.uint16)
        bits = np.where(bits == 0, np.uint16(1), bits).astype(np.uint16)
        value = bits.view(np.float16).astype(np.float32)
    else:
        bits = s.view(np.uint32)
        bits = np.where(bits == 0, np.uint32(1), bits).astype(np.uint32)
        value = bits.view(np.float32)
    return bits, value


def check_config(name, cfg):
    assert cfg["quant_method"] == "compressed-tensors", name
    assert cfg["format"] == "float-quantized", name
    assert cfg["quantization_status"] == "compressed", name
    group = cfg["config_groups"]["group_0"]
    assert group["format"] == "float-quantized" and group["targets"] == ["Linear"], name
    assert group["output_activations"] is None, name
    keys = {"num_bits", "type", "symmetric", "group_size", "strategy", "dynamic", "actorder",
            "block_structure", "observer", "observer_kwargs"}
    w, a = group["weights"], group["input_activations"]
    assert set(w) == keys and set(a) == keys, f"{name}: keys {sorted(w)} {sorted(a)}"
    assert w["num_bits"] == 8 and w["type"] == "float" and w["symmetric"] is True, name
    assert w["dynamic"] is False and w["group_size"] is None, name
    assert a["num_bits"] == 8 and a["type"] == "float" and a["symmetric"] is True, name
    assert a["dynamic"] is True, name
    if w["strategy"] == "block":
        assert w["block_structure"] == [BLOCK, BLOCK], name
        assert a["strategy"] == "group" and a["group_size"] == BLOCK, name  # FP8_BLOCK
    else:
        assert w["strategy"] in ("tensor", "channel") and w["block_structure"] is None, name
        assert a["strategy"] == "token" and a["group_size"] is None, name  # FP8_DYNAMIC
    return w["strategy"]


def group_amax(source, strategy, tensor_amax):
    rows, cols = source.shape
    if strategy == "tensor":
        return np.array([tensor_amax], dtype=np.float32), (1,)
    if strategy == "channel":
        return np.abs(source).max(axis=1).astype(np.float32), (rows, 1)
    br, bc = -(-rows // BLOCK), -(-cols // BLOCK)
    amax = np.zeros((br, bc), dtype=np.float32)
    for i in range(br):
        for j in range(bc):
            blk = source[i * BLOCK : (i + 1) * BLOCK, j * BLOCK : (j + 1) * BLOCK]
            amax[i, j] = np.abs(blk).max()
    return amax, (br, bc)


def expand(scale, strategy, shape):
    rows, cols = shape
    s = scale.reshape(-1)
    if strategy == "tensor":
        return np.full(shape, s[0], dtype=np.float32)
    if strategy == "channel":
        return np.repeat(s.reshape(rows, 1), cols, axis=1)
    br, bc = -(-rows // BLOCK), -(-cols // BLOCK)
    full = np.repeat(np.repeat(s.reshape(br, bc), BLOCK, axis=0), BLOCK, axis=1)
    return full[:rows, :cols]


def check_layer(name, strategy, q, expected):
    assert {k for k in q if k.startswith(name + ".")} == {f"{name}.weight",
                                                         f"{name}.weight_scale"}, name
    w_dtype, codes = q[f"{name}.weight"]
    s_dtype, scale_raw = q[f"{name}.weight_scale"]
    src_dtype, source = expected[f"{name}.source"]
    source = to_f32(src_dtype, source)
    _, decoded = expected[f"{name}.decoded"]
    _, tensor_amax = expected[f"{name}.tensor_amax"]
    rows, cols = source.shape
    assert w_dtype == "F8_E4M3" and codes.shape == (rows, cols), f"{name}: weight"
    assert not np.any((codes & 0x7F) == 0x7F), f"{name}: NaN codes"
    # Scales are stored in the weight's dtype, as llm-compressor writes them.
    assert s_dtype == src_dtype, f"{name}: scale dtype {s_dtype}, weight {src_dtype}"

    amax, scale_shape = group_amax(source, strategy, tensor_amax[0])
    assert scale_raw.shape == scale_shape, f"{name}: scale shape {scale_raw.shape}"
    want_bits, scale = stored_scale(amax, s_dtype)
    got_bits = scale_raw.view(np.uint16 if s_dtype != "F32" else np.uint32)
    if not np.array_equal(got_bits.reshape(-1), want_bits.reshape(-1)):
        bad = np.argwhere(got_bits.reshape(-1) != want_bits.reshape(-1))[0][0]
        raise AssertionError(f"{name}: scale {bad} bits {got_bits.reshape(-1)[bad]:#x}, "
                             f"expected {want_bits.reshape(-1)[bad]:#x}")

    s_full = expand(scale, strategy, (rows, cols)).astype(np.float32)
    quotient = (source.astype(np.float32) / s_full).astype(np.float32)
    want_codes = e4m3_encode(np.clip(quotient, -FP8_MAX, FP8_MAX))
    if not np.array_equal(codes, want_codes):
        bad = tuple(np.argwhere(codes != want_codes)[0])
        raise AssertionError(f"{name}: code {codes[bad]:#x} at {bad}, expected "
                             f"{want_codes[bad]:#x} (x {source[bad]}, scale {s_full[bad]})")

    deq = (e4m3_decode(codes).astype(np.float32) * s_full).astype(np.float32)
    if not np.array_equal(deq, decoded):
        bad = tuple(np.argwhere(deq != decoded)[0])
        raise AssertionError(f"{name}: reader gives {deq[bad]} at {bad}, "
                             f"quantd's DecodeRef {decoded[bad]}")
    x = source.astype(np.float64)
    bound = np.maximum(np.abs(x) / 16, s_full / 1024) * (1 + 1e-6) + \
        np.maximum(0.0, np.abs(x) - FP8_MAX * s_full)
    err = np.abs(deq - x)
    assert np.all(err <= bound), f"{name}: round-trip error {np.max(err - bound)} over bound"
    zero_groups = int(np.sum(amax == 0))
    return (f"{name}: {rows}x{cols} {strategy} {s_dtype} scales {list(scale_shape)}, "
            f"{zero_groups} zero groups, max error {np.max(err / s_full):.3g} scales")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--generator", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    subprocess.run([args.generator, args.workdir], check=True)
    q = read_safetensors(f"{args.workdir}/quantized.safetensors")
    expected = read_safetensors(f"{args.workdir}/expected.safetensors")
    with open(f"{args.workdir}/config.json") as f:
        configs = json.load(f)
    assert configs, "no layers"
    for name, cfg in configs.items():
        print(check_layer(name, check_config(name, cfg), q, expected))
    print(f"{len(configs)} passed, 0 failed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (AssertionError, subprocess.CalledProcessError) as e:
        print(f"FAIL: {e}")
        sys.exit(1)
