#!/usr/bin/env python3
"""Independent reader of compressed-tensors "pack-quantized" weights.

Written from the published definition (compressed-tensors
pack_quantized.py / helpers.py: unpack_from_int32 and _dequantize), not from
quantd's C++: it reads the files quantd wrote, unpacks every layer, and
checks that (q - zp) * scale equals the values quantd's DecodeRef produced,
exactly, and that the layout (names, dtypes, shapes, config keys) is the one
vLLM and transformers load.

Usage: read_pack_quantized.py --generator BIN --workdir DIR
  runs `BIN DIR` (tests/interop/write_pack_quantized.cc), then verifies
  DIR/quantized.safetensors against DIR/expected.safetensors and
  DIR/config.json. Exit status: 0 pass, 1 fail, 77 skipped (python3 lacks
  numpy or safetensors).
"""

import argparse
import json
import math
import struct
import subprocess
import sys

try:
    import numpy as np
    from safetensors import safe_open
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(77)


def read_safetensors(path):
    """Every tensor of a safetensors file as a numpy array (BF16 as float32).

    numpy has no bfloat16, so the raw bytes are read per the format
    (8-byte little-endian header length, JSON header, data section); the
    safetensors package is used to validate the file and the other dtypes.
    """
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    dtypes = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64,
              "BF16": np.uint16}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        a = np.frombuffer(data[base + begin : base + end], dtype=dtypes[info["dtype"]])
        a = a.reshape(info["shape"])
        if info["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[name] = (info["dtype"], a)
    with safe_open(path, framework="numpy") as st:
        if set(st.keys()) != set(out):
            raise AssertionError(f"{path}: safetensors sees {sorted(st.keys())}")
        for name, (dtype, a) in out.items():
            if dtype != "BF16":
                np.testing.assert_array_equal(st.get_tensor(name), a)
    return out


def unpack_from_int32(packed, num_bits, shape, packed_dim=1):
    """compressed-tensors unpack_from_int32: value i of a word at bits
    [num_bits*i, num_bits*(i+1)), stored with offset 2**(num_bits-1)."""
    pack_factor = 32 // num_bits
    mask = (1 << num_bits) - 1
    words = packed.astype(np.int64) & 0xFFFFFFFF
    if packed_dim == 0:
        words = words.T
    rows, n_words = words.shape
    shifts = np.arange(pack_factor, dtype=np.int64) * num_bits
    values = (words[:, :, None] >> shifts) & mask
    values = values.reshape(rows, n_words * pack_factor)
    keep = shape[1] if packed_dim == 1 else shape[0]
    values = values[:, :keep] - (1 << (num_bits - 1))
    if packed_dim == 0:
        values = values.T
    return values.astype(np.int32)


def check_config(name, cfg):
    assert cfg["quant_method"] == "compressed-tensors", name
    assert cfg["format"] == "pack-quantized", name
    assert cfg["quantization_status"] == "compressed", name
    group = cfg["config_groups"]["group_0"]
    assert group["targets"] == ["Linear"], name
    assert group["input_activations"] is None and group["output_activations"] is None, name
    w = group["weights"]
    allowed = {"num_bits", "type", "symmetric", "group_size", "strategy", "dynamic", "actorder",
               "block_structure", "observer", "observer_kwargs"}
    assert set(w) == allowed, f"{name}: weight keys {sorted(w)}"
    assert w["type"] == "int" and w["dynamic"] is False, name
    if w["strategy"] == "channel":
        assert w["group_size"] is None, name
    else:
        assert w["strategy"] == "group" and w["group_size"] > 0, name
    return w


def check_layer(name, w, q, expected):
    num_bits, symmetric = w["num_bits"], w["symmetric"]
    pf = 32 // num_bits
    shape_dtype, shape = q[f"{name}.weight_shape"]
    assert shape_dtype == "I64" and shape.shape == (2,), f"{name}: weight_shape"
    rows, cols = int(shape[0]), int(shape[1])
    packed_dtype, packed = q[f"{name}.weight_packed"]
    assert packed_dtype == "I32" and packed.shape == (rows, math.ceil(cols / pf)), name
    scale_dtype, scale = q[f"{name}.weight_scale"]
    group_size = cols if w["strategy"] == "channel" else w["group_size"]
    groups = cols // group_size
    assert scale.shape == (rows, groups), f"{name}: scale shape {scale.shape}"
    _, source = expected[f"{name}.source"]
    _, decoded = expected[f"{name}.decoded"]
    assert decoded.shape == (rows, cols), name

    qv = unpack_from_int32(packed, num_bits, (rows, cols), packed_dim=1)
    zp_name = f"{name}.weight_zero_point"
    if symmetric:
        assert zp_name not in q, f"{name}: symmetric layers must not have a zero point"
        zp = np.zeros((rows, groups), dtype=np.int32)
    else:
        zp_dtype, zp_packed = q[zp_name]
        assert zp_dtype == "I32" and zp_packed.shape == (math.ceil(rows / pf), groups), name
        zp = unpack_from_int32(zp_packed, num_bits, (rows, groups), packed_dim=0)
    lo, hi = -(1 << (num_bits - 1)), (1 << (num_bits - 1)) - 1
    assert qv.min() >= lo and qv.max() <= hi and zp.min() >= lo and zp.max() <= hi, name

    col_group = np.arange(cols) // group_size
    s = scale.astype(np.float32)[:, col_group]
    deq = (qv - zp[:, col_group]).astype(np.float32) * s
    if not np.array_equal(deq, decoded):
        bad = np.argwhere(deq != decoded)[0]
        raise AssertionError(f"{name}: reader gives {deq[tuple(bad)]} at {tuple(bad)}, "
                             f"quantd's DecodeRef {decoded[tuple(bad)]}")
    err = np.abs(deq - source) / s
    assert err.max() <= 1.0, f"{name}: round-trip error {err.max()} scales"
    return f"{name}: {rows}x{cols} int{num_bits} {scale_dtype} scales, " \
           f"max error {err.max():.3f} scales"


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
