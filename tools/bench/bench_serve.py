#!/usr/bin/env python3
"""End-to-end benchmark of `kiln serve`, measured the way ComfyUI is: over the server's
protocol (POST /prompt and the /ws WebSocket), with only the Python standard library.

It builds a base folder (a random full-size f16 SD1.5 checkpoint from make_checkpoint,
or --checkpoint, plus the CLIP tokenizer), starts `kiln serve` on a free port, and times
txt2img (CheckpointLoaderSimple, two CLIPTextEncode, EmptyLatentImage, KSampler euler /
normal / cfg 8, VAEDecode, SaveImage) in several scenarios: one prompt at a time at batch
1, 4 and 8, a queue of 16 different prompts posted at once, and a 512 -> 768 hires fix.
Each scenario has uncounted warm-up runs, then --runs measured ones, and each prompt has
its own texts and seed, so that only the checkpoint loader (and the constant empty
latent) can come from kiln's cache. Every message is timestamped as it arrives: latency
runs from the POST to execution_success; it/s comes from the first KSampler's progress
messages (first to last, over steps - 1); a node's time runs from its executing message to
the next one (nodes that overlap on parallel lanes share it, so times are summed per
class). Every run is checked: it must succeed, run its sampler (not take it from the
cache) and write the expected PNGs, with the expected size and non-uniform pixels. A
background thread samples GPU utilization (NVML, else nvidia-smi) during measured runs.

    python3 tools/bench/bench_serve.py --kiln BIN/kiln --make-checkpoint BIN/make_checkpoint \
        --tokenizer DIR --work DIR [--out DIR] [--scenarios b1,b4,b8,q16,hires] [--runs 5]
        [--warmup 1] [--size 512] [--steps 20] [--checkpoint PATH] [--serve-arg=--lanes=2]

The results are printed as markdown tables and written to OUT/bench_serve.json.
`--self-test` checks the WebSocket client and the PNG check without a server.
"""
import argparse
import base64
import ctypes
import glob
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ALL_SCENARIOS = ["b1", "b4", "b8", "q16", "hires"]


class BenchError(Exception):
    """A failure that ends the benchmark with a message and a non-zero exit."""


# ---- WebSocket client (RFC 6455, client side) -----------------------------------------------

