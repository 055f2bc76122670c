"""What an image build needs to know about this host: which base image, and whether pip in the
build must trust the host's CA bundle (a TLS-intercepting proxy).

Interception is detected, never assumed: a TLS handshake to the package index that the base
image's own CA store rejects while this host's bundle accepts means a proxy re-signs the
traffic, and only then do builds trust the host's bundle. Verification is never turned off.
``SELFBOX_TRUST_HOST_CA=1``/``0`` and ``SELFBOX_BASE_IMAGE`` override the detection.

Standard library only, and runnable as a script (``scripts/compose-setup.sh`` runs
``python3 sandbox_server/buildhost.py plan`` before any venv exists); the same file, piped into
a container of the base image, is the image-side probe (``handshake HOST PORT``).
"""

from __future__ import annotations

import argparse
import enum
import os
import socket
import ssl
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_BASE",
    "LOCAL_BASE",
    "BasePullError",
    "BuildPlan",
    "Handshake",
    "Interception",
    "choose_base_image",
    "classify",
    "detect_interception",
    "handshake",
    "host_ca_bundle",
    "index_address",
    "plan",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASE = "python:3.11-slim"
LOCAL_BASE = "selfbox/base:bookworm"
HOST_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
DEFAULT_INDEX = "https://pypi.org/simple"
PROBE_TIMEOUT_S = 10.0
Log = Callable[[str], None]


class Handshake(enum.Enum):
    OK = "ok"                    # the certificate chain verified
    UNTRUSTED = "untrusted"      # the peer answered, its chain did not verify
    UNREACHABLE = "unreachable"  # no TLS peer (DNS, refused, timeout): says nothing about CAs


class Interception(enum.Enum):
    INTERCEPTED = "intercepted"  # the image rejects the chain, the host accepts it
    DIRECT = "direct"            # the image accepts the chain: nothing to do
    UNKNOWN = "unknown"          # one side could not tell (no network, or both reject)


class BasePullError(RuntimeError):
    """The base image is neither here nor pullable."""


@dataclass(frozen=True)
class BuildPlan:
    base_image: str
    trust_host_ca: bool
    host_ca_bundle: Path | None


def handshake(host: str, port: int, cafile: str | None = None,
              timeout_s: float = PROBE_TIMEOUT_S) -> Handshake:
    """A verified TLS handshake with ``cafile`` (``None``: the default store of this Python)."""
    context = ssl.create_default_context(cafile=cafile)
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as raw, \
                context.wrap_socket(raw, server_hostname=host):
            return Handshake.OK
    except ssl.SSLCertVerificationError:
        return Handshake.UNTRUSTED
    except (OSError, ssl.SSLError):
        return Handshake.UNREACHABLE


def classify(image: Handshake, host: Handshake) -> Interception:
    if image is Handshake.OK:
        return Interception.DIRECT
    if image is Handshake.UNTRUSTED and host is Handshake.OK:
        return Interception.INTERCEPTED
    return Interception.UNKNOWN


def index_address(index_url: str | None = None) -> tuple[str, int]:
    """Host and port of the index pip uses in the builds (``PIP_INDEX_URL`` or PyPI)."""
    url = urllib.parse.urlsplit(index_url or os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX)
    return url.hostname or "pypi.org", url.port or 443


def host_ca_bundle() -> Path | None:
    return next((Path(p) for p in HOST_CA_BUNDLES if Path(p).is_file()), None)


def image_handshake(base_image: str, host: str, port: int) -> Handshake:
    """The handshake as the base image sees it: this file run by the image's python3."""
    command = ["docker", "run", "--rm", "-i", "--label", "io.selfbox.probe=tls",
               "--entrypoint", "python3", base_image, "-", "handshake", host, str(port),
               "--pip-store"]
    try:
        result = subprocess.run(command, input=Path(__file__).read_bytes(), capture_output=True,
                                timeout=PROBE_TIMEOUT_S + 50)
    except (OSError, subprocess.TimeoutExpired):
        return Handshake.UNREACHABLE
    try:
        return Handshake(result.stdout.decode().strip())
    except ValueError:
        return Handshake.UNREACHABLE


def detect_interception(host: str, port: int, host_cafile: str,
                        image_probe: Callable[[str, int], Handshake]) -> Interception:
    return classify(image_probe(host, port), handshake(host, port, host_cafile))


