#!/usr/bin/env python3
"""Independent reader of bitsandbytes weights as transformers saves them.

Written from bitsandbytes' published definitions, not from quantd's C++:
  * 4-bit (quantize_4bit / dequantize_4bit): the flattened weight in blocks
    of `blocksize`; absmax = max |x| per block (float32); each x * (1 /
    absmax) gets the code of bitsandbytes' decision tree (dQuantizeNF4 /
    dQuantizeFP4: strict '>' against the midpoints listed in csrc, FP4
    with the sign bit 8 for x < 0); two codes a byte, the first element in
    the high nibble, an odd count padded with +0.0; decoded value =
    quant_map[code] * absmax (float32). NF4 / FP4 code books from
    get_4bit_type.
  * double quantization (compress_statistics): offset = mean(absmax);
    quantize_blockwise(absmax - offset, blocksize=256) with the signed
    dynamic map; absmax = nested_quant_map[q] * nested_absmax + offset.
  * the quant state JSON (QuantState.as_dict(packed=True)): quant_type,
    blocksize, dtype, shape, and nested_blocksize/dtype/offset.
  * LLM.int8 (Int8Params): h = weight cast to float16; SCB = max |h| per
    row; code = round-half-even(h * 127 / SCB); decoded = code * SCB *
    7.874015718698502e-3 (int8_vectorwise_dequant); weight_format 0 (row).
It checks names, dtypes and shapes as transformers loads them, recomputes
absmax / SCB and every code from the source weights, decodes the files and
compares with quantd's DecodeRef bit for bit, and checks the config.

Usage: read_bnb.py --generator BIN --workdir DIR
  runs `BIN DIR` (tests/interop/write_bnb.cc), then verifies
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

F32 = np.float32

# bitsandbytes get_4bit_type("nf4") (float32 of the decimal literals).
NF4 = np.array([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634,
    0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0], dtype=F32)
# get_4bit_type("fp4"): [0, 0.0625, 8, 12, 4, 6, 2, 3, -0, -0.0625, ...] / 12
# in float32 (the Python -0 is the integer 0, so index 8 is +0.0).
FP4 = (np.array([0, 0.0625, 8, 12, 4, 6, 2, 3, 0, -0.0625, -8, -12, -4, -6, -2, -3],
                dtype=F32) / F32(12)).astype(F32)
# dQuantizeNF4's thresholds, ascending (csrc/kernels.cu); the code is the
# number of thresholds strictly below x (NaN: none).
NF4_T = np.array([
    -0.8480964004993439, -0.6106329262256622, -0.4599952697753906,
    -0.33967943489551544, -0.23460740596055984, -0.13791173323988914,
    -0.045525018125772476, 0.03979014977812767, 0.1202552504837513,
    0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
    0.5016634166240692, 0.6427869200706482, 0.8614784181118011], dtype=F32)
# dQuantizeFP4's thresholds on |x| and the magnitude code for k of them below.
FP4_T = np.array([0.00260417, 0.0859375, 0.20833333, 0.29166667, 0.4166667,
                  0.583333, 0.8333333], dtype=F32)
FP4_K_TO_CODE = np.array([0, 1, 6, 7, 4, 5, 2, 3], dtype=np.uint8)


def read_safetensors(path):
    """name -> (dtype string, numpy array); BF16 as uint16 bits."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    types = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "U8": np.uint8,
             "I8": np.int8}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        a = np.frombuffer(data[base + begin:base + end], dtype=types[info["dtype"]])
        out[name] = (info["dtype"], a.reshape(info["shape"]))
    with safe_open(path, framework="numpy") as st:
        if set(st.keys()) != set(out):
            raise AssertionError(f"{path}: safetensors sees {sorted(st.keys())}")
        for name, (dtype, a) in out.items():
            sl = st.get_slice(name)
            assert sl.get_dtype() == dtype and list(sl.get_shape()) == list(a.shape), name
    return out


def to_f32(dtype, a):
    if dtype == "BF16":
        return (a.astype(np.uint32) << 16).view(F32)
    return a.astype(F32)


