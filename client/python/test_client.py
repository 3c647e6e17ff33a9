#!/usr/bin/env python3
"""Drives a real quantd (path in argv[1]) through the Python client:
quantize a generated model, watch it, idempotency, cancel, errors."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
try:
    import grpc  # noqa: F401
    import grpc_tools  # noqa: F401
except ImportError:
    print("grpcio / grpcio-tools missing: skipped")
    sys.exit(77)

quantd, make_model = sys.argv[1], sys.argv[2]
root = pathlib.Path(tempfile.mkdtemp(prefix="quantd-py-"))
os.environ["QUANTD_CLIENT_STUBS"] = str(root / "stubs")
from quantd_client import Client, JobFailed  # noqa: E402
from quantd_client.client import pb  # noqa: E402

try:
    (root / "models").mkdir()
    (root / "outputs").mkdir()
    subprocess.run([make_model, str(root / "models" / "tiny")], check=True, capture_output=True)
    server = subprocess.Popen([quantd, "--listen", "127.0.0.1:0", "--metrics-listen", "",
                               "--data-dir", str(root / "data"), "--model-root",
                               str(root / "models"), "--output-root", str(root / "outputs"),
                               "--gpus", "none", "--log-level", "warn",
                               "--debug-step-delay-ms", "20"])
    ports = root / "data" / "ports.json"
    for _ in range(300):
        if ports.exists() and ports.stat().st_size:
            break
        time.sleep(0.05)
    port = json.loads(ports.read_text())["grpc"]
    with Client(f"127.0.0.1:{port}") as c:
        job = c.quantize(model="tiny", output="py-int4", method="int4", request_id="py-1")
        again = c.quantize(model="tiny", output="py-int4", method="int4", request_id="py-1")
        assert again.id == job.id, "request_id must make create idempotent"
        stages = []
        done = c.wait(job.id, on_event=lambda j: stages.append(j.progress.stage))
        assert done.state == pb.JOB_STATE_SUCCEEDED, done
        assert "quantizing" in stages, stages
        assert any(f.path.endswith("model.safetensors") for f in done.result.files)
        assert (root / "outputs" / "py-int4" / "config.json").exists()
        assert [j.id for j in c.list()] == [job.id]
        slow = c.quantize(model="tiny", output="py-cancel", method="int8")
        c.cancel(slow.id)
        try:
            c.wait(slow.id)
            raise AssertionError("cancelled job must raise JobFailed")
        except JobFailed as e:
            assert e.job.state == pb.JOB_STATE_CANCELLED
        try:
            c.quantize(model="/etc", output="x", method="int4")
            raise AssertionError("absolute path must be refused")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
        assert any(m.method == "int4" for m in c.capabilities().methods)
        assert c.workers()[0].id == "cpu0"
    server.terminate()
    server.wait(timeout=30)
    print("python client: ok")
finally:
    shutil.rmtree(root, ignore_errors=True)
