"""The one table from error codes to HTTP statuses, shared by the server (which answers with
them) and the clients (which turn an answer back into an exception). Stdlib only: the light
``import executors`` must not pull the server's dependencies."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["HTTP_STATUS"]

HTTP_STATUS: Final[Mapping[str, int]] = MappingProxyType({
    # the library's own (executors.exceptions)
    "sandbox_error": 500,
    "configuration_error": 400,
    "missing_dependency": 400,
    "executor_closed": 409,
    "connection_error": 503,
    "unauthorized": 401,
    "sandbox_not_found": 404,
    "sandbox_gone": 410,
    "invalid_request": 422,
    "too_many_sandboxes": 429,
    "tool_error": 400,
    "server_error": 500,
    # the server's (sandbox_server.exceptions)
    "internal_error": 500,
    "not_found": 404,
    "context_not_found": 404,
    "conflict": 409,
    "payload_too_large": 413,
    "limit_exceeded": 422,
    "stream_overflow": 429,
    "not_supported": 501,
    "engine_unavailable": 503,
    "sandbox_start_failed": 500,
    # what a sandbox does to itself is never a server fault: its runner not answering, or
    # failing an op (the runner shares its process with user code)
    "sandbox_unresponsive": 409,
    "runner_timeout": 409,
    "runner_error": 409,
    # network (sandbox_server.ingress, sandbox_server.network)
    "port_unreachable": 502,  # nothing listens on that port in the sandbox
    "tunnel_broken": 502,  # the sandbox broke or dropped an ingress connection
    "bad_upstream_response": 502,  # the server in the sandbox answered something not HTTP
    "invalid_network_policy": 422,
    "egress_gateway_unavailable": 503,
})
