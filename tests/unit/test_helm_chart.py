"""The Helm chart (helm/dockroute), linted and rendered by Helm's own engine.

No ``helm`` binary exists on these machines; PyPI's ``helm-sdkpy`` bundles Helm as a shared library and
needs Python >= 3.12, so it lives in a venv of pyenv's 3.12 (made once per machine, a lock serialising
xdist workers, reused later). A script run in that venv:

- lints the chart (``helm lint``: Helm reads only the chart's own values.yaml there, so the chart is
  copied with the test's values merged in; severity 3 is an error);
- renders it: helm-sdkpy has no ``helm template``, so ``Install`` runs against a stand-in Kubernetes API on
  127.0.0.1 that answers discovery and accepts what Helm creates; the release's manifest is what
  ``helm template`` would print (templates that ``fail`` fail here, where lint only logs them);
- validates every rendered object against Kubernetes' JSON schemas (``kubernetes-validate``, strict:
  unknown fields refused); the ServiceMonitor is a custom resource with no schema there.

The rendered static configuration is then loaded by dockroute itself, as the pod would.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from acme_client.kubernetes.settings import KubernetesStore, parse_storage
from discover.parse import parse_dynamic_with_warnings
from dockroute.static import load_static
from tests.tool_venv import tool_venv
from tests.unavailable import unavailable

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "dockroute"
HELM_VENV = Path("/tmp/dockroute-test-helm-venv")
HELM_REQUIREMENTS = ["helm-sdkpy>=0.1.32,<0.2", "kubernetes-validate>=1.30"]

# Values the chart is rendered with.
DAEMONSET = {"kind": "DaemonSet"}
FULL = {
    "replicas": 2,
    "accessLog": True,
    "ports": {
        "web": {"redirectTo": "websecure", "nodePort": 30080},
        "websecure": {"nodePort": 30443, "tls": {"certResolver": "letsencrypt"}},
    },
    "service": {"type": "NodePort", "externalTrafficPolicy": "Local"},
    "metrics": {"prometheus": {"enabled": True, "serviceMonitor": {"enabled": True}}},
    "staticConfig": {
        "certificatesResolvers": {
            "letsencrypt": {
                "acme": {
                    "email": "ops@example.com",
                    "storage": "/data/acme.json",
                    "httpChallenge": {"entryPoint": "web"},
                }
            }
        },
        "entryPoints": {"websecure": {"forwardedHeaders": {"trustedIPs": ["10.0.0.0/8"]}}},
    },
    "dynamic": {
        "http": {
            "routers": {
                "whoami": {
                    "rule": "Host(`whoami.example.com`)",
                    "entryPoints": ["websecure"],
                    "service": "whoami",
                }
            },
            "services": {
                "whoami": {
                    "loadBalancer": {"servers": [{"url": "http://whoami.default.svc.cluster.local:80"}]}
                }
            },
        }
    },
}
# ClusterIP, no volume, and the file provider only (no Ingress provider: no API access at all).
CLUSTER_IP = {
    "service": {"type": "ClusterIP"},
    "persistence": {"enabled": False},
    "providers": {"kubernetesIngress": {"enabled": False}},
}
# A DaemonSet with an ACME resolver (shared certificates: one pod per node) and a Deployment of two
# replicas that turns the sharing off.
DAEMONSET_ACME = {
    "kind": "DaemonSet",
    "staticConfig": FULL["staticConfig"],
    "sharedCertificates": {"leaseDuration": 30},
}
UNSHARED = {"replicas": 2, "staticConfig": FULL["staticConfig"], "sharedCertificates": {"enabled": False}}
# Extra entry points for tcp.routers and udp.routers: one on a hostPort and a nodePort, a UDP one on Service
# port 53, one kept out of the Service (Traefik's chart's `expose: {default: false}`).
EXTRA_PORTS = {
    "kind": "DaemonSet",
    "service": {"type": "NodePort"},
    "ports": {
        "postgres": {"port": 5432, "hostPort": 5432, "nodePort": 30432},
        "dns": {"port": 5353, "exposedPort": 53, "protocol": "UDP"},
        "admin": {"port": 9000, "expose": {"default": False}},
    },
}
RENDERED = {
    "default": {},
    "daemonset": DAEMONSET,
    "full": FULL,
    "clusterip": CLUSTER_IP,
    "daemonset-acme": DAEMONSET_ACME,
    "unshared": UNSHARED,
    "extra-ports": EXTRA_PORTS,
}

RENDER_SCRIPT = r'''"""Lint and render a chart with helm-sdkpy (Helm's engine), in a venv of Python >= 3.12.

argv: CHART_DIR VALUES_JSON. Prints JSON: {"lint": <Helm's lint result>, "objects": [<rendered manifests>],
"notes": <NOTES.txt>}. Helm lint reads only the chart's values.yaml, so the chart is copied with the
values merged in. Rendering: helm-sdkpy has no `helm template`, so Install runs against a stand-in
Kubernetes API on 127.0.0.1 that answers discovery and records every object Helm creates."""

import asyncio
import copy
import json
import shutil
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import helm_sdkpy
import kubernetes_validate
import yaml

RESOURCES = {
    "v1": [("configmaps", "ConfigMap", True), ("services", "Service", True),
           ("serviceaccounts", "ServiceAccount", True), ("secrets", "Secret", True),
           ("persistentvolumeclaims", "PersistentVolumeClaim", True), ("namespaces", "Namespace", False),
           ("pods", "Pod", True)],
    "apps/v1": [("deployments", "Deployment", True), ("daemonsets", "DaemonSet", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "networking.k8s.io/v1": [("ingressclasses", "IngressClass", False), ("ingresses", "Ingress", True)],
    "rbac.authorization.k8s.io/v1": [("clusterroles", "ClusterRole", False),
                                     ("clusterrolebindings", "ClusterRoleBinding", False),
                                     ("roles", "Role", True), ("rolebindings", "RoleBinding", True)],
    "monitoring.coreos.com/v1": [("servicemonitors", "ServiceMonitor", True)],
}


def merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class FakeAPI(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self):
        self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                         "code": 404, "message": "not found"})

    def do_GET(self):
        path = self.path.split("?")[0].rstrip("/")
        if path == "/version":
            return self._send(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0"})
        if path == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            groups = [gv for gv in RESOURCES if "/" in gv]
            return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": gv.split("/")[0], "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}],
                 "preferredVersion": {"groupVersion": gv, "version": gv.split("/")[1]}} for gv in groups]})
        for gv, res in RESOURCES.items():
            if path == ("/api/v1" if gv == "v1" else f"/apis/{gv}"):
                return self._send(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                                        "resources": [{"name": n, "singularName": "", "namespaced": ns,
                                                       "kind": k, "verbs": ["create", "get", "list", "update",
                                                                            "patch", "delete", "watch"]}
                                                      for n, k, ns in res]})
        if path.split("/")[-1] in {n for res in RESOURCES.values() for n, _, _ in res}:  # a list
            return self._send(200, {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                                    "items": []})
        return self._not_found()

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        ctype = self.headers.get("Content-Type", "")
        if "json" not in ctype:  # Helm's release record (a Secret, in protobuf): echoed as it came
            self.send_response(201)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
            return
        body = json.loads(raw or b"{}")
        body.setdefault("metadata", {})["resourceVersion"] = "1"
        return self._send(201, body)

    do_PUT = do_PATCH = do_POST


async def main(chart: str, overrides: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        copy_dir = Path(tmp) / Path(chart).name
        shutil.copytree(chart, copy_dir)
        values = yaml.safe_load((copy_dir / "values.yaml").read_text()) or {}
        (copy_dir / "values.yaml").write_text(yaml.safe_dump(merge(values, overrides)))
        lint = await helm_sdkpy.Lint(helm_sdkpy.Configuration()).run(str(copy_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        "users": [{"name": "fake", "user": {"token": "x"}}],
    })
    config = helm_sdkpy.Configuration(namespace="edge", kubeconfig=kubeconfig)
    try:
        result = await helm_sdkpy.Install(config).run("dr", chart, values=overrides, wait=False, timeout=60)
    except helm_sdkpy.HelmError as exc:  # a template that fails to render (`fail`, a syntax error)
        return {"lint": lint, "error": str(exc)}
    finally:
        server.shutdown()
    objects = [o for o in yaml.safe_load_all(result["manifest"]) if o]
    version = kubernetes_validate.latest_version()
    checks = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
            checks.append("valid")
        except kubernetes_validate.SchemaNotFoundError:
            checks.append("no schema")  # a custom resource (ServiceMonitor): not in Kubernetes' schemas
        except kubernetes_validate.ValidationError as exc:
            checks.append(f"invalid: {exc.message} at {'.'.join(map(str, exc.path))}")
    # The validator itself: a Deployment with a misspelt field and a wrong type must be refused.
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
           "spec": {"replicas": "one", "selector": {}, "template": {"spec": {"containerz": []}}}}
    try:
        kubernetes_validate.validate(bad, version, strict=True)
        rejects_bad = False
    except kubernetes_validate.ValidationError:
        rejects_bad = True
    return {"lint": lint, "objects": objects, "validation": checks, "validator_rejects_bad": rejects_bad,
            "kubernetes": version, "notes": (result.get("info") or {}).get("notes", "")}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))))
'''


def _python312() -> Path | None:
    """pyenv's Python 3.12 (the machines' documented one first), else any python3.12/3.13 on the PATH."""
    roots = [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")]
    if shutil.which("pyenv"):
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False)
        roots.insert(0, out.stdout.strip())
    for root in filter(None, roots):
        for exe in [
            Path(root, "versions", "3.12.1", "bin", "python3.12"),
            *sorted(Path(root).glob("versions/3.1[2-9]*/bin/python3")),
        ]:
            if exe.exists():
                return exe
    found = shutil.which("python3.12") or shutil.which("python3.13")
    return Path(found) if found else None


def _venv_python() -> Path:
    """The helm venv's Python, made and filled on first use. Without Python >= 3.12, or when pip cannot
    get the packages: a skip on a workstation, a failure in CI (the chart check must not vanish there)."""
    base = _python312()
    if base is None and not (HELM_VENV / "bin" / "python").exists():
        unavailable("helm-sdkpy needs Python >= 3.12: none found (pyenv install 3.12.1)")
    check = "import helm_sdkpy, kubernetes_validate"
    return tool_venv(HELM_VENV, base or "python3.12", HELM_REQUIREMENTS, check, "helm-sdkpy")


@functools.cache
def _script() -> Path:
    path = Path(tempfile.mkdtemp(prefix="dockroute-helm-")) / "render.py"
    path.write_text(RENDER_SCRIPT)
    return path


def _run(chart: Path, values: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [str(_venv_python()), str(_script()), str(chart), json.dumps(values)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"the helm script failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


@functools.cache
def _rendered(name: str) -> dict[str, Any]:
    """Lint, manifests and validation for one of RENDERED's value sets (once per worker)."""
    return _run(CHART, RENDERED[name])