def ftz(x):
    """float32 subnormals -> zero of the same sign (bitsandbytes' kernels are
    built with --use_fast_math)."""
    x = np.asarray(x, dtype=F32)
    return np.where(np.abs(x) < np.finfo(F32).tiny, np.copysign(F32(0), x), x).astype(F32)


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def codes_4bit(v, quant_type):
    """Codes of normalised float32 values v by bitsandbytes' trees."""
    with np.errstate(invalid="ignore"):
        if quant_type == "nf4":
            return (v[:, None] > NF4_T[None, :]).sum(axis=1).astype(np.uint8)
        a = np.abs(v)
        k = (a[:, None] > FP4_T[None, :]).sum(axis=1)
        return (FP4_K_TO_CODE[k] + np.where(v < 0, 8, 0)).astype(np.uint8)


def dynamic_map_reference():
    """create_dynamic_map(signed=True) in float64 (the stored map is its
    float32 rounding, up to torch's linspace rounding)."""
    data = []
    for i in range(7):
        b = np.linspace(0.1, 1, 2**i + 1)
        means = (b[:-1] + b[1:]) / 2.0
        data += list(10.0**(-6 + i) * means) + list(-(10.0**(-6 + i)) * means)
    data += [0.0, 1.0]
    return np.sort(np.array(data))