class WebSocket:
    """A minimal client: the upgrade handshake, a reader thread that timestamps every text
    message (time.monotonic()) as it arrives and answers pings, masked client frames.
    Messages are kept in `self.messages` as (t, dict); `wait_until` blocks on new ones."""

    def __init__(self, sock):
        self.sock = sock
        self.messages = []
        self.cond = threading.Condition()
        self.send_lock = threading.Lock()
        self.closed = False
        self.close_sent = False
        self.error = None
        self.reader = None

    @classmethod
    def connect(cls, host, port, path, timeout=10.0):
        sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n" % (path, host, port, key))
        sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                raise BenchError("WebSocket handshake: connection closed")
            head += chunk
            if len(head) > 65536:
                raise BenchError("WebSocket handshake: header too long")
        head, rest = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if len(lines[0].split()) < 2 or lines[0].split()[1] != "101":
            raise BenchError("WebSocket handshake refused: %s" % lines[0])
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if fields.get("sec-websocket-accept") != want:
            raise BenchError("WebSocket handshake: bad Sec-WebSocket-Accept")
        sock.settimeout(None)
        ws = cls(sock)
        ws.start(rest)
        return ws

    def start(self, pending=b""):
        self.reader = threading.Thread(target=self._read_loop, args=(pending,), daemon=True)
        self.reader.start()

    def send_frame(self, opcode, payload=b""):
        """Sends one final frame, masked as a client must."""
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        with self.send_lock:
            self.sock.sendall(head + mask + body)

    def send_text(self, text):
        self.send_frame(0x1, text.encode())

    def _read_loop(self, pending):
        buf = bytearray(pending)

        def need(n):
            while len(buf) < n:
                chunk = self.sock.recv(max(65536, n - len(buf)))
                if not chunk:
                    raise EOFError("connection closed")
                buf.extend(chunk)
            out = bytes(buf[:n])
            del buf[:n]
            return out

        frag_op, frag = None, bytearray()
        try:
            while True:
                b0, b1 = need(2)
                fin, opcode, masked, n = b0 & 0x80, b0 & 0x0F, b1 & 0x80, b1 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", need(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", need(8))[0]
                mask = need(4) if masked else None
                payload = need(n)
                if mask:
                    payload = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
                t = time.monotonic()
                if opcode == 0x9:
                    self.send_frame(0xA, payload)
                    continue
                if opcode == 0xA:
                    continue
                if opcode == 0x8:
                    if not self.close_sent:
                        self.close_sent = True
                        self.send_frame(0x8, payload[:2])
                    break
                if opcode in (0x1, 0x2):
                    frag_op, frag = opcode, bytearray(payload)
                elif opcode == 0x0 and frag_op is not None:
                    frag.extend(payload)
                else:
                    raise ValueError("unexpected frame opcode %d" % opcode)
                if fin:
                    if frag_op == 0x1:
                        self._deliver(t, json.loads(frag.decode()))
                    frag_op, frag = None, bytearray()
        except (OSError, EOFError, ValueError) as e:
            if not self.close_sent:
                self.error = str(e)
        finally:
            with self.cond:
                self.closed = True
                self.cond.notify_all()

    def _deliver(self, t, msg):
        with self.cond:
            self.messages.append((t, msg))
            self.cond.notify_all()

    def wait_until(self, pred, timeout, alive=None):
        """Waits until pred(messages) is true; raises BenchError on timeout, on a closed
        socket, or when alive() turns false (the server died)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if pred(self.messages):
                    return
                if self.closed:
                    raise BenchError("WebSocket closed: %s" % (self.error or "by the server"))
                if alive is not None and not alive():
                    raise BenchError("the server exited")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError("timed out after %.0f s waiting for the server" % timeout)
                self.cond.wait(min(left, 1.0))

    def close(self):
        try:
            if not self.close_sent:
                self.close_sent = True
                self.send_frame(0x8, struct.pack("!H", 1000))
            if self.reader:
                self.reader.join(5)
        except OSError:
            pass
        finally:
            self.sock.close()


# ---- PNG check ------------------------------------------------------------------------------

def png_check(path, width, height, check_rows=32):
    """Checks a saved PNG: signature, IHDR (8-bit RGB/RGBA, the expected size), an IDAT
    stream that inflates to exactly the filtered image, compressed data larger than a
    uniform image of that size would give, and more than a few distinct values in the first
    rows once unfiltered (a uniform image, e.g. from NaNs clamped away, has one). Returns a
    dict of facts; raises BenchError with the reason when the image is not right."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise BenchError("%s: not a PNG" % path)
    pos, ihdr, idat = 8, None, bytearray()
    while pos + 8 <= len(data):
        n, kind = struct.unpack("!I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            ihdr = struct.unpack("!IIBBBBB", body[:13])
        elif kind == b"IDAT":
            idat.extend(body)
        elif kind == b"IEND":
            break
        pos += 12 + n
    if ihdr is None or not idat:
        raise BenchError("%s: no IHDR or IDAT" % path)
    w, h, depth, ctype = ihdr[:4]
    channels = {2: 3, 6: 4}.get(ctype)
    if depth != 8 or channels is None or ihdr[6] != 0:
        raise BenchError("%s: unexpected PNG format (depth %d, color type %d)"
                         % (path, depth, ctype))
    if (w, h) != (width, height):
        raise BenchError("%s: %dx%d, expected %dx%d" % (path, w, h, width, height))
    raw = zlib.decompress(bytes(idat))
    stride = w * channels
    if len(raw) != h * (stride + 1):
        raise BenchError("%s: image data is %d bytes, expected %d"
                         % (path, len(raw), h * (stride + 1)))
    flat = zlib.compressobj(4, zlib.DEFLATED, 15, 9, zlib.Z_FILTERED)
    uniform = flat.compress((b"\x01" + b"\x80" * channels + b"\x00" * (stride - channels)) * h)
    uniform_len = len(uniform + flat.flush())
    if len(idat) <= 2 * uniform_len:
        raise BenchError("%s: %d bytes of image data, no more than a uniform image (%d)"
                         % (path, len(idat), uniform_len))
    values = set()
    prev = bytearray(stride)
    for y in range(min(h, check_rows)):
        row = unfilter_row(raw[y * (stride + 1)], raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)],
                           prev, channels)
        values.update(row)
        prev = row
    if len(values) < 4:
        raise BenchError("%s: nearly uniform pixels (%d distinct values in the first %d rows)"
                         % (path, len(values), min(h, check_rows)))
    return {"bytes": len(data), "idat_bytes": len(idat), "uniform_idat_bytes": uniform_len,
            "distinct_values": len(values)}


