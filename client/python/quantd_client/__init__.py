"""Python client of quantd (gRPC). See client/python/README.md."""
from quantd_client.client import Client, JobFailed  # noqa: F401
