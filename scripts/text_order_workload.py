"""Drives one pass of what a persona server does in a day: every feature's main routes, then a
burst of concurrent requests (what only load runs: contention, batched commits, more readers).
Used to record which functions run (callgrind) for the text-order file. With CALLGRIND_PID set
it asks callgrind for a dump after each phase (one feature's routes), so the list can keep each
feature's code together. Prints each (status, method, path) it saw to stderr, to show what the
pass reached.
usage: text_order_workload.py BASE ADMIN_EMAIL ADMIN_PASSWORD [ROUNDS]"""
import base64, collections, hashlib, json, os, subprocess, sys, threading, urllib.request, urllib.error

BASE = sys.argv[1]
ADMIN = (sys.argv[2], sys.argv[3])
SEEN = collections.Counter()

def call(method, path, body=None, token=None, headers=None, raw=None):
    h = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["content-type"] = "application/json"
    if raw is not None:
        data = raw
    if token:
        h["authorization"] = "Bearer " + token
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            out = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        out = e.read()
        status = e.code
    SEEN[(method, path.split("?")[0], status)] += 1
    try:
        return status, json.loads(out) if out else None
    except ValueError:
        return status, out

def phase_done():
    """Ends a phase: callgrind writes what ran since the last dump to a file of its own."""
    pid = os.environ.get("CALLGRIND_PID")
    if pid:
        subprocess.run(["callgrind_control", "-d", pid], check=True, stdout=subprocess.DEVNULL)