def rendered(name: str) -> dict[str, Any]:
    out = _rendered(name)
    assert "error" not in out, f"the chart does not render with the {name} values: {out.get('error')}"
    return out


def objects(name: str, kind: str) -> list[dict[str, Any]]:
    return [o for o in rendered(name)["objects"] if o["kind"] == kind]


def one(name: str, kind: str) -> dict[str, Any]:
    found = objects(name, kind)
    assert len(found) == 1, f"{name}: {len(found)} {kind} objects"
    return found[0]


def workload(name: str) -> dict[str, Any]:
    kind = "DaemonSet" if RENDERED[name].get("kind") == "DaemonSet" else "Deployment"
    return one(name, kind)


def container(name: str) -> dict[str, Any]:
    (c,) = workload(name)["spec"]["template"]["spec"]["containers"]
    return c


def one_service(name: str) -> dict[str, Any]:
    """The main Service (not the metrics one)."""
    (svc,) = [s for s in objects(name, "Service") if not s["metadata"]["name"].endswith("-metrics")]
    return svc


def config_map(name: str) -> dict[str, str]:
    return one(name, "ConfigMap")["data"]


def lint_errors(lint: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in lint["Messages"] if m["Severity"] >= 3]


# -- lint and schemas -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(RENDERED))
def test_helm_lint_has_no_error(name):
    """The issue's acceptance: Helm lint passes with default values and with DaemonSet values."""
    lint = rendered(name)["lint"]
    assert lint["TotalChartsLinted"] == 1
    assert lint_errors(lint) == [] and not lint["Errors"], lint


