"""Live reload under Kubernetes, without a cluster: the shipped ConfigMap's config and a keys
Secret laid out the way the kubelet's atomic writer does it (a timestamped `..<time>` directory,
a `..data` symlink to it, and `config.yaml -> ..data/config.yaml`), then both updated the way
the kubelet updates them (a new timestamped directory, `..data_tmp` renamed over `..data`, the
old directory removed). The gateway must pick up both without a restart.

Usage: kubelet_reload.py BINARY
"""
import hashlib
import json
import os
import pathlib
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = sys.argv[1]


def configmap_config():
    """config.yaml out of deploy/kubernetes/configmap.yaml (a literal block under data:)."""
    text = (ROOT / "deploy/kubernetes/configmap.yaml").read_text()
    block = text.split("  config.yaml: |\n", 1)[1]
    return "".join(line[4:] + "\n" for line in block.splitlines() if line.startswith("    ") or not line)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def atomic_write(volume, files):
    """What the kubelet's AtomicWriter does for a ConfigMap or Secret volume."""
    volume.mkdir(exist_ok=True)
    stamp = volume / time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    stamp = pathlib.Path(f"{stamp}{time.time_ns() % 10**9:09d}")
    stamp.mkdir()
    for name, content in files.items():
        (stamp / name).write_text(content)
    data = volume / "..data"
    old = os.readlink(data) if data.is_symlink() else None
    tmp = volume / "..data_tmp"
    os.symlink(stamp.name, tmp)
    os.rename(tmp, data)
    for name in files:
        link = volume / name
        if not link.is_symlink():
            os.symlink(f"..data/{name}", link)
    if old:
        shutil.rmtree(volume / old)


def request(url, body=None, key=None):
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body else None, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def wait_for(what, check, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise SystemExit(f"FAIL: {what} within {seconds} s")


def reloads(gw):
    _, _, text = request(f"{gw}/metrics")
    m = re.search(r'^llm_gateway_config_reloads_total\{result="success"\} (\d+)', text, re.M)
    return int(m.group(1)) if m else 0


def main():
    work = pathlib.Path(tempfile.mkdtemp())
    procs = []
    try:
        port_file = work / "mock.port"
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "tests/deploy/mock_upstream.py"), str(port_file)]))
        wait_for("mock upstream listening", port_file.exists, 10)
        mock = f"http://127.0.0.1:{port_file.read_text()}"

        config_dir, keys_dir = work / "config", work / "keys"
        keys_path = keys_dir / "keys.yaml"
        base = configmap_config()
        assert "/etc/llm-gateway-keys/keys.yaml" in base, "the ConfigMap no longer names the Secret's path"
        base = base.replace("/etc/llm-gateway-keys/keys.yaml", str(keys_path))
        atomic_write(config_dir, {"config.yaml": base})
        atomic_write(keys_dir, {"keys.yaml": "keys: []\n"})

        gw_port = free_port()
        gw = f"http://127.0.0.1:{gw_port}"
        log = open(work / "gateway.log", "w")
        procs.append(subprocess.Popen(
            [BIN, "run", str(config_dir / "config.yaml"), "--address", f"127.0.0.1:{gw_port}"],
            env={**os.environ, "LOCAL_MODEL_URL": mock}, stdout=log, stderr=log))
        wait_for("gateway ready", lambda: request(f"{gw}/ready")[0] == 200 if port_open(gw_port) else False)

        key = "sk-test-" + secrets.token_hex(16)
        chat = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        status, _, _ = request(f"{gw}/v1/chat/completions", chat, key)
        assert status == 401, f"a key not in the Secret got {status}, want 401"

        # The Secret gains the key.
        sha = hashlib.sha256(key.encode()).hexdigest()
        atomic_write(keys_dir, {"keys.yaml": f"keys:\n  - name: alice\n    key_sha256: \"{sha}\"\n"})
        wait_for("the keys Secret update applied (key accepted)",
                 lambda: request(f"{gw}/v1/chat/completions", chat, key)[0] == 200)
        _, _, body = request(f"{gw}/v1/chat/completions", chat, key)
        assert json.loads(body)["model"] == "chat", "before the config update, model 'chat' goes upstream as is"

        # The ConfigMap gains a route named chat: the same request now goes to that route's model.
        before = reloads(gw)
        atomic_write(config_dir, {"config.yaml": base + "routing:\n  default_route: chat\n  routes:\n"
                                  "    - {name: chat, model: mock-model}\n"})

        def routed():
            status, headers, body = request(f"{gw}/v1/chat/completions", chat, key)
            return status == 200 and json.loads(body)["model"] == "mock-model" and \
                {k.lower(): v for k, v in headers.items()}.get("x-llm-gateway-route") == "chat"
        wait_for("the ConfigMap update applied (route chat)", routed)
        assert reloads(gw) > before, "llm_gateway_config_reloads_total{result=\"success\"} did not grow"

        # The Secret loses the key again.
        atomic_write(keys_dir, {"keys.yaml": "keys: []\n"})
        wait_for("the key removed from the Secret refused",
                 lambda: request(f"{gw}/v1/chat/completions", chat, key)[0] == 401)
        assert procs[-1].poll() is None, "the gateway exited"
        print("kubelet-style ConfigMap and Secret updates: reloaded in place (keys added and removed, route added)")
    except BaseException:
        log_path = work / "gateway.log"
        if log_path.exists():
            sys.stderr.write(log_path.read_text()[-4000:])
        raise
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)
        shutil.rmtree(work)


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


main()
