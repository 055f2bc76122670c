# The runtime image for Swarm sandbox nodes, on top of selfbox/runtime (docs/scale-out.md):
# the runner from this tree, and no /home/user in the image, so that the service's tmpfs
# there gets its Mode (1777) and uid 1000 can write its home (a tmpfs over a directory the
# image ships comes out root:root 0755 on Docker 20.10, whatever its Mode).
ARG BASE=selfbox/runtime:latest
FROM ${BASE}
USER root
# Not /home/user: the builder (and the engine, for a task) creates the working directory.
WORKDIR /
RUN rm -rf /opt/selfbox/selfbox_runner && rmdir /home/user
COPY sandbox_server/runner/ /opt/selfbox/selfbox_runner/
RUN python3 -m compileall -q /opt/selfbox/selfbox_runner && chmod -R a+rX /opt/selfbox \
    && test ! -e /home/user
USER 1000:1000
