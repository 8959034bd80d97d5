"""A throwaway CA and a server certificate for 127.0.0.1, made with the openssl command line."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from orchestrator.local import TlsFiles

EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def openssl_missing() -> str | None:
    """Why certificates cannot be made here, or None when they can."""
    return None if shutil.which("openssl") else "the openssl command is not installed"


def make_certs(folder: Path) -> TlsFiles:
    """A CA, and a certificate it signed for 127.0.0.1 and localhost, valid for a day."""
    ca, ca_key = folder / "ca.crt", folder / "ca.key"
    cert, key, request = folder / "redis.crt", folder / "redis.key", folder / "redis.csr"
    names = folder / "names.ext"
    names.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run = ["openssl", "req", "-x509", *EC_KEY, "-keyout", str(ca_key), "-out", str(ca)]
    subprocess.run([*run, "-days", "1", "-subj", "/CN=ao-test-ca"], check=True, capture_output=True)
    run = ["openssl", "req", *EC_KEY, "-keyout", str(key), "-out", str(request)]
    subprocess.run([*run, "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    sign = ["openssl", "x509", "-req", "-in", str(request), "-CA", str(ca), "-CAkey", str(ca_key)]
    sign += ["-CAcreateserial", "-out", str(cert), "-days", "1", "-extfile", str(names)]
    subprocess.run(sign, check=True, capture_output=True)
    return TlsFiles(cert=cert, key=key, ca=ca)