def test_helm_lint_reports_a_broken_template(tmp_path):
    """The lint check can fail: a template that dereferences a missing value is a severity-3 error."""
    broken = tmp_path / "dockroute"
    shutil.copytree(CHART, broken)
    (broken / "templates" / "broken.yaml").write_text("x: {{ .Values.missing.deeper }}\n")
    assert lint_errors(_run(broken, {})["lint"])


def test_a_failing_template_stops_the_render():
    """Rendering (unlike lint, which only logs ``fail``) refuses values the chart rejects."""
    out = _run(CHART, {"kind": "StatefulSet"})
    assert "kind must be Deployment or DaemonSet" in out.get("error", ""), out


@pytest.mark.parametrize("name", list(RENDERED))
def test_every_manifest_validates_against_the_kubernetes_schemas(name):
    out = rendered(name)
    assert out["validator_rejects_bad"], "kubernetes-validate accepted a broken Deployment"
    assert out["objects"]
    for obj, check in zip(out["objects"], out["validation"], strict=True):
        if obj["kind"] == "ServiceMonitor":  # a custom resource: not in Kubernetes' schemas
            assert check == "no schema"
            continue
        assert check == "valid", f"{obj['kind']} {obj['metadata']['name']} ({out['kubernetes']}): {check}"


def test_chart_metadata():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2" and chart["name"] == "dockroute"
    assert chart["appVersion"] == project["version"]
    assert container("default")["image"] == f"ghcr.io/dockroute/dockroute:{project['version']}"


