"""selfbox's own seccomp profile for sandbox containers.

Docker's default profile is written for containers that may hold capabilities; a sandbox holds
none (``cap_drop=ALL``, no-new-privileges), so the capability-gated parts of the default never
apply, and what is left is an allowlist that still lets any process use io_uring (a kernel
subsystem with a long record of privilege-escalation bugs and no use in a Python sandbox). This
profile is that allowlist, minus what a Python sandbox does not need:

* ``io_uring_setup``, ``io_uring_enter``, ``io_uring_register``: denied (EPERM).
* ``ptrace``, ``process_vm_readv``/``writev``: denied; debuggers are not part of the sandbox.
* ``userfaultfd``, ``keyctl``, ``add_key``, ``request_key``, ``bpf``, ``perf_event_open``,
  ``unshare``, ``setns``, ``mount`` and friends: not in the allowlist, so denied (Docker
  allows the last few only with CAP_SYS_ADMIN, which a sandbox never has).
* ``clone`` is allowed only without namespace flags; ``clone3`` gets ENOSYS so that libc falls
  back to ``clone`` (its flags live in memory, where seccomp cannot inspect them).
* ``socket`` is allowed except for AF_VSOCK; ``personality`` only for the harmless values.

Everything else a CPython process, its threads, subprocesses, numpy/pandas/matplotlib and pip
use is allowed (``tests/server/test_seccomp.py`` runs them). Syscalls newer than the allowlist
are denied with EPERM, as Docker does. The same profile is written to
``images/seccomp/selfbox.json`` for operators (``selfbox seccomp``; a test keeps it in sync).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["DENIED_ON_PURPOSE", "profile", "profile_json"]

EPERM, ENOSYS = 1, 38
AF_VSOCK = 40
# CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWTIME: any of them set is refused.
CLONE_NAMESPACE_FLAGS = 0x7E020080

# Grouped by what they are for; a syscall the kernel of the host does not know is ignored by
# runc when it loads the profile.
_FILES = """
access chdir chmod chown close close_range copy_file_range creat dup dup2 dup3 faccessat
faccessat2 fadvise64 fallocate fchdir fchmod fchmodat fchown fchownat fcntl fdatasync
fgetxattr flistxattr flock fremovexattr fsetxattr fstat fstatfs fsync ftruncate futimesat
getcwd getdents getdents64 getxattr inotify_add_watch inotify_init inotify_init1
inotify_rm_watch lchown lgetxattr link linkat listxattr llistxattr lremovexattr lseek lsetxattr
lstat mkdir mkdirat mknod mknodat name_to_handle_at newfstatat open openat openat2 pipe pipe2
pread64 preadv preadv2 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv
removexattr rename renameat renameat2 rmdir sendfile setxattr splice stat statfs statx symlink
symlinkat sync sync_file_range syncfs tee truncate umask unlink unlinkat utime utimensat
utimes vmsplice write writev fanotify_mark memfd_create
"""
_AIO = "io_cancel io_destroy io_getevents io_pgetevents io_setup io_submit"
_MEMORY = """
brk madvise membarrier mincore mlock mlock2 mlockall mmap mprotect mremap msync munlock
munlockall munmap pkey_alloc pkey_free pkey_mprotect remap_file_pages
"""
_PROCESSES = """
execve execveat exit exit_group fork vfork wait4 waitid kill tgkill tkill pidfd_open
pidfd_send_signal getpid getppid gettid getpgid getpgrp getsid setpgid setsid prctl
arch_prctl set_tid_address set_robust_list get_robust_list rseq set_thread_area
get_thread_area modify_ldt capget capset getpriority setpriority getrlimit setrlimit
prlimit64 getrusage sched_getaffinity sched_setaffinity sched_getattr sched_setattr
sched_getparam sched_setparam sched_getscheduler sched_setscheduler sched_get_priority_max
sched_get_priority_min sched_rr_get_interval sched_yield ioprio_get ioprio_set seccomp
restart_syscall uname sysinfo getcpu getrandom get_mempolicy
"""
_IDS = """
getuid geteuid getgid getegid getgroups getresuid getresgid setuid setgid setreuid setregid
setresuid setresgid setfsuid setfsgid setgroups
"""
_SIGNALS_TIME = """
rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
rt_sigtimedwait rt_tgsigqueueinfo sigaltstack signalfd signalfd4 pause alarm nanosleep
clock_nanosleep clock_gettime clock_getres gettimeofday time times getitimer setitimer
adjtimex clock_adjtime timer_create timer_delete timer_getoverrun timer_gettime
timer_settime timerfd_create timerfd_gettime timerfd_settime futex futex_waitv
"""
_POLLING = """
select pselect6 poll ppoll epoll_create epoll_create1 epoll_ctl epoll_pwait epoll_pwait2
epoll_wait eventfd eventfd2 ioctl
"""
_SOCKETS_IPC = """
accept accept4 bind connect getpeername getsockname getsockopt setsockopt listen recvfrom
recvmsg recvmmsg sendto sendmsg sendmmsg shutdown socketpair
mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedsend mq_unlink msgctl msgget msgrcv
msgsnd semctl semget semop semtimedop shmat shmctl shmdt shmget
"""

ALLOWED: tuple[str, ...] = tuple(sorted({
    name for group in (_FILES, _AIO, _MEMORY, _PROCESSES, _IDS, _SIGNALS_TIME, _POLLING,
                       _SOCKETS_IPC)
    for name in group.split()
}))

# What Docker's default lets a capability-less container do and this profile does not, or
# what an operator might expect to find here: checked by the tests to stay out of ALLOWED.
DENIED_ON_PURPOSE: tuple[str, ...] = (
    "io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd", "keyctl",
    "add_key", "request_key", "bpf", "perf_event_open", "unshare", "setns", "mount",
    "umount2", "pivot_root", "chroot", "ptrace", "process_vm_readv", "process_vm_writev",
    "kcmp", "open_by_handle_at", "fsopen", "fsmount", "move_mount", "open_tree",
    "init_module", "finit_module", "kexec_load", "reboot", "swapon", "acct", "syslog",
    "lookup_dcookie", "quotactl", "mbind", "set_mempolicy",
)


def profile() -> dict[str, Any]:
    """The profile as Docker's ``--security-opt seccomp=<json>`` takes it."""
    rules: list[dict[str, Any]] = [
        {"names": list(ALLOWED), "action": "SCMP_ACT_ALLOW"},
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0,
                   "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
    ]
    # personality(2): query (0xffffffff), PER_LINUX (0), and the flags 32-bit tools set.
    for value in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF):
        rules.append({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}]})
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64",
             "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        ],
        "syscalls": rules,
    }


def profile_json() -> str:
    """Compact JSON, as it goes into a container's ``security_opt``."""
    return json.dumps(profile(), separators=(",", ":"), sort_keys=True)
