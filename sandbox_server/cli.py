"""The ``selfbox`` command: ``selfbox serve``, ``selfbox check``, ``selfbox images build``."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .buildhost import DEFAULT_BASE, LOCAL_BASE

__all__ = ["main"]

REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGES = {"runtime": "selfbox/runtime:latest", "server": "selfbox/server:latest",
          "egress-gateway": "selfbox/egress-gateway:latest"}


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .app import create_app
        from .observability import logging_config
        from .settings import Settings
    except ImportError as exc:
        print(f"selfbox serve needs the server extra: pip install 'selfbox[server]' ({exc})",
              file=sys.stderr)
        return 2
    from pydantic import ValidationError

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for error in exc.errors():
            name = "SELFBOX_" + "_".join(str(part) for part in error["loc"][:1]).upper()
            print(f"invalid setting {name}: {error['msg']}", file=sys.stderr)
        return 2
    # uvloop and httptools (the server extra) when present: a third of the CPU per request.
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, loop=loop,
                http=http,
                log_level=settings.log_level, timeout_graceful_shutdown=int(
                    settings.shutdown_timeout_s),
                log_config=logging_config(settings.log_format, settings.log_level))
    return 0


def _image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def _log(message: str) -> None:
    print(f"[selfbox] {message}", file=sys.stderr, flush=True)


def _build(args: argparse.Namespace) -> int:
    from . import buildhost

    args.images = args.images or ["runtime"]
    unknown = sorted(set(args.images) - set(IMAGES))
    if unknown:
        print(f"unknown image(s) {unknown}; choose from {sorted(IMAGES)}", file=sys.stderr)
        return 2
    if shutil.which("docker") is None:
        print("docker is not installed; run scripts/ensure-docker.sh", file=sys.stderr)
        return 2
    try:
        plan = buildhost.plan(_log, base_image=args.base_image, local_base=args.local_base,
                              trust=args.trust_host_ca)
    except (buildhost.BasePullError, FileNotFoundError) as exc:
        print(exc, file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as exc:
        print(f"building the local base image failed ({exc.returncode}): see "
              "scripts/build-local-base.sh's output above", file=sys.stderr)
        return exc.returncode or 1
    # The bundle goes into the build context only for the build; one the caller put there
    # (scripts/compose-setup.sh, for compose's builds) stays.
    placed: list[Path] = []
    if plan.host_ca_bundle is not None:
        for name in args.images:
            target = REPO_ROOT / "images" / name / "certs" / "host-ca.crt"
            if target.parent.is_dir():
                if not target.exists():
                    placed.append(target)
                shutil.copyfile(plan.host_ca_bundle, target)
    try:
        for name in args.images:
            tag = IMAGES[name]
            if args.if_missing and _image_exists(tag):
                print(f"{tag} exists (--if-missing)")
                continue
            command = [
                "docker", "build", "-q", "-f", str(REPO_ROOT / "images" / name / "Dockerfile"),
                "-t", tag, "--build-arg", f"BASE_IMAGE={plan.base_image}",
                "--build-arg", f"TRUST_HOST_CA={int(plan.trust_host_ca)}",
                str(REPO_ROOT),
            ]
            print("+", " ".join(command), flush=True)
            subprocess.run(command, check=True)
    except subprocess.CalledProcessError as exc:
        print(f"image build failed ({exc.returncode})", file=sys.stderr)
        if not plan.trust_host_ca:
            print("if pip reported CERTIFICATE_VERIFY_FAILED, a TLS-intercepting proxy that the "
                  "detection missed re-signs the traffic: build with --trust-host-ca (the "
                  "scripts: SELFBOX_TRUST_HOST_CA=1) to trust this host's CA bundle",
                  file=sys.stderr)
        return exc.returncode or 1
    finally:
        for target in placed:
            target.unlink(missing_ok=True)
    return 0


def _check(args: argparse.Namespace) -> int:
    from .audit import audit

    key = args.api_key or os.environ.get("SELFBOX_API_KEY", "")
    if not key:
        print("selfbox check needs --api-key or SELFBOX_API_KEY", file=sys.stderr)
        return 2
    try:
        findings = audit(args.url, key)
    except Exception as exc:
        print(f"selfbox check could not probe {args.url}: {exc}", file=sys.stderr)
        return 2
    for finding in findings:
        print(f"{finding.verdict:<5} {finding.name:<32} {finding.detail}")
    failed = [f for f in findings if f.verdict == "FAIL"]
    print(f"\n{len(findings) - len(failed)} of {len(findings)} checks passed"
          + (f"; {len(failed)} FAILED" if failed else ""))
    return 1 if failed else 0


def _seccomp(args: argparse.Namespace) -> int:
    from .seccomp import profile

    print(json.dumps(profile(), indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="selfbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the sandbox server (SELFBOX_* settings)")
    serve.add_argument("--host", default=None, help="bind address (SELFBOX_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (SELFBOX_PORT, 8000)")
    serve.set_defaults(func=_serve)

    check = commands.add_parser("check", help="audit a running server's sandbox hardening")
    check.add_argument("--url", default=os.environ.get("SELFBOX_URL", "http://127.0.0.1:8000"),
                       help="server URL (SELFBOX_URL)")
    check.add_argument("--api-key", default=None, help="API key (SELFBOX_API_KEY)")
    check.set_defaults(func=_check)

    seccomp = commands.add_parser(
        "seccomp", help="print the seccomp profile every sandbox runs with (JSON)")
    seccomp.set_defaults(func=_seccomp)

    images = commands.add_parser("images", help="manage selfbox's Docker images")
    image_commands = images.add_subparsers(dest="images_command", required=True)
    build = image_commands.add_parser("build", help="build the runtime (and server) images")
    build.add_argument("images", nargs="*", metavar="IMAGE",
                       help=f"which images: {', '.join(sorted(IMAGES))} (default: runtime)")
    build.add_argument("--base-image", default=None,
                       help=f"base image (SELFBOX_BASE_IMAGE; default {DEFAULT_BASE}, or "
                       f"{LOCAL_BASE} when no registry answers)")
    build.add_argument("--local-base", action="store_true",
                       help="build a base from Debian packages first (hosts without a registry)")
    build.add_argument("--trust-host-ca", action=argparse.BooleanOptionalAction, default=None,
                       help="let pip in the build trust this host's CA bundle (TLS proxies; "
                       "SELFBOX_TRUST_HOST_CA=1/0; default: detected)")
    build.add_argument("--if-missing", action="store_true",
                       help="skip images that exist (by default Docker's layer cache makes a "
                       "rebuild of unchanged sources take seconds)")
    build.set_defaults(func=_build)

    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