def _docker_ok(*args: str, timeout_s: float = 60) -> bool:
    try:
        return subprocess.run(["docker", *args], capture_output=True,
                              timeout=timeout_s).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def choose_base_image(explicit: str | None, log: Log, local_base: bool = False) -> str:
    """``explicit`` if given (pulled when missing), else the official base when it is here or
    pullable, else the local Debian-built base (built on the spot when missing)."""
    if local_base or (explicit is None and not (
            _docker_ok("image", "inspect", DEFAULT_BASE)
            or _docker_ok("pull", "-q", DEFAULT_BASE, timeout_s=300))):
        if not local_base:
            log(f"cannot pull the base image {DEFAULT_BASE} (no registry reachable): using the "
                f"local base {LOCAL_BASE}, built from Debian packages when missing")
        subprocess.run(["bash", str(REPO_ROOT / "scripts" / "build-local-base.sh"), LOCAL_BASE],
                       check=True, stdout=sys.stderr)
        return LOCAL_BASE
    base = explicit or DEFAULT_BASE
    if not (_docker_ok("image", "inspect", base)
            or _docker_ok("pull", "-q", base, timeout_s=300)):
        raise BasePullError(
            f"the base image {base} is not here and could not be pulled (no registry "
            f"reachable?): build with --local-base to build {LOCAL_BASE} from Debian packages "
            f"(the scripts and compose-setup.sh do when SELFBOX_BASE_IMAGE is unset, in the "
            f"environment and in .env), or name another with --base-image")
    return base


def _trust_setting() -> bool | None:
    raw = os.environ.get("SELFBOX_TRUST_HOST_CA", "").strip().lower()
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("0", "false", "no"):
        return False
    return None  # unset or "auto": detect


def decide_trust(base_image: str, log: Log, override: bool | None = None,
                 image_probe: Callable[[str, int], Handshake] | None = None,
                 bundle: Path | None = None) -> BuildPlan:
    """Whether builds on ``base_image`` trust the host's CA ``bundle`` (default: the system's):
    ``override`` (else ``SELFBOX_TRUST_HOST_CA``) when set, else what the handshakes say."""
    bundle = bundle or host_ca_bundle()
    wanted = override if override is not None else _trust_setting()
    if wanted is not None:
        if wanted and bundle is None:
            raise FileNotFoundError(f"SELFBOX_TRUST_HOST_CA=1 but no CA bundle at any of "
                                    f"{', '.join(HOST_CA_BUNDLES)}")
        return BuildPlan(base_image, wanted, bundle if wanted else None)
    if bundle is None:
        return BuildPlan(base_image, False, None)
    host, port = index_address()
    probe = image_probe or (lambda h, p: image_handshake(base_image, h, p))
    verdict = detect_interception(host, port, str(bundle), probe)
    if verdict is Interception.INTERCEPTED:
        log(f"TLS to {host}:{port} is intercepted ({base_image}'s CA store rejects the "
            f"certificate, this host's accepts it): image builds trust the host's CA bundle "
            f"{bundle} (SELFBOX_TRUST_HOST_CA=0 to refuse)")
        return BuildPlan(base_image, True, bundle)
    return BuildPlan(base_image, False, None)


def plan(log: Log, base_image: str | None = None, local_base: bool = False,
         trust: bool | None = None) -> BuildPlan:
    explicit = base_image or os.environ.get("SELFBOX_BASE_IMAGE") or None
    base = choose_base_image(explicit, log, local_base=local_base)
    return decide_trust(base, log, override=trust)


def _pip_ca_store() -> str | None:
    """The bundle pip verifies with (its vendored certifi; Debian's pip points it at the
    system store), else None: this Python's default store."""
    try:
        from pip._vendor import certifi  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    where: str = certifi.where()
    return where


def _log(message: str) -> None:
    print(f"[selfbox] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    probe = commands.add_parser("handshake", help="print ok, untrusted or unreachable")
    probe.add_argument("host")
    probe.add_argument("port", type=int)
    probe.add_argument("--cafile", default=None)
    probe.add_argument("--pip-store", action="store_true",
                       help="verify with the CA store pip uses here (its certifi), if any")
    commands.add_parser("plan", help="print SELFBOX_BASE_IMAGE=... and SELFBOX_TRUST_HOST_CA=...")
    args = parser.parse_args(argv)
    if args.command == "handshake":
        cafile = args.cafile
        if cafile is None and args.pip_store:
            cafile = _pip_ca_store()
        print(handshake(args.host, args.port, cafile).value)
        return 0
    try:
        chosen = plan(_log)
    except (BasePullError, FileNotFoundError, subprocess.CalledProcessError) as exc:
        _log(str(exc))
        return 1
    print(f"SELFBOX_BASE_IMAGE={chosen.base_image}")
    print(f"SELFBOX_TRUST_HOST_CA={int(chosen.trust_host_ca)}")
    print(f"HOST_CA_BUNDLE={chosen.host_ca_bundle or ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
