"""A small, typed wrapper over quantd's QuantizationService for pipelines.

    from quantd_client import Client
    c = Client("127.0.0.1:7470")
    job = c.quantize(model="llama", output="llama-w4", method="int4", request_id="run-1")
    job = c.wait(job.id, on_event=lambda j: print(j.progress.stage, j.progress.fraction))
"""
import time

import grpc

from quantd_client import _stubs

pb, pb_grpc = _stubs.load()

FINAL = {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED}


class JobFailed(RuntimeError):
    """Raised by wait(check=True) when a job ends other than SUCCEEDED."""

    def __init__(self, job):
        super().__init__(f"job {job.id} {pb.JobState.Name(job.state)}: {job.error.message}")
        self.job = job


class Client:
    def __init__(self, address="127.0.0.1:7470", timeout=60.0):
        self._channel = grpc.insecure_channel(address)
        self._stub = pb_grpc.QuantizationServiceStub(self._channel)
        self._timeout = timeout

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # Jobs -----------------------------------------------------------------
    def quantize(self, model, output, method, group_size=0, symmetric=None, overwrite=False,
                 options=None, priority=0, device="auto", request_id=""):
        spec = pb.QuantizeSpec(model=model, output=output, method=method, group_size=group_size,
                               overwrite=overwrite, options=options or {})
        if symmetric is not None:
            spec.symmetric = symmetric
        return self.create(pb.JobSpec(quantize=spec, priority=priority,
                                      device=_DEVICES[device]), request_id)

    def create(self, spec, request_id=""):
        return self._stub.CreateJob(pb.CreateJobRequest(spec=spec, request_id=request_id),
                                    timeout=self._timeout)

    def get(self, job_id):
        return self._stub.GetJob(pb.GetJobRequest(id=job_id), timeout=self._timeout)

    def list(self, states=(), kind=pb.JOB_KIND_UNSPECIFIED, page_size=100):
        """Yields every job, newest first, across pages."""
        token = ""
        while True:
            resp = self._stub.ListJobs(pb.ListJobsRequest(page_size=page_size, page_token=token,
                                                          states=list(states), kind=kind),
                                       timeout=self._timeout)
            yield from resp.jobs
            token = resp.next_page_token
            if not token:
                return

    def cancel(self, job_id):
        return self._stub.CancelJob(pb.CancelJobRequest(id=job_id), timeout=self._timeout)

    def delete(self, job_id):
        self._stub.DeleteJob(pb.DeleteJobRequest(id=job_id), timeout=self._timeout)

    def capabilities(self):
        return self._stub.GetCapabilities(pb.GetCapabilitiesRequest(), timeout=self._timeout)

    def workers(self):
        return list(self._stub.ListWorkers(pb.ListWorkersRequest(), timeout=self._timeout).workers)

    # Watching -------------------------------------------------------------
    def events(self, job_id, after_seq=0, reconnect_for=120.0):
        """Yields JobEvents until the job is final, resuming after the last seen
        event when the connection breaks."""
        last = after_seq
        lost_since = None
        while True:
            try:
                for msg in self._stub.WatchJob(pb.WatchJobRequest(id=job_id, after_seq=last)):
                    lost_since = None
                    if msg.HasField("event"):
                        last = msg.event.seq
                        yield msg.event
                        if msg.event.job.state in FINAL:
                            return
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since > reconnect_for:
                    raise
                time.sleep(0.5)

    def wait(self, job_id, on_event=None, check=True):
        """Follows a job to its end; returns the final Job (JobFailed if check)."""
        job = None
        for ev in self.events(job_id):
            job = ev.job
            if on_event:
                on_event(job)
        if check and job.state != pb.JOB_STATE_SUCCEEDED:
            raise JobFailed(job)
        return job


_DEVICES = {"auto": pb.DEVICE_PREFERENCE_AUTO, "cpu": pb.DEVICE_PREFERENCE_CPU,
            "gpu": pb.DEVICE_PREFERENCE_GPU}