def unfilter_row(ftype, row, prev, bpp):
    """Undoes one PNG row filter (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth)."""
    out = bytearray(row)
    n = len(out)
    if ftype == 0:
        return out
    for i in range(n):
        a = out[i - bpp] if i >= bpp else 0
        b = prev[i]
        if ftype == 1:
            out[i] = (out[i] + a) & 0xFF
        elif ftype == 2:
            out[i] = (out[i] + b) & 0xFF
        elif ftype == 3:
            out[i] = (out[i] + ((a + b) >> 1)) & 0xFF
        elif ftype == 4:
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out[i] = (out[i] + pred) & 0xFF
        else:
            raise BenchError("bad PNG filter type %d" % ftype)
    return out


# ---- GPU: name and utilization ---------------------------------------------------------------

class Nvml:
    """NVML through ctypes (libnvidia-ml.so.1): device name, driver, utilization."""

    class _Util(ctypes.Structure):
        _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]

    def __init__(self, index):
        self.lib = ctypes.CDLL("libnvidia-ml.so.1")
        if self.lib.nvmlInit_v2() != 0:
            raise OSError("nvmlInit failed")
        self.handle = ctypes.c_void_p()
        if self.lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(self.handle)) != 0:
            raise OSError("no GPU %d" % index)
        self.utilization()

    def name(self):
        buf = ctypes.create_string_buffer(96)
        drv = ctypes.create_string_buffer(96)
        self.lib.nvmlDeviceGetName(self.handle, buf, 96)
        self.lib.nvmlSystemGetDriverVersion(drv, 96)
        return "%s, driver %s" % (buf.value.decode(), drv.value.decode())

    def utilization(self):
        u = self._Util()
        rc = self.lib.nvmlDeviceGetUtilizationRates(self.handle, ctypes.byref(u))
        if rc != 0:
            raise OSError("nvmlDeviceGetUtilizationRates: %d" % rc)
        return float(u.gpu)


class GpuMonitor:
    """Samples GPU utilization every 100 ms between start() and stop() (NVML, else a
    `nvidia-smi -lms 100` child; `want` may force one, or "none"). `method` is None when
    neither is available."""

    def __init__(self, index, want="auto"):
        self.index, self.nvml, self.method, self.device = index, None, None, "cpu"
        self.want = want
        if want in ("auto", "nvml"):
            try:
                self.nvml = Nvml(index)
                self.method, self.device = "nvml", self.nvml.name()
            except (OSError, AttributeError):
                self.nvml = None
        if want in ("auto", "nvidia-smi") and self.nvml is None and shutil.which("nvidia-smi"):
            try:
                out = subprocess.run(["nvidia-smi", "-i", str(index),
                                      "--query-gpu=name,driver_version",
                                      "--format=csv,noheader"], capture_output=True,
                                     text=True, timeout=30)
                if out.returncode == 0 and out.stdout.strip():
                    self.method = "nvidia-smi"
                    name, _, drv = out.stdout.strip().splitlines()[0].partition(",")
                    self.device = "%s, driver %s" % (name.strip(), drv.strip())
            except (OSError, subprocess.SubprocessError):
                pass
        self.samples, self.thread, self.proc, self.stop_evt = [], None, None, None

    def start(self):
        self.samples, self.stop_evt = [], threading.Event()
        if self.method == "nvml":
            self.thread = threading.Thread(target=self._poll_nvml, daemon=True)
        elif self.method == "nvidia-smi":
            self.proc = subprocess.Popen(["nvidia-smi", "-i", str(self.index),
                                          "--query-gpu=utilization.gpu",
                                          "--format=csv,noheader,nounits", "-lms", "100"],
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                         text=True)
            self.thread = threading.Thread(target=self._read_smi, daemon=True)
        else:
            return
        self.thread.start()

    def _poll_nvml(self):
        while not self.stop_evt.wait(0.1):
            try:
                self.samples.append(self.nvml.utilization())
            except OSError:
                pass

    def _read_smi(self):
        for line in self.proc.stdout:
            try:
                self.samples.append(float(line.strip()))
            except ValueError:
                pass

    def stop(self):
        """Ends sampling; returns the mean utilization in percent, or None."""
        if self.stop_evt:
            self.stop_evt.set()
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None
        if self.thread:
            self.thread.join(5)
            self.thread = None
        return statistics.mean(self.samples) if self.samples else None


# ---- the server -----------------------------------------------------------------------------

