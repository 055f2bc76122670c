"""Hardening probe: run as a Swarm task's command (``python3 -c "$(cat probe.py)"``), it prints
one JSON line saying what the task's process really got. Used by scripts/swarm-dev.sh and
tests/swarm. Standard library only: it runs in the selfbox runtime image."""

import json
import os
import resource
import socket


def read(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError as exc:
        return f"error: {exc.strerror}"


def status_field(name):
    for line in read("/proc/self/status").splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def writable(path):
    probe = os.path.join(path, f".probe-{os.getpid()}")
    try:
        with open(probe, "w") as handle:
            handle.write("x")
    except OSError:
        return False
    os.unlink(probe)
    return True


def mount_options(target):
    for line in read("/proc/self/mounts").splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[1] == target:
            return fields[3].split(",")
    return None


def cgroup_value(controller, name):
    # With a private cgroup namespace the task's own cgroup is the root of the mount; with the
    # host's, it is the path /proc/self/cgroup names.
    candidates = [f"/sys/fs/cgroup/{controller}/{name}"]
    for line in read("/proc/self/cgroup").splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            candidates.append(f"/sys/fs/cgroup/{controller}{path}/{name}")
    for candidate in candidates:
        if os.path.exists(candidate):
            return read(candidate)
    return None


def readlink(path):
    try:
        return os.readlink(path)
    except OSError as exc:
        return f"error: {exc.strerror}"


def listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        return f"error: {exc.strerror}"


def can_connect_out():
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=1).close()
    except OSError:
        return False
    return True


report = {
    "hostname": socket.gethostname(),
    "uid": os.getuid(),
    "gid": os.getgid(),
    "cap_eff": status_field("CapEff"),
    "cap_bnd": status_field("CapBnd"),
    "no_new_privs": status_field("NoNewPrivs"),
    "seccomp": status_field("Seccomp"),
    "root_writable": writable("/"),
    "tmp_writable": writable("/tmp"),
    "tmp_options": mount_options("/tmp"),
    "home_writable": writable("/home/user"),
    "home_options": mount_options("/home/user"),
    "interfaces": listdir("/sys/class/net"),
    "connect_out": can_connect_out(),
    "pids_max": cgroup_value("pids", "pids.max"),
    "memory_limit": cgroup_value("memory", "memory.limit_in_bytes"),
    "memsw_limit": cgroup_value("memory", "memory.memsw.limit_in_bytes"),
    "cpu_quota": cgroup_value("cpu", "cpu.cfs_quota_us"),
    "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
    "pid1": read("/proc/1/cmdline").split("\0")[0],
    "ipc_ns": readlink("/proc/self/ns/ipc"),
    # gVisor reports its own kernel version (4.4.0), not the host's.
    "kernel": os.uname().release,
}
print("SBX-PROBE " + json.dumps(report, sort_keys=True), flush=True)
