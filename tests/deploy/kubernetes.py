"""Offline checks of deploy/kubernetes/ (no cluster):

- every built-in kind is validated by kubernetes-validate (PyPI; the Kubernetes OpenAPI schemas
  it bundles, strict: unknown fields are errors) for the oldest and newest versions we claim;
- the ServiceMonitor (a CRD, which kubernetes-validate has no schema for) and the references
  between the objects, which no schema sees, are checked here: selectors match the pod labels,
  named ports exist, probes hit /health and /ready, volumes are whole directories (no subPath,
  which the kubelet never updates) at the paths the config names, metrics are enabled;
- the ConfigMap's config and the Secret's keys file pass `llm-gateway check`.

Usage: kubernetes.py BINARY   (run with a python that has kubernetes-validate and PyYAML)
"""
import pathlib
import subprocess
import sys
import tempfile

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DIR = ROOT / "deploy/kubernetes"
BIN = sys.argv[1]
VERSIONS = ["1.30.0", "1.37.0"]
problems = []


def expect(ok, message):
    if not ok:
        problems.append(message)


kustomization = yaml.safe_load((DIR / "kustomization.yaml").read_text())
listed = kustomization["resources"]
files = sorted(p.name for p in DIR.glob("*.yaml") if p.name != "kustomization.yaml")
expect(sorted(listed) == files, f"kustomization resources {sorted(listed)} != files {files}")

objects = {}
for name in listed:
    for doc in yaml.safe_load_all((DIR / name).read_text()):
        objects[doc["kind"]] = doc

builtin = [str(DIR / n) for n in listed if yaml.safe_load((DIR / n).read_text())["kind"] != "ServiceMonitor"]
validate = pathlib.Path(sys.executable).parent / "kubernetes-validate"
for version in VERSIONS:
    r = subprocess.run([str(validate), "--strict", "--quiet", "-k", version, *builtin], capture_output=True, text=True)
    expect(r.returncode == 0, f"kubernetes-validate {version}:\n{r.stdout}{r.stderr}")

deploy, svc, pdb, cm, secret, sm = (objects[k] for k in
                                    ("Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "Secret", "ServiceMonitor"))
pod = deploy["spec"]["template"]
labels = pod["metadata"]["labels"]


def selects(selector):
    return selector and all(labels.get(k) == v for k, v in selector.items())


expect(selects(deploy["spec"]["selector"]["matchLabels"]), "the Deployment's selector does not match its pods")
expect(selects(svc["spec"]["selector"]), "the Service does not select the pods")
expect(selects(pdb["spec"]["selector"]["matchLabels"]), "the PodDisruptionBudget does not select the pods")
expect(deploy["spec"]["replicas"] > 1, "one replica: the PodDisruptionBudget would block every drain")

(container,) = pod["spec"]["containers"]
ports = {p["name"]: p["containerPort"] for p in container["ports"]}
args = container["args"]
expect(args[0] == "run" and args[args.index("--address") + 1].endswith(f":{ports.get('http')}"),
       "the --address port is not the container port named http")
for port in svc["spec"]["ports"]:
    expect(port["targetPort"] in ports, f"the Service's targetPort {port['targetPort']} is not a container port")
for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready"), ("startupProbe", "/health")):
    get = container.get(probe, {}).get("httpGet", {})
    expect(get.get("path") == path and get.get("port") in ports, f"{probe} is not GET {path} on a named port")

sc = container["securityContext"]
expect(pod["spec"]["securityContext"].get("runAsNonRoot") and sc.get("readOnlyRootFilesystem")
       and sc.get("allowPrivilegeEscalation") is False and sc["capabilities"]["drop"] == ["ALL"],
       "the container is not non-root, read-only, without privilege escalation and capabilities")
# The gateway drains for up to 30 s after SIGTERM, which comes after the preStop hook.
expect(pod["spec"]["terminationGracePeriodSeconds"] >= 30 + 5 + 5, "terminationGracePeriodSeconds leaves no time to drain")

volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
mounts = {m["name"]: m for m in container["volumeMounts"]}
expect(all("subPath" not in m and "subPathExpr" not in m for m in mounts.values()),
       "a subPath mount: the kubelet never updates those, so live reload would not see changes")
config_mount = next(m for n, m in mounts.items() if "configMap" in volumes[n])
keys_mount = next(m for n, m in mounts.items() if "secret" in volumes[n])
expect(volumes[config_mount["name"]]["configMap"]["name"] == cm["metadata"]["name"], "the config volume names another ConfigMap")
expect(volumes[keys_mount["name"]]["secret"]["secretName"] == secret["metadata"]["name"], "the keys volume names another Secret")
config_path = args[1]
expect(config_path == f"{config_mount['mountPath']}/config.yaml" and "config.yaml" in cm["data"],
       "the config path in args is not config.yaml in the ConfigMap's mount")

config = yaml.safe_load(cm["data"]["config.yaml"])
keys_file = config["api_keys"]["keys_file"]
expect(keys_file == f"{keys_mount['mountPath']}/keys.yaml" and "keys.yaml" in secret["stringData"],
       f"api_keys.keys_file {keys_file} is not keys.yaml in the Secret's mount")
expect(config.get("metrics", {}).get("enabled") is True, "metrics are disabled: the ServiceMonitor would scrape 404s")

# The ServiceMonitor, checked against the parts of the monitoring.coreos.com/v1 CRD it uses.
expect(sm["apiVersion"] == "monitoring.coreos.com/v1", "ServiceMonitor apiVersion")
expect(set(sm["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}, "unknown ServiceMonitor spec fields")
expect(all(svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()),
       "the ServiceMonitor does not select the Service (it matches Service labels, not pod labels)")
service_ports = {p["name"] for p in svc["spec"]["ports"]}
for ep in sm["spec"]["endpoints"]:
    expect(set(ep) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}, f"unknown endpoint fields {set(ep)}")
    expect(ep.get("port") in service_ports, f"the ServiceMonitor's port {ep.get('port')} is not a named Service port")
    expect(ep.get("path") == "/metrics", "the ServiceMonitor does not scrape /metrics")

with tempfile.TemporaryDirectory() as tmp:
    keys = pathlib.Path(tmp, "keys.yaml")
    keys.write_text(secret["stringData"]["keys.yaml"])
    conf = pathlib.Path(tmp, "config.yaml")
    conf.write_text(cm["data"]["config.yaml"].replace(keys_file, str(keys)))
    r = subprocess.run([BIN, "check", str(conf)], capture_output=True, text=True)
    expect(r.returncode == 0, f"llm-gateway check on the ConfigMap's config:\n{r.stdout}{r.stderr}")

if problems:
    sys.exit("FAIL deploy/kubernetes:\n- " + "\n- ".join(problems))
print(f"deploy/kubernetes: {len(builtin)} objects valid for Kubernetes {' and '.join(VERSIONS)} (strict); "
      "ServiceMonitor and cross-references checked; config passes llm-gateway check")