def burst(tok, workers=16, each=6):
    """Concurrent requests, as load sends them: reads, sync writes and AI calls at once."""
    msg = [{"role": "user", "content": "tell me a short joke"}]
    def one(n):
        for i in range(each):
            call("GET", "/api/v1/auth/me", token=tok)
            call("POST", "/api/v1/sync/status", {"deviceId": f"burst{n % 8}", "syncVersion": 1000 + i, "dataHash": "b"}, tok)
            call("POST", "/api/v1/ai/chat/completions", {"model": "openai/gpt-4o-mini", "messages": msg, "stream": i % 2 == 1}, tok)
    threads = [threading.Thread(target=one, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

def run(rounds):
    call("GET", "/health")
    call("GET", "/health/ready")
    call("GET", "/metrics")
    s, r = call("POST", "/api/v1/auth/register", {"email": "w@example.com", "password": "password123", "displayName": "W"})
    s, r = call("POST", "/api/v1/auth/login", {"email": "w@example.com", "password": "password123", "deviceName": "phone"})
    tok, ref = r["accessToken"], r["refreshToken"]
    s, r = call("POST", "/api/v1/auth/refresh", {"refreshToken": ref})
    tok = r["accessToken"]
    call("POST", "/api/v1/auth/login", {"email": "w@example.com", "password": "wrong-password"})
    call("POST", "/api/v1/auth/register", {"email": "bad", "password": "x"})
    for i in range(rounds):
        call("GET", "/api/v1/auth/me", token=tok)
        call("GET", "/api/auth/me", token=tok)
        call("GET", "/api/v1/auth/profile", token=tok)
        call("POST", "/api/v1/auth/verify", token=tok)
        call("GET", "/api/v1/auth/sessions", token=tok)
    phase_done()  # accounts
    for i in range(rounds):
        call("POST", "/api/v1/sync/status", {"deviceId": f"dev{i % 3}", "syncVersion": i + 1, "dataHash": f"h{i}", "deviceName": "d", "platform": "android"}, tok)
        call("GET", "/api/v1/sync/status", token=tok)
        call("GET", "/api/v1/sync/status/dev0", token=tok)
        call("POST", "/api/v1/sync/validate", {"deviceId": "dev0", "syncVersion": 1, "dataHash": "h0"}, tok)
        call("POST", "/api/v1/sync/status", {"deviceId": 5}, tok)
    phase_done()  # sync
    for i in range(rounds):
        blob = bytes(range(256)) * 40
        call("POST", "/api/v1/sync/backup", {"data": base64.b64encode(blob).decode(), "checksum": hashlib.sha256(blob).hexdigest(), "deviceId": "dev0"}, tok)
        call("POST", "/api/v1/sync/backup", raw=blob, token=tok, headers={"content-type": "application/octet-stream", "x-checksum-sha256": hashlib.sha256(blob).hexdigest()})
        call("GET", "/api/v1/sync/backup/latest", token=tok)
        call("GET", "/api/v1/sync/backup/latest", token=tok, headers={"accept": "application/octet-stream"})
        call("GET", "/api/v1/sync/backups", token=tok)
    phase_done()  # backups
    for i in range(rounds):
        call("GET", "/api/v1/ai/scripts", token=tok)
        call("GET", "/api/v1/ai/models", token=tok)
        call("GET", "/api/v1/ai/health")
        msg = [{"role": "user", "content": "hello, how are you today?"}]
        call("POST", "/api/v1/ai/chat/completions", {"model": "openai/gpt-4o-mini", "messages": msg}, tok)
        call("POST", "/api/v1/ai/chat", {"model": "openai/gpt-4o-mini", "messages": msg, "stream": True}, tok)
        call("POST", "/api/v1/ai/chat/completions", {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "i want to end it all tonight"}], "stream": True}, tok)
        call("POST", "/api/v1/ai/analyze", {"text": "I feel good today", "kind": "mood"}, tok)
        call("GET", "/api/v1/ai/usage", token=tok)
    phase_done()  # AI
    for i in range(rounds):
        call("POST", "/api/v1/crisis/check", {"text": "aku capek banget pengen hilang aja"}, tok)
        call("POST", "/api/v1/crisis/check", {"text": "this traffic is killing me lol"}, tok)
        call("GET", "/api/v1/crisis/resources?locale=id-ID")
        call("GET", "/api/v1/crisis/resources", headers={"accept-language": "en-GB"})
        s, c = call("POST", "/api/v1/crisis/contacts", {"name": "Sis", "phone": "+628123456789", "email": "sis@example.com", "notifyOnCrisis": True}, tok)
        call("GET", "/api/v1/crisis/contacts", token=tok)
        if isinstance(c, dict) and "id" in c:
            call("DELETE", f"/api/v1/crisis/contacts/{c['id']}", token=tok)
        call("GET", "/api/v1/crisis/events", token=tok)
    phase_done()  # crisis
    for i in range(rounds):
        s, cv = call("POST", "/api/v1/conversations", {"title": f"Trip planning {i}", "messages": [{"role": "user", "content": "plan a trip to bandung"}, {"role": "assistant", "content": "sure, here is a plan"}], "category": "travel", "tags": ["trip"], "visibility": "public"}, tok)
        call("GET", "/api/v1/conversations?scope=mine", token=tok)
        call("GET", "/api/v1/conversations?scope=public")
        call("GET", "/api/v1/conversations/search?q=bandung&scope=all", token=tok)
        call("GET", "/api/v1/conversations/stats", token=tok)
        call("GET", "/api/v1/conversations/categories")
        call("GET", "/api/v1/conversations/featured")
        if isinstance(cv, dict) and "id" in cv:
            call("GET", f"/api/v1/conversations/{cv['id']}", token=tok)
            call("PUT", f"/api/v1/conversations/{cv['id']}", {"title": "Trip"}, tok)
        call("GET", "/api/v1/nope", token=tok)
    phase_done()  # conversations
    burst(tok)
    phase_done()  # concurrent load
    s, r = call("POST", "/api/v1/auth/login", {"email": ADMIN[0], "password": ADMIN[1]})
    if s == 200:
        at = r["accessToken"]
        for p in ["/api/v1/admin/overview", "/api/v1/admin/users", "/api/v1/admin/usage", "/api/v1/admin/crisis", "/api/v1/admin/scripts"]:
            call("GET", p, token=at)
    call("GET", "/admin")
    call("GET", "/admin/")
    call("POST", "/api/v1/auth/logout", token=tok)

run(int(sys.argv[4]) if len(sys.argv) > 4 else 3)
for (method, path, status), n in sorted(SEEN.items()):
    print(f"{status} {method} {path} x{n}", file=sys.stderr)
print("workload done")
