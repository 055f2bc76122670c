# The server image with the sandbox_server package from this tree (for the dev swarm and its
# tests, which build their own tag rather than rebuilding selfbox/server:latest).
ARG BASE=selfbox/server:latest
FROM ${BASE}
USER root
RUN rm -rf /opt/venv/lib/python3.11/site-packages/sandbox_server
COPY sandbox_server/ /opt/venv/lib/python3.11/site-packages/sandbox_server/
RUN /opt/venv/bin/python -m compileall -q /opt/venv/lib/python3.11/site-packages/sandbox_server
USER 10001:10001
