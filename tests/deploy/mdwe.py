"""MemoryDenyWriteExecute=yes in the systemd unit, checked without systemd: the kernel rule
systemd applies (prctl PR_SET_MDWE, Linux 6.3+; older systemd emulates it with seccomp) is set
before exec, then the gateway serves a semantic-routing request (ONNX Runtime loaded and run)
and libziti is loaded. A library that needs writable executable memory would fail here.

Usage: mdwe.py BINARY EMBED_DIR LIBZITI
"""
import ctypes
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1
ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN, EMBED_DIR, LIBZITI = sys.argv[1:4]
libc = ctypes.CDLL(None, use_errno=True)


def deny_write_execute():
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")


# Kernels before 6.3 have no PR_SET_MDWE (systemd emulates the rule with seccomp there): say
# so loudly and check nothing, rather than fail the suite on a stock Debian 12 kernel.
supported = subprocess.run([sys.executable, "-c", f"import ctypes, sys; sys.exit(ctypes.CDLL(None).prctl({PR_SET_MDWE}, "
                            f"{PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0)"])
if supported.returncode != 0:
    print(f"SKIPPED: MemoryDenyWriteExecute not checked: kernel {os.uname().release} has no PR_SET_MDWE (Linux 6.3+)")
    sys.exit(0)
probe = subprocess.run([sys.executable, "-c", "import ctypes; print(ctypes.CDLL(None).prctl(66, 0, 0, 0, 0))"],
                       preexec_fn=deny_write_execute, capture_output=True, text=True)
if probe.returncode != 0 or probe.stdout.strip() != "1":
    sys.exit(f"FAIL: this kernel does not apply PR_SET_MDWE across exec ({probe.stderr.strip()}); "
             "MemoryDenyWriteExecute cannot be checked here")

r = subprocess.run([sys.executable, "-c", "import ctypes, sys; ctypes.CDLL(sys.argv[1]); print('ok')", LIBZITI],
                   preexec_fn=deny_write_execute, capture_output=True, text=True)
if r.stdout.strip() != "ok":
    sys.exit(f"FAIL: libziti does not load under MemoryDenyWriteExecute: {r.stderr}")

with tempfile.TemporaryDirectory() as tmp:
    port_file = pathlib.Path(tmp, "mock.port")
    mock = subprocess.Popen([sys.executable, str(ROOT / "tests/deploy/mock_upstream.py"), str(port_file)])
    gateway = None
    try:
        for _ in range(100):
            if port_file.exists():
                break
            time.sleep(0.1)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        config = pathlib.Path(tmp, "config.yaml")
        config.write_text(f"""providers:
  local:
    base_url: http://127.0.0.1:{port_file.read_text()}
routing:
  default_route: chat
  semantic: {{enabled: true, threshold: 0.2}}
  routes:
    - {{name: chat, model: mock-model, examples: ["say hello in French", "how are you today?", "tell me a fun fact"]}}
    - {{name: code, model: mock-model, examples: ["write a python function that sorts a list", "fix this bug in my code"]}}
""")
        log = open(pathlib.Path(tmp, "gateway.log"), "w")
        gateway = subprocess.Popen([BIN, "run", str(config), "--address", f"127.0.0.1:{port}"],
                                   env={**os.environ, "LLM_GATEWAY_EMBED_DIR": EMBED_DIR},
                                   preexec_fn=deny_write_execute, stdout=log, stderr=log)
        body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "write a python function that reverses a list"}]})
        route = None
        for _ in range(300):
            if gateway.poll() is not None:
                break
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body.encode(),
                                             headers={"content-type": "application/json"})
                with urllib.request.urlopen(req, timeout=10) as resp:
                    route = resp.headers.get("x-llm-gateway-route")
                break
            except OSError:
                time.sleep(0.1)
        if route != "code":
            log.flush()
            sys.exit(f"FAIL: under MemoryDenyWriteExecute the gateway routed to {route!r} (want 'code'); its log:\n"
                     + pathlib.Path(tmp, "gateway.log").read_text()[-3000:])
    finally:
        # Every process is told first, then waited for: one slow to stop leaves none behind.
        started = [p for p in (gateway, mock) if p]
        for p in started:
            p.terminate()
        for p in started:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
print("MemoryDenyWriteExecute: semantic routing on ONNX Runtime and loading libziti both work under it")