def check_4bit(name, q, exp, cfg):
    st_name = [k for k in q if k.startswith(name + ".weight.quant_state.bitsandbytes__")]
    expect(len(st_name) == 1, f"{name}: one quant_state part")
    qtype = st_name[0].rsplit("__", 1)[1]
    state = json.loads(q[st_name[0]][1].tobytes().decode("utf-8"))
    src_dtype, src = exp[name + ".source"]
    rows, cols = src.shape
    expect(state["quant_type"] == qtype, f"{name}: quant_type")
    expect(state["shape"] == [rows, cols], f"{name}: shape {state['shape']}")
    expect(state["dtype"] == {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}[src_dtype],
           f"{name}: dtype {state['dtype']}")
    bs = state["blocksize"]
    dq = "nested_offset" in state
    expect(cfg["quant_method"] == "bitsandbytes" and cfg["load_in_4bit"], f"{name}: config")
    expect(cfg["bnb_4bit_quant_type"] == qtype, f"{name}: config quant type")
    expect(cfg["bnb_4bit_use_double_quant"] == dq, f"{name}: config double quant")

    x = ftz(to_f32(src_dtype, src).reshape(-1))
    n = x.size
    nb = (n + bs - 1) // bs
    pad = np.zeros(nb * bs, dtype=F32)
    pad[:n] = x
    absmax = ftz(np.abs(pad).reshape(nb, bs).max(axis=1))

    wt, packed = q[name + ".weight"]
    expect(wt == "U8" and packed.shape == ((n + 1) // 2, 1), f"{name}: weight {packed.shape}")
    mt, qmap = q[name + ".weight.quant_map"]
    expect(mt == "F32" and np.array_equal(qmap.view(np.uint32),
                                          (NF4 if qtype == "nf4" else FP4).view(np.uint32)),
           f"{name}: quant_map")

    # Codes recomputed from the source: x * (1 / absmax), per block.
    with np.errstate(divide="ignore", invalid="ignore"):
        r = ftz(F32(1) / absmax)
        xs = np.zeros(nb * bs + 1, dtype=F32)
        xs[:n] = x
        xs = xs[:((n + 1) // 2) * 2]
        v = ftz(xs * np.repeat(r, bs)[:xs.size])
    want = codes_4bit(v, qtype)
    got = np.stack([packed.reshape(-1) >> 4, packed.reshape(-1) & 15], axis=1).reshape(-1)
    bad = np.nonzero(want != got)[0]
    expect(bad.size == 0, f"{name}: {bad.size} codes differ, first at element "
           f"{bad[:1]}: want {want[bad[:1]]}, got {got[bad[:1]]}")

    at, stored = q[name + ".weight.absmax"]
    if not dq:
        expect(at == "F32" and stored.shape == (nb,), f"{name}: absmax {at} {stored.shape}")
        expect(np.array_equal(stored.view(np.uint32), absmax.view(np.uint32)), f"{name}: absmax")
        block_absmax = stored
    else:
        expect(at == "U8" and stored.shape == (nb,), f"{name}: absmax {at} {stored.shape}")
        expect(state["nested_blocksize"] == 256 and state["nested_dtype"] == "float32",
               f"{name}: nested state")
        nt, nested = q[name + ".weight.nested_absmax"]
        ct, nmap = q[name + ".weight.nested_quant_map"]
        nnb = (nb + 255) // 256
        expect(nt == "F32" and nested.shape == (nnb,), f"{name}: nested_absmax")
        expect(ct == "F32" and nmap.shape == (256,), f"{name}: nested_quant_map")
        ref = dynamic_map_reference()
        expect(np.all(np.abs(nmap.astype(np.float64) - ref) <= 2e-7 * np.abs(ref) + 1e-12),
               f"{name}: nested_quant_map is not create_dynamic_map()")
        offset = F32(state["nested_offset"])
        mean = F32(np.mean(absmax.astype(np.float64)))
        expect(abs(float(offset) - float(mean)) <= 2 * float(np.spacing(mean)),
               f"{name}: nested_offset {offset} is not mean(absmax) {mean}")
        centred = (absmax - offset).astype(F32)
        cpad = np.zeros(nnb * 256, dtype=F32)
        cpad[:nb] = centred
        nmax = ftz(np.abs(cpad).reshape(nnb, 256).max(axis=1))
        expect(np.array_equal(nested.view(np.uint32), nmax.view(np.uint32)),
               f"{name}: nested_absmax")
        # Each 8-bit code is a nearest entry of the dynamic map.
        with np.errstate(divide="ignore", invalid="ignore"):
            nv = ftz(centred * np.repeat(ftz(F32(1) / nmax), 256)[:nb]).astype(np.float64)
        m64 = nmap.astype(np.float64)
        dist = np.abs(m64[stored.astype(np.int64)] - nv)
        best = np.abs(m64[None, :] - nv[:, None]).min(axis=1)
        expect(np.all(dist <= best + 1e-7), f"{name}: an 8-bit absmax code is not the nearest")
        block_absmax = (nmap[stored] * np.repeat(nested, 256)[:nb] + offset).astype(F32)

    decoded = (qmap[got[:n]] * np.repeat(block_absmax, bs)[:n]).astype(F32)
    _, ours = exp[name + ".decoded"]
    expect(np.array_equal(decoded.view(np.uint32), ours.reshape(-1).view(np.uint32)),
           f"{name}: decoded values differ from quantd's DecodeRef")
    return f"{qtype} bs={bs}{' dq' if dq else ''} {rows}x{cols}"


def check_int8(name, q, exp, cfg):
    src_dtype, src = exp[name + ".source"]
    rows, cols = src.shape
    expect(cfg["quant_method"] == "bitsandbytes" and cfg["load_in_8bit"], f"{name}: config")
    wt, w = q[name + ".weight"]
    st, scb = q[name + ".SCB"]
    ft, fmt = q[name + ".weight_format"]
    expect(wt == "I8" and w.shape == (rows, cols), f"{name}: weight")
    expect(st == "F32" and scb.shape == (rows,), f"{name}: SCB")
    expect(ft == "U8" and fmt.shape == () and int(fmt) == 0, f"{name}: weight_format")
    h = to_f32(src_dtype, src).astype(np.float16).astype(F32)
    absmax = np.abs(h).max(axis=1)
    expect(np.array_equal(scb.view(np.uint32), absmax.view(np.uint32)), f"{name}: SCB")
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = (F32(127) * (F32(1) / absmax)).astype(F32)
        v = (h * scale[:, None]).astype(F32)
    want = np.where(np.isnan(v), 0, np.clip(np.rint(v), -127, 127)).astype(np.int8)
    bad = np.argwhere(want != w)
    expect(bad.size == 0, f"{name}: {len(bad)} codes differ, first at {bad[:1].tolist()}")
    decoded = (w.astype(F32) * scb[:, None] * F32(7.874015718698502e-3)).astype(F32)
    _, ours = exp[name + ".decoded"]
    expect(np.array_equal(decoded.view(np.uint32), ours.view(np.uint32)),
           f"{name}: decoded values differ from quantd's DecodeRef")
    return f"int8 {rows}x{cols}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--generator", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    subprocess.run([args.generator, args.workdir], check=True)
    q = read_safetensors(f"{args.workdir}/quantized.safetensors")
    exp = read_safetensors(f"{args.workdir}/expected.safetensors")
    with open(f"{args.workdir}/config.json") as f:
        config = json.load(f)
    failures = 0
    for name in sorted(config):
        try:
            if name + ".SCB" in q:
                what = check_int8(name, q, exp, config[name])
            else:
                what = check_4bit(name, q, exp, config[name])
            print(f"ok   {name}: {what}")
        except AssertionError as e:
            failures += 1
            print(f"FAIL {name}: {e}")
    print(f"{len(config) - failures}/{len(config)} cases decode exactly to quantd's values")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