def test_default_objects():
    kinds = sorted(o["kind"] for o in rendered("default")["objects"])
    assert kinds == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "IngressClass",
            "PersistentVolumeClaim",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
        ]
    )  # no Role: one pod, no shared certificates, nothing of the API used in the release's namespace


# -- the pod --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["default", "daemonset", "clusterip"])
def test_security_context(name):
    pod = workload(name)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["fsGroup"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    # A token only for what uses the API: the Ingress provider (on by default), shared certificates.
    assert pod["automountServiceAccountToken"] is (name != "clusterip")
    sc = container(name)["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532 and sc["runAsGroup"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "privileged" not in sc
    # A read-only root: everything dockroute writes is a volume.
    mounts = {m["mountPath"] for m in container(name)["volumeMounts"] if not m.get("readOnly")}
    assert mounts == {"/data", "/tmp"}


@pytest.mark.parametrize("name", ["default", "daemonset", "full"])
def test_probes_on_ping(name):
    c = container(name)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/ping", "port": "traefik"}, probe
    static = yaml.safe_load(config_map(name)["dockroute.yaml"])
    assert static["ping"] == {"entryPoint": "traefik"}
    assert static["entryPoints"]["traefik"]["address"] == f":{ports['traefik']}"
    assert static["entryPoints"]["web"]["address"] == f":{ports['web']}"
    assert static["entryPoints"]["websecure"]["address"] == f":{ports['websecure']}"


@pytest.fixture
def kubeconfig(tmp_path, monkeypatch):
    """Credentials to be found, as a pod's service account is there (a Secret store needs some at start)."""
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


@pytest.mark.parametrize("name", list(RENDERED))
def test_static_config_loads_in_dockroute(name, tmp_path, kubeconfig):
    """The ConfigMap's static file, as ``dockroute --configFile`` reads it in the pod: no StaticConfigError,
    nothing reported as not acted on, no provider dockroute lacks, /ping where the probes look."""
    c = container(name)
    assert c["args"][0] == "--configFile=/etc/dockroute/dockroute.yaml"
    path = tmp_path / "dockroute.yaml"
    path.write_text(config_map(name)["dockroute.yaml"])
    static = load_static(c["args"][1:], {}, config_file=str(path), search_dirs=[])
    assert static.ignored == ()
    ingress = name != "clusterip"
    assert set(yaml.safe_load(path.read_text())["providers"]) == (
        {"file", "kubernetesIngress"} if ingress else {"file"}
    )
    assert static.docker_provider is None
    if ingress:
        assert static.kubernetes_ingress is not None
        assert static.kubernetes_ingress.ingress_class == "dockroute"  # the chart's IngressClass
        endpoint = static.kubernetes_ingress.ingress_endpoint
        if one_service(name)["spec"]["type"] == "LoadBalancer":
            assert endpoint is not None and endpoint.published_service == "edge/dr-dockroute"
        else:
            assert endpoint is None  # a NodePort's address needs the nodes; ClusterIP has none to give
    else:
        assert static.kubernetes_ingress is None
    assert static.file_provider is not None
    assert static.file_provider.filename == "/etc/dockroute/dynamic/dynamic.yaml"
    assert static.ping is not None and static.ping.entry_point == "traefik"
    extra = set(RENDERED[name].get("ports", {})) - {"web", "websecure", "traefik"}
    assert {e.name for e in static.entry_points} == {"web", "websecure", "traefik", *extra}
    websecure = next(e for e in static.entry_points if e.name == "websecure")
    assert websecure.tls is not None


def test_full_values_reach_dockroute(tmp_path, kubeconfig):
    path = tmp_path / "dockroute.yaml"
    path.write_text(config_map("full")["dockroute.yaml"])
    static = load_static([], {}, config_file=str(path), search_dirs=[])
    entries = {e.name: e for e in static.entry_points}
    assert entries["web"].redirection is not None and entries["web"].redirection.to == "websecure"
    assert entries["websecure"].tls.cert_resolver == "letsencrypt"
    assert entries["websecure"].address == ":8443"  # staticConfig merged over, not replacing, the generated
    assert list(static.resolvers) == ["letsencrypt"]
    assert static.metrics is not None and static.metrics.entry_point == "traefik"
    assert static.access_log is not None
    assert "Certificates are shared by the pods" in rendered("full")["notes"]
    assert "WARNING" not in rendered("full")["notes"]


@pytest.mark.parametrize("name", ["default", "full"])
def test_dynamic_value_is_the_file_providers_file(name):
    """The ``dynamic`` value is what the file provider reads, at the path the static config names."""
    cfg, warnings = parse_dynamic_with_warnings(yaml.safe_load(config_map(name)["dynamic.yaml"]))
    assert warnings == []
    assert list(cfg.routers) == (["whoami"] if name == "full" else [])
    pod = workload(name)["spec"]["template"]["spec"]
    mount = next(m for m in container(name)["volumeMounts"] if m["name"] == "dynamic")
    assert mount["mountPath"] == "/etc/dockroute/dynamic" and "subPath" not in mount  # updates reach it
    volume = next(v for v in pod["volumes"] if v["name"] == "dynamic")
    assert volume["configMap"]["items"] == [{"key": "dynamic.yaml", "path": "dynamic.yaml"}]


def test_config_change_rolls_the_pods():
    annotations = [workload(n)["spec"]["template"]["metadata"]["annotations"] for n in ("default", "full")]
    assert annotations[0]["checksum/config"] != annotations[1]["checksum/config"]


def test_data_volume():
    pod = workload("default")["spec"]["template"]["spec"]
    pvc = one("default", "PersistentVolumeClaim")
    data = next(v for v in pod["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"  # acme.json stays mode 600
    assert workload("default")["spec"]["strategy"] == {"type": "Recreate"}
    assert objects("clusterip", "PersistentVolumeClaim") == []
    clusterip_pod = workload("clusterip")["spec"]["template"]["spec"]
    assert next(v for v in clusterip_pod["volumes"] if v["name"] == "data") == {
        "name": "data",
        "emptyDir": {},
    }


def test_resources_and_pdb():
    assert container("default")["resources"]["requests"] == {"cpu": "100m", "memory": "64Mi"}
    assert container("default")["resources"]["limits"] == {"memory": "256Mi"}
    pdb = one("default", "PodDisruptionBudget")
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": workload("default")["spec"]["selector"]["matchLabels"]},
    }


# -- DaemonSet and Service --------------------------------------------------------------------------------


def test_daemonset_has_host_ports():
    assert objects("daemonset", "Deployment") == []
    ds = one("daemonset", "DaemonSet")
    assert "replicas" not in ds["spec"]
    ports = {p["name"]: p for p in container("daemonset")["ports"]}
    assert (ports["web"]["hostPort"], ports["websecure"]["hostPort"]) == (80, 443)
    assert "hostPort" not in ports["traefik"]
    assert all("hostPort" not in p for p in container("default")["ports"])
    assert objects("daemonset", "PersistentVolumeClaim") == []  # one ReadWriteOnce claim cannot serve nodes
    assert "/data is an emptyDir" in rendered("daemonset")["notes"]


@pytest.mark.parametrize(
    ("name", "kind"), [("default", "LoadBalancer"), ("full", "NodePort"), ("clusterip", "ClusterIP")]
)
def test_service_type(name, kind):
    (svc,) = [s for s in objects(name, "Service") if not s["metadata"]["name"].endswith("-metrics")]
    assert svc["spec"]["type"] == kind
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert (ports["web"]["port"], ports["web"]["targetPort"]) == (80, "web")
    assert (ports["websecure"]["port"], ports["websecure"]["targetPort"]) == (443, "websecure")
    assert "traefik" not in ports  # /ping and /metrics are not published
    if kind == "NodePort":
        assert (ports["web"]["nodePort"], ports["websecure"]["nodePort"]) == (30080, 30443)
        assert svc["spec"]["externalTrafficPolicy"] == "Local"
    else:
        assert all("nodePort" not in p for p in ports.values())


# -- RBAC, IngressClass, ServiceMonitor -------------------------------------------------------------------


def test_rbac_is_read_only_but_ingress_status():
    role = one("default", "ClusterRole")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    read = {"get", "list", "watch"}
    expected = {
        *(("networking.k8s.io", r, v) for r in ("ingresses", "ingressclasses") for v in read),
        ("networking.k8s.io", "ingresses/status", "patch"),
        *(("", r, v) for r in ("services", "secrets") for v in read),
        *(("discovery.k8s.io", "endpointslices", v) for v in read),
    }
    assert granted == expected
    sa = one("default", "ServiceAccount")["metadata"]["name"]
    assert one("default", "ClusterRoleBinding")["subjects"] == [
        {"kind": "ServiceAccount", "name": sa, "namespace": "edge"}
    ]
    assert workload("default")["spec"]["template"]["spec"]["serviceAccountName"] == sa
    # Without the Ingress provider nothing of it is granted.
    assert objects("clusterip", "ClusterRole") == [] and objects("clusterip", "ClusterRoleBinding") == []


def test_ingress_class():
    ic = one("default", "IngressClass")
    assert ic["metadata"]["name"] == "dockroute"
    assert ic["spec"] == {"controller": "dockroute.io/ingress-controller"}
    assert "Ingresses with ingressClassName: dockroute are routed" in rendered("default")["notes"]
    assert "Ingresses are not read" in rendered("clusterip")["notes"]


def test_service_monitor_only_when_asked():
    assert objects("default", "ServiceMonitor") == []
    sm = one("full", "ServiceMonitor")
    (metrics_svc,) = [s for s in objects("full", "Service") if s["metadata"]["name"].endswith("-metrics")]
    labels = metrics_svc["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items())
    assert sm["spec"]["endpoints"][0]["port"] == metrics_svc["spec"]["ports"][0]["name"]
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    assert metrics_svc["spec"]["ports"][0]["targetPort"] == "traefik"
    (main_svc,) = [s for s in objects("full", "Service") if s is not metrics_svc]
    assert not all(
        main_svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()
    )


# -- certificates shared by several pods (a Secret and Leases) ------------------------------------------


def _role_rules(name: str) -> list[dict[str, Any]]:
    return one(name, "Role")["rules"]


@pytest.mark.parametrize(("name", "lease"), [("full", 15), ("daemonset-acme", 30)])
def test_several_pods_with_acme_share_their_certificates_through_a_secret(name, lease, tmp_path, kubeconfig):
    """Two replicas (or a DaemonSet) with an ACME resolver: every resolver stores into the chart's Secret,
    the pod may use exactly that Secret and Leases, and has the token and its name to do it."""
    secret = one(name, "Secret")
    assert secret["metadata"]["name"] == "dr-dockroute-acme"
    assert secret["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}  # kept on uninstall
    assert "data" not in secret and secret["type"] == "Opaque"  # Helm never writes over the certificates
    assert _role_rules(name) == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["dr-dockroute-acme"],
            "verbs": ["get", "update"],
        },
    ]
    binding = one(name, "RoleBinding")
    assert binding["roleRef"]["name"] == one(name, "Role")["metadata"]["name"]
    sa = one(name, "ServiceAccount")["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": "edge"}]
    pod = workload(name)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    env = {e["name"]: e for e in container(name)["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # No volume claim: several pods cannot share a ReadWriteOnce one, and acme.json is in the Secret.
    assert objects(name, "PersistentVolumeClaim") == []
    assert next(v for v in pod["volumes"] if v["name"] == "data") == {"name": "data", "emptyDir": {}}
    assert "strategy" not in workload(name)["spec"]  # a rolling update: no claim to hand over
    # What dockroute reads: the Secret store, and a usable value.
    path = tmp_path / "dockroute.yaml"
    path.write_text(config_map(name)["dockroute.yaml"])
    static = load_static([], {}, config_file=str(path), search_dirs=[])
    storage = static.resolvers["letsencrypt"].storage
    assert storage == f"kubernetes://edge/dr-dockroute-acme?leaseDuration={lease}s"
    assert parse_storage(storage) == KubernetesStore("edge", "dr-dockroute-acme", lease)
    assert "/data is an emptyDir" not in rendered(name)["notes"]


def test_one_pod_or_sharing_turned_off_has_no_certificate_secret_or_role():
    for name in ("default", "unshared", "daemonset", "clusterip"):
        assert objects(name, "Role") == [] and objects(name, "Secret") == [], name
        assert "POD_NAME" not in {e["name"] for e in container(name)["env"]}
    static = yaml.safe_load(config_map("unshared")["dockroute.yaml"])
    assert static["certificatesResolvers"]["letsencrypt"]["acme"]["storage"] == "/data/acme.json"
    assert "WARNING: 2 replicas with certificatesResolvers" in rendered("unshared")["notes"]


def test_a_bad_shared_certificates_switch_stops_the_render():
    out = _run(CHART, {"sharedCertificates": {"enabled": "yes"}})
    assert "sharedCertificates.enabled must be auto, true or false" in out.get("error", ""), out