class Server:
    """`kiln serve --port 0` on a base folder, in its own session (so a Ctrl-C reaches only
    this script, which stops it); stdout in serve.out, stderr in serve.log."""

    def __init__(self, kiln, base, work, extra):
        self.kiln, self.base, self.work, self.extra = kiln, base, work, extra
        self.proc, self.port, self.system_stats = None, None, None
        self.log_path = os.path.join(work, "serve.log")

    def start(self, timeout):
        out_path = os.path.join(self.work, "serve.out")
        cmd = [self.kiln, "serve", "--port", "0", "--base-directory", self.base] + self.extra
        with open(out_path, "w") as out, open(self.log_path, "w") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=self.work,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        prefix = "kiln: serving on http://127.0.0.1:"
        while self.port is None:
            with open(out_path) as f:
                for line in f:
                    if line.startswith(prefix):
                        self.port = int(line[len(prefix):].strip())
            if self.port is None:
                self._check_alive_or_late(deadline, "print its address")
                time.sleep(0.05)
        while True:
            try:
                status, body = http_request(self.port, "GET", "/system_stats", timeout=5)
                if status == 200:
                    self.system_stats = json.loads(body)
                    return
            except OSError:
                pass
            self._check_alive_or_late(deadline, "answer GET /system_stats")
            time.sleep(0.1)

    def _check_alive_or_late(self, deadline, what):
        if self.proc.poll() is not None:
            raise BenchError("kiln serve exited (status %d) before it could %s:\n%s"
                             % (self.proc.returncode, what, self.log_tail()))
        if time.monotonic() > deadline:
            raise BenchError("kiln serve did not %s in time:\n%s" % (what, self.log_tail()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines=15):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self):
        """SIGTERM (the server interrupts what runs and shuts down cleanly), SIGKILL after
        30 s; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def http_request(port, method, path, body=None, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# ---- workflows ------------------------------------------------------------------------------

def txt2img(a, ckpt, batch, n, prefix, hires=False):
    """The benchmark prompt; n makes the texts and seed unique, so that nothing but the
    checkpoint loader (and the constant EmptyLatentImage) can come from the cache. Node ids:
    1 loader, 2/3 texts, 4 latent, 5 KSampler, 6 VAEDecode, 7 SaveImage (hires: 8 upscale,
    9 second KSampler)."""
    ks = {"seed": 1000 + n, "steps": a.steps, "cfg": 8.0, "sampler_name": "euler",
          "scheduler": "normal", "denoise": 1.0, "model": ["1", 0], "positive": ["2", 0],
          "negative": ["3", 0], "latent_image": ["4", 0]}
    wf = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {
            "text": "a photo of a red fox in the snow, highly detailed, variant %d" % n,
            "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {
            "text": "blurry, low quality, watermark, variant %d" % n, "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {
            "width": a.size, "height": a.size, "batch_size": batch}},
        "5": {"class_type": "KSampler", "inputs": ks},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"filename_prefix": prefix,
                                                    "images": ["6", 0]}},
    }
    if hires:
        wf["8"] = {"class_type": "LatentUpscaleBy", "inputs": {
            "upscale_method": "nearest-exact", "scale_by": 1.5, "samples": ["5", 0]}}
        wf["9"] = {"class_type": "KSampler", "inputs": dict(
            ks, seed=5000 + n, steps=a.hires_steps, denoise=0.5, latent_image=["8", 0])}
        wf["6"]["inputs"]["samples"] = ["9", 0]
    return wf


def out_size(a, hires):
    # LatentUpscaleBy rounds the latent size (size / 8 * 1.5) to the nearest integer.
    return int(round(a.size // 8 * 1.5)) * 8 if hires else a.size


# ---- one prompt -----------------------------------------------------------------------------

class Bench:
    def __init__(self, a, server, ws, client_id, ckpt):
        self.a, self.server, self.ws, self.client_id, self.ckpt = a, server, ws, client_id, ckpt
        self.counter = 0
        self.unchecked = []     # (prefix, batch, size) of runs whose images wait for a check

    def post(self, wf):
        """POST /prompt for our client; returns (t_post, prompt_id)."""
        t = time.monotonic()
        status, body = http_request(self.server.port, "POST", "/prompt",
                                    {"prompt": wf, "client_id": self.client_id})
        if status != 200:
            raise BenchError("POST /prompt answered %d: %s" % (status, body.decode()[:2000]))
        return t, json.loads(body)["prompt_id"]

    def wait_done(self, pids, since):
        """Waits until every prompt of `pids` has ended (success, error or interrupt);
        `since` is the message count before the first of them was posted."""
        want, pos = set(pids), [since]

        def done(msgs):
            for _, m in msgs[pos[0]:]:
                d = m.get("data") or {}
                if m.get("type") in ("execution_success", "execution_error",
                                     "execution_interrupted") and d.get("prompt_id") in want:
                    want.discard(d["prompt_id"])
            pos[0] = len(msgs)
            return not want

        self.ws.wait_until(done, self.a.timeout * len(pids), self.server.alive)

    def mark(self):
        with self.ws.cond:
            return len(self.ws.messages)

    def events(self, pid):
        with self.ws.cond:
            return [(t, m) for t, m in self.ws.messages
                    if (m.get("data") or {}).get("prompt_id") == pid]

    def new_prompt(self, scenario, batch, hires=False):
        self.counter += 1
        prefix = "bench/%s_%04d" % (scenario, self.counter)
        return txt2img(self.a, self.ckpt, batch, self.counter, prefix, hires), prefix

    def analyse(self, pid, wf, t_post, prefix, batch, hires):
        """Checks one finished prompt and extracts its timings."""
        evs = self.events(pid)
        kinds = {m["type"]: (t, m) for t, m in evs}
        if "execution_success" not in kinds:
            bad = kinds.get("execution_error") or kinds.get("execution_interrupted")
            if not bad:
                raise BenchError("prompt %s ended without a result" % pid)
            d = bad[1]["data"]
            raise BenchError("prompt %s failed (%s) in node %s (%s): %s\n%s"
                             % (pid, bad[1]["type"], d.get("node_id"), d.get("node_type"),
                                str(d.get("exception_message", "")).strip(),
                                json.dumps(d)[:3000]))
        t_end = kinds["execution_success"][0]
        cached = (kinds.get("execution_cached", (0, {"data": {}}))[1]["data"].get("nodes")
                  or [])
        for node in cached:
            if wf[node]["class_type"] == "KSampler":
                raise BenchError("prompt %s: the KSampler came from the cache" % pid)
        steps = [(t, m["data"]["node"]) for t, m in evs if m["type"] == "executing"
                 and m["data"].get("node")]
        node_times = {}
        for i, (t, node) in enumerate(steps):
            end = steps[i + 1][0] if i + 1 < len(steps) else t_end
            cls = wf[node]["class_type"]
            node_times[cls] = node_times.get(cls, 0.0) + (end - t)
        prog = {}
        for t, m in evs:
            if m["type"] == "progress":
                prog.setdefault(m["data"].get("node"), []).append(t)
        it_s = None
        first = prog.get("5", [])
        if len(first) >= 2 and first[-1] > first[0]:
            it_s = (len(first) - 1) / (first[-1] - first[0])
        self.unchecked.append((prefix, batch, out_size(self.a, hires)))
        return {"prompt_id": pid, "latency_s": t_end - t_post, "it_per_s": it_s,
                "end": t_end, "node_s": node_times,
                "cached": sorted(wf[n]["class_type"] for n in cached)}

    def verify_images(self):
        """Checks the images of every run since the last call. It runs outside the timed
        and GPU-sampled stretches, since unfiltering rows in Python takes a while."""
        for prefix, batch, size in self.unchecked:
            files = sorted(glob.glob(os.path.join(self.a.base, "output", prefix + "_*.png")))
            if len(files) != batch:
                raise BenchError("%s: %d PNGs written, expected %d"
                                 % (prefix, len(files), batch))
            for f in files:
                png_check(f, size, size)
        self.unchecked = []

    def run_one(self, scenario, batch, hires=False):
        wf, prefix = self.new_prompt(scenario, batch, hires)
        since = self.mark()
        t_post, pid = self.post(wf)
        self.wait_done([pid], since)
        return self.analyse(pid, wf, t_post, prefix, batch, hires)

    def run_queue(self, scenario, count):
        """Posts `count` different prompts at once (one thread each); returns the time from
        the first POST to the last execution_success and the per-prompt results."""
        prompts = [self.new_prompt(scenario, 1) for _ in range(count)]
        posted, errors, since = [None] * count, [], self.mark()

        def send(i):
            try:
                posted[i] = self.post(prompts[i][0])
            except (BenchError, OSError) as e:
                errors.append(str(e))

        threads = [threading.Thread(target=send, args=(i,)) for i in range(count)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if errors:
            raise BenchError(errors[0])
        self.wait_done([pid for _, pid in posted], since)
        runs = [self.analyse(pid, prompts[i][0], t, prompts[i][1], 1, False)
                for i, (t, pid) in enumerate(posted)]
        total = max(r["end"] for r in runs) - min(t for t, _ in posted)
        return {"total_s": total, "images_per_s": count / total, "prompts": runs}


# ---- scenarios and report -------------------------------------------------------------------

def spread(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "values": vals}


def measure(bench, gpu, warmup, run):
    """Runs warmup() a.warmup times, then run() a.runs times while the GPU is sampled;
    the images are checked after each stretch. Returns (results, mean GPU busy %)."""
    for _ in range(bench.a.warmup):
        warmup()
    bench.verify_images()
    gpu.start()
    try:
        results = [run() for _ in range(bench.a.runs)]
    finally:
        busy = gpu.stop()
    bench.verify_images()
    return results, busy


def run_scenario(bench, gpu, name):
    a = bench.a
    if name == "q16":
        rounds, busy = measure(bench, gpu, lambda: bench.run_one(name + "_warmup", 1),
                               lambda: bench.run_queue(name, a.queue))
        metrics = {"images_per_s": spread([r["images_per_s"] for r in rounds]),
                   "total_s": spread([r["total_s"] for r in rounds])}
        runs = [r for rr in rounds for r in rr["prompts"]]
        return {"batch": 1, "prompts_per_run": a.queue, "runs": a.runs, "metrics": metrics,
                "gpu_busy_pct": busy, "cached": sorted(set(c for r in runs for c in r["cached"]))}
    batch = {"b1": 1, "b4": 4, "b8": 8, "hires": 1}[name]
    hires = name == "hires"
    runs, busy = measure(bench, gpu, lambda: bench.run_one(name + "_warmup", batch, hires),
                         lambda: bench.run_one(name, batch, hires))
    metrics = {"latency_s": spread([r["latency_s"] for r in runs]),
               "it_per_s": spread([r["it_per_s"] for r in runs])}
    if name in ("b4", "b8"):
        metrics["images_per_s"] = spread([batch / r["latency_s"] for r in runs])
    res = {"batch": batch, "runs": a.runs, "metrics": metrics, "gpu_busy_pct": busy,
           "cached": sorted(set(c for r in runs for c in r["cached"]))}
    if hires:
        res["size"] = out_size(a, True)
    if name == "b1":
        classes = sorted(set(c for r in runs for c in r["node_s"]))
        res["per_node"] = {c: spread([r["node_s"].get(c) for r in runs]) for c in classes}
    return res


UNITS = [("images_per_s", "images/s"), ("latency_s", "s"), ("total_s", "s"),
         ("it_per_s", "it/s")]


def report(result, gpu):
    lines = ["device: %s" % result["device"], "",
             "| scenario | runs | median | min-max | unit | GPU busy % |",
             "|---|---|---|---|---|---|"]
    for name, sc in result["scenarios"].items():
        busy = ("%.1f" % sc["gpu_busy_pct"] if sc["gpu_busy_pct"] is not None
                else "n/a (%s)" % ("no samples" if gpu.method else
                                   "not sampled" if gpu.want == "none" else "no nvidia-smi"))
        label = name if name != "q16" else "q%d" % sc["prompts_per_run"]
        for key, unit in UNITS:
            m = sc["metrics"].get(key)
            if m:
                lines.append("| %s | %d | %.3f | %.3f-%.3f | %s | %s |"
                             % (label, sc["runs"], m["median"], m["min"], m["max"], unit, busy))
    per_node = result["scenarios"].get("b1", {}).get("per_node")
    if per_node:
        lines += ["", "per node (b1, summed per class, median over runs):", "",
                  "| class_type | median s | min-max s |", "|---|---|---|"]
        for cls, m in sorted(per_node.items(), key=lambda kv: -kv[1]["median"]):
            lines.append("| %s | %.4f | %.4f-%.4f |" % (cls, m["median"], m["min"], m["max"]))
    return "\n".join(lines)


# ---- set-up and main ------------------------------------------------------------------------

def prepare_base(a):
    base = a.base
    ckdir = os.path.join(base, "models", "checkpoints")
    tokdir = os.path.join(base, "models", "tokenizers", "clip")
    os.makedirs(ckdir, exist_ok=True)
    os.makedirs(tokdir, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        src = os.path.join(a.tokenizer, name)
        if not os.path.isfile(src):
            raise BenchError("tokenizer file missing: %s" % src)
        shutil.copyfile(src, os.path.join(tokdir, name))
    # A journal left by an earlier run would re-queue its unfinished prompts at start, and
    # old images would be counted as this run's.
    shutil.rmtree(os.path.join(base, "user"), ignore_errors=True)
    shutil.rmtree(os.path.join(base, "output", "bench"), ignore_errors=True)
    if a.checkpoint:
        name = os.path.basename(a.checkpoint)
        dst = os.path.join(ckdir, name)
        if os.path.lexists(dst):
            os.remove(dst)
        os.symlink(os.path.abspath(a.checkpoint), dst)
        return name
    name = "sd15-random-f16.safetensors"
    dst = os.path.join(ckdir, name)
    if not os.path.isfile(dst):
        if not a.make_checkpoint:
            raise BenchError("--make-checkpoint or --checkpoint is needed")
        print("writing a random full-size SD1.5 checkpoint (f16) ...", flush=True)
        tmp = dst + ".tmp"
        subprocess.run([a.make_checkpoint, "--sd15", "--dtype", "f16", "--seed", "1",
                        "-o", tmp], check=True, stdout=subprocess.DEVNULL)
        os.replace(tmp, dst)
    return name


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kiln", help="the kiln binary")
    p.add_argument("--make-checkpoint", help="tools/make_checkpoint binary")
    p.add_argument("--tokenizer", help="folder with the CLIP vocab.json and merges.txt")
    p.add_argument("--work", help="scratch folder (base dir, server log)")
    p.add_argument("--out", help="where bench_serve.json goes (default: --work)")
    p.add_argument("--checkpoint", help="use this checkpoint instead of a random one")
    p.add_argument("--scenarios", default=",".join(ALL_SCENARIOS),
                   help="comma-separated, from %s" % ",".join(ALL_SCENARIOS))
    p.add_argument("--runs", type=int, default=5, help="measured runs per scenario")
    p.add_argument("--warmup", type=int, default=1, help="uncounted runs per scenario")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--hires-steps", type=int, default=15)
    p.add_argument("--queue", type=int, default=16, help="prompts posted at once in q16")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per prompt at most")
    p.add_argument("--gpu-index", type=int, default=0, help="the GPU to sample")
    p.add_argument("--gpu-sampler", default="auto", choices=["auto", "nvml", "nvidia-smi", "none"],
                   help="how to sample GPU utilization (auto: NVML, else nvidia-smi)")
    p.add_argument("--serve-arg", action="append", default=[],
                   help="extra `kiln serve` argument (repeatable)")
    p.add_argument("--self-test", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.self_test:
        return a
    for need in ("kiln", "tokenizer", "work"):
        if not getattr(a, need):
            p.error("--%s is required" % need)
    a.scenarios = [s for s in a.scenarios.split(",") if s]
    for s in a.scenarios:
        if s not in ALL_SCENARIOS:
            p.error("unknown scenario %r" % s)
    if a.runs < 1 or a.warmup < 0 or a.steps < 2 or a.size < 8 or a.size % 8 or a.queue < 1:
        p.error("need --runs >= 1, --warmup >= 0, --steps >= 2, --size a multiple of 8")
    a.work = os.path.abspath(a.work)
    a.base = os.path.join(a.work, "base")
    a.out = os.path.abspath(a.out or a.work)
    return a


def on_signal(signum, frame):
    raise KeyboardInterrupt()


def main(argv):
    a = parse_args(argv)
    if a.self_test:
        return self_test()
    os.makedirs(a.work, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)
    gpu = GpuMonitor(a.gpu_index, a.gpu_sampler)
    print("device: %s" % gpu.device, flush=True)
    # SIGTERM and SIGHUP unwind like Ctrl-C, so that the server is stopped either way.
    # SIGINT is set explicitly: a shell starting us in the background may have ignored it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    server, ws = None, None
    try:
        ckpt = prepare_base(a)
        server = Server(os.path.abspath(a.kiln), a.base, a.work, a.serve_arg)
        server.start(120)
        print("kiln serve on port %d (log: %s)" % (server.port, server.log_path), flush=True)
        client_id = uuid.uuid4().hex
        ws = WebSocket.connect("127.0.0.1", server.port, "/ws?clientId=" + client_id)
        ws.wait_until(lambda msgs: any(m.get("type") == "status" for _, m in msgs), 30)
        bench = Bench(a, server, ws, client_id, ckpt)
        result = {"device": gpu.device, "gpu_sampling": gpu.method, "kiln": a.kiln,
                  "config": {"size": a.size, "steps": a.steps, "hires_steps": a.hires_steps,
                             "runs": a.runs, "warmup": a.warmup, "checkpoint": ckpt,
                             "sampler": "euler", "scheduler": "normal", "cfg": 8.0},
                  "per_node_method": "executing to the next executing (or execution_success), "
                  "summed per class_type, median over the measured b1 runs",
                  "system_stats": server.system_stats, "scenarios": {}}
        for name in a.scenarios:
            t0 = time.monotonic()
            result["scenarios"][name] = run_scenario(bench, gpu, name)
            print("%s done in %.1f s" % (name, time.monotonic() - t0), flush=True)
        text = report(result, gpu)
        print("\n" + text)
        path = os.path.join(a.out, "bench_serve.json")
        with open(path, "w") as f:
            json.dump(result, f, indent=1)
        with open(os.path.join(a.out, "bench_serve.md"), "w") as f:
            f.write(text + "\n")
        print("\nwritten: %s (and bench_serve.md)" % path)
        ws.close()
        ws = None
        status = server.stop()
        if status != 0:
            # A server that fails at shutdown (a crash, or a sanitizer's report) is a bug
            # too, even when every prompt went through.
            raise BenchError("kiln serve exited with status %d at shutdown" % status)
        return 0
    except BenchError as e:
        print("bench_serve: %s" % e, file=sys.stderr)
        if server and server.proc:
            print("server log (last lines):\n%s" % server.log_tail(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench_serve: interrupted", file=sys.stderr)
        return 130
    finally:
        if ws:
            ws.close()
        if server:
            server.stop()


# ---- self-test ------------------------------------------------------------------------------

def self_test():
    """The WebSocket reader against hand-made server frames over a socket pair (16- and
    64-bit lengths, a fragmented message, a ping that must be answered with a masked pong,
    the close handshake), and the PNG check on a uniform and a noisy image."""
    ours, theirs = socket.socketpair()
    ws = WebSocket(ours)
    ws.start()

    def frame(op, payload, fin=True):
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | op])
        if n < 126:
            head += bytes([n])
        elif n < 65536:
            head += bytes([126]) + struct.pack("!H", n)
        else:
            head += bytes([127]) + struct.pack("!Q", n)
        return head + payload

    big = json.dumps({"type": "big", "data": "x" * 70000}).encode()
    mid = json.dumps({"type": "mid", "data": "y" * 300}).encode()
    theirs.sendall(frame(1, b'{"type": "status"}') + frame(1, mid) + frame(9, b"hi") +
                   frame(1, big[:10], fin=False) + frame(0, big[10:]))
    ws.wait_until(lambda msgs: len(msgs) == 3, 5)
    got = [m["type"] for _, m in ws.messages]
    assert got == ["status", "mid", "big"], got
    assert len(ws.messages[2][1]["data"]) == 70000
    assert all(a[0] <= b[0] for a, b in zip(ws.messages, ws.messages[1:]))
    pong = read_client_frame(theirs)
    assert pong == (0xA, b"hi"), pong
    theirs.sendall(frame(8, struct.pack("!H", 1000)))
    ws.reader.join(5)
    assert ws.closed and ws.error is None
    assert read_client_frame(theirs) == (0x8, struct.pack("!H", 1000))
    theirs.close()
    ours.close()

    tmp = os.path.join(os.environ.get("TMPDIR", "/tmp"), "bench_serve_selftest_%d" % os.getpid())
    os.makedirs(tmp, exist_ok=True)
    try:
        w = h = 64
        flat = os.path.join(tmp, "flat.png")
        write_png(flat, w, h, bytes([100, 150, 200]) * (w * h))
        noisy = os.path.join(tmp, "noisy.png")
        rnd = random.Random(7)
        write_png(noisy, w, h, bytes(rnd.randrange(256) for _ in range(w * h * 3)))
        for bad, why in ((flat, "uniform"), (noisy, "wrong size")):
            try:
                png_check(bad, w, h) if bad == flat else png_check(bad, w * 2, h)
                raise AssertionError("png_check accepted a %s image" % why)
            except BenchError:
                pass
        facts = png_check(noisy, w, h)
        assert facts["distinct_values"] > 200, facts
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("self-test passed")
    return 0


def read_client_frame(sock):
    """Reads one masked client frame from `sock`; returns (opcode, unmasked payload)."""
    def need(n):
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise AssertionError("connection closed")
            out += chunk
        return out
    b0, b1 = need(2)
    assert b0 & 0x80 and b1 & 0x80, "client frames must be final and masked"
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", need(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", need(8))[0]
    mask = need(4)
    return b0 & 0x0F, bytes(b ^ mask[i & 3] for i, b in enumerate(need(n)))


def write_png(path, w, h, rgb):
    """An 8-bit RGB PNG with the Sub filter on every row (test images only)."""
    rows = bytearray()
    for y in range(h):
        row = rgb[y * w * 3:(y + 1) * w * 3]
        rows.append(1)
        rows.extend((row[i] - (row[i - 3] if i >= 3 else 0)) & 0xFF for i in range(len(row)))

    def chunk(kind, body):
        return (struct.pack("!I", len(body)) + kind + body +
                struct.pack("!I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack("!IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(bytes(rows), 4)) + chunk(b"IEND", b""))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
