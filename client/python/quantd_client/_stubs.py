"""Generates the gRPC stubs from proto/quantd/v1/quantd.proto on first use.

The stubs are written to a folder beside this file (or $QUANTD_CLIENT_STUBS)
with grpcio-tools, so they always match the proto of this checkout.
"""
import importlib
import os
import pathlib
import sys

_HERE = pathlib.Path(__file__).resolve().parent
_PROTO_ROOT = _HERE.parents[2] / "proto"


def load():
    """Returns (quantd_pb2, quantd_pb2_grpc)."""
    out = pathlib.Path(os.environ.get("QUANTD_CLIENT_STUBS", _HERE / "_generated"))
    proto = _PROTO_ROOT / "quantd" / "v1" / "quantd.proto"
    target = out / "quantd" / "v1" / "quantd_pb2.py"
    if not target.exists() or target.stat().st_mtime < proto.stat().st_mtime:
        from grpc_tools import protoc
        import grpc_tools
        out.mkdir(parents=True, exist_ok=True)
        include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
        rc = protoc.main(["protoc", f"-I{_PROTO_ROOT}", f"-I{include}", f"--python_out={out}",
                          f"--grpc_python_out={out}", str(proto)])
        if rc != 0:
            raise RuntimeError(f"protoc failed on {proto}")
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    return (importlib.import_module("quantd.v1.quantd_pb2"),
            importlib.import_module("quantd.v1.quantd_pb2_grpc"))
