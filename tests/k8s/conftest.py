"""Fixtures of the Kubernetes tests: the real helm, the KubeRay CRDs, and a loopback API stand-in."""

from __future__ import annotations

import datetime
import ipaddress
import json
import shutil
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "videop2r"
CRD_DIR = ROOT / "infra" / "kuberay-crds"  # vendored, with their licence and KubeRay commit
VALUE_SETS = {
    "default": None,
    "everything": CHART / "ci" / "everything-values.yaml",
    "external-s3": CHART / "ci" / "external-s3-values.yaml",
    "external-judge": CHART / "ci" / "external-judge-values.yaml",
    "cpu-only": CHART / "ci" / "cpu-only-values.yaml",
    "rehearsal": CHART / "ci" / "rehearsal-values.yaml",
}
MONITORING_API = "monitoring.coreos.com/v1"
NAMESPACE = "ml"


def helm_binary() -> str | None:
    local = ROOT / ".tools" / "bin" / "helm"
    return str(local) if local.is_file() else shutil.which("helm")


@pytest.fixture(scope="session")
def helm() -> str:
    binary = helm_binary()
    if binary is None:
        pytest.skip("helm is not installed (run `bash infra/tools/helm.sh`)")
    return binary


REQUIRED_VALUES = Path(__file__).with_name("required-values.yaml")


def run_helm(helm: str, *args: str, bare: bool = False) -> subprocess.CompletedProcess:
    """Run helm; `template`/`lint`/`install` start from REQUIRED_VALUES (first -f: later ones win)
    unless `bare`."""
    args_list = list(args)
    if not bare and args_list and args_list[0] in ("template", "lint", "install", "upgrade"):
        args_list[1:1] = ["-f", str(REQUIRED_VALUES)]
    return subprocess.run([helm, *args_list], capture_output=True, text=True, timeout=60)


@dataclass
class Rendered:
    """The objects `helm template` produced for one value set."""

    name: str
    objects: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.name}: expected one {kind} {name}, found {len(found)}"
        return found[0]


def render(helm: str, values: Path | None, *extra: str, monitoring: bool = True) -> Rendered:
    args = ["template", "rel", str(CHART), "--namespace", NAMESPACE, *extra]
    if values is not None:
        args += ["-f", str(values)]
    if monitoring:
        args += ["--api-versions", MONITORING_API]
    done = run_helm(helm, *args)
    assert done.returncode == 0, done.stderr
    objects = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    return Rendered(values.stem if values else "default", objects)


@pytest.fixture(scope="session")
def rendered(helm: str) -> dict[str, Rendered]:
    """Every value set rendered once per session (with the Prometheus Operator's API present)."""
    return {name: render(helm, values) for name, values in VALUE_SETS.items()}


@pytest.fixture(scope="session")
def crd_schemas():
    from videop2r.k8s.crd_schema import load_crd

    schemas = [schema for path in sorted(CRD_DIR.glob("ray.io_*.yaml")) for schema in load_crd(path)]
    assert schemas, f"no KubeRay CRDs under {CRD_DIR}"
    return schemas


# -- a loopback Kubernetes API stand-in --------------------------------------------------------

@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    content_type: str = "application/json"


@dataclass
class ApiRecorder:
    """Records every request; answers from `routes[(METHOD, path)]` (a list: one reply per call,
    the last one repeated). Anything else gets the API server's plain-text "404 page not found"."""

    calls: list[Call] = field(default_factory=list)
    routes: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)
    url: str = ""

    def on(self, method: str, path: str, *replies: tuple) -> None:
        """Answer `method path` with these replies, each (status, body[, content type])."""
        self.routes[(method, path)] = [Reply(*r) for r in replies]

    def reply_for(self, method: str, path: str) -> Reply:
        queue = self.routes.get((method, path))
        if not queue:
            return Reply(404, "404 page not found\n", "text/plain")
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def kubeconfig(self, directory: Path, namespace: str | None = "ml", token: str = "t0ken") -> Path:
        context = {"cluster": "loop", "user": "tester", **({"namespace": namespace} if namespace else {})}
        doc = {
            "apiVersion": "v1", "kind": "Config", "current-context": "loop",
            "clusters": [{"name": "loop", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": token}}],
            "contexts": [{"name": "loop", "context": context},
                         {"name": "other", "context": {"cluster": "loop", "user": "tester", "namespace": "other-ns"}}],
        }
        path = directory / "kubeconfig"
        path.write_text(yaml.safe_dump(doc))
        return path


def _handler(recorder: ApiRecorder):
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            parts = urlsplit(self.path)
            recorder.calls.append(Call(self.command, parts.path, parse_qs(parts.query),
                                       {k.lower(): v for k, v in self.headers.items()}, body))
            reply = recorder.reply_for(self.command, parts.path)
            payload = reply.body if isinstance(reply.body, (str, bytes)) else json.dumps(reply.body)
            payload = payload.encode() if isinstance(payload, str) else payload
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

    return Handler


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA (the in-cluster client verifies against it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "ca.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _start(recorder: ApiRecorder, tls: tuple[Path, Path] | None):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
    scheme = "http"
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    recorder.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A plain-HTTP API stand-in, with $KUBECONFIG pointing at it and no ~/.kube/config."""
    recorder = ApiRecorder()
    server, thread = _start(recorder, None)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBECONFIG", str(recorder.kubeconfig(tmp_path)))
    yield recorder
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def tls_api(tmp_path: Path):
    """An HTTPS API stand-in and the CA certificate that verifies it."""
    recorder = ApiRecorder()
    cert, key = _self_signed(tmp_path)
    server, thread = _start(recorder, (cert, key))
    yield recorder, cert
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def render_chart(helm: str):
    """`render_chart(values_file_or_None, *helm_args, monitoring=True) -> Rendered`."""
    return lambda values=None, *extra, monitoring=True: render(helm, values, *extra, monitoring=monitoring)


@pytest.fixture(scope="session")
def helm_run(helm: str):
    """`helm_run(*args, bare=False) -> CompletedProcess` with the real helm."""
    return lambda *args, bare=False: run_helm(helm, *args, bare=bare)
