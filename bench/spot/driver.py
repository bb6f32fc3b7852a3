#!/usr/bin/env python3
"""Runs the spot-check sequences against kura, ATS and Varnish; writes OUT/results.json + results.md.

usage: driver.py OUTDIR [scenario ...]
"""
import http.client
import json
import os
import re
import sys
import time
from email.utils import formatdate

OUT = sys.argv[1]
ONLY = sys.argv[2:]
ORIGIN = ("127.0.0.1", 19500)
TARGETS = {"kura": 19591, "ats": 19510, "varnish": 19520}
HOST = "www.test"
KURA_LOG = os.path.join(os.path.dirname(OUT.rstrip("/")), "run/kura/logs/www.test/access.log")


def origin(method, path, body=None):
    c = http.client.HTTPConnection(*ORIGIN, timeout=5)
    c.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
    r = c.getresponse()
    d = r.read()
    c.close()
    return d


def cfg(path, **kw):
    kw["path"] = path
    origin("POST", "/__cfg", json.dumps(kw))


def count(path):
    return json.loads(origin("GET", "/__count?path=" + path))


def kura_lines():
    try:
        with open(KURA_LOG) as f:
            return [l for l in f.read().splitlines() if l and not l.startswith("#")]
    except FileNotFoundError:
        return []


def via_code(via):
    # ATS verbose Via: "... [uScMsSf pSeN:t cCMi p sS]" -> keep the first bracket group
    m = re.search(r"\[([^\]]*)\]", via or "")
    return m.group(1) if m else ""


def req(target, path, method="GET", headers=None, body=None, note=""):
    port = TARGETS[target]
    h = {"Host": HOST}
    h.update(headers or {})
    before = len(kura_lines()) if target == "kura" else 0
    t0 = time.time()
    rec = {"target": target, "path": path, "method": method, "req_headers": headers or {}, "note": note}
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        rec.update(status=r.status, body=data.decode(errors="replace")[:80],
                   headers={k.lower(): v for k, v in r.getheaders()})
    except Exception as e:  # noqa
        rec.update(status=None, body="EXC %r" % e, headers={})
    rec["ms"] = int((time.time() - t0) * 1000)
    hd = rec["headers"]
    if target == "kura":
        code = ""
        for _ in range(40):
            lines = kura_lines()
            if len(lines) > before:
                f = lines[-1].split(" ")
                code = f[16] if len(f) > 16 else "?"
                break
            time.sleep(0.05)
        rec["hit"] = "%s %s" % (hd.get("x-cache", "-"), code)
    elif target == "ats":
        rec["hit"] = via_code(hd.get("via"))
    else:
        rec["hit"] = "%s xv=%s" % (hd.get("x-cache", "-"), hd.get("x-varnish", "-"))
    return rec


def fmt_rec(r):
    hd = r["headers"]
    parts = ["%s" % r["status"], repr(r["body"].strip()[:40])]
    parts.append("hit=[%s]" % r["hit"])
    if "age" in hd:
        parts.append("Age=%s" % hd["age"])
    for k in ("cache-status", "content-range", "warning", "set-cookie", "cdn-cache-control",
              "surrogate-control", "cache-control", "vary", "etag"):
        if k in hd:
            parts.append("%s=%s" % (k, hd[k]))
    return " ".join(parts)


LM_1DAY = formatdate(time.time() - 86400, usegmt=True)
RESULTS = []


def scenario(name, title):
    def deco(fn):
        fn.scen = (name, title)
        SCEN.append(fn)
        return fn
    return deco


SCEN = []


def run_one(fn, target):
    name, title = fn.scen
    base = "/%s/%s" % (target, name)
    steps = []

    def R(path_suffix="", **kw):
        r = req(target, base + path_suffix, **kw)
        steps.append(r)
        return r

    extra = fn(base, R) or {}
    paths = {s["path"] for s in steps}
    counts = {p: count(p) for p in sorted(paths)}
    RESULTS.append({"scenario": name, "title": title, "target": target, "steps": steps,
                    "origin": counts, "extra": extra})


def sl(s):
    time.sleep(s)


# ---------------------------------------------------------------- sequences
@scenario("a", "Cache-Control: max-age=60 -> 2 GETs")
def a(p, R):
    cfg(p, headers=[["Cache-Control", "max-age=60"]], body="a-body")
    R(); R()


@scenario("b", "s-maxage=60, max-age=0 -> 2 GETs")
def b(p, R):
    cfg(p, headers=[["Cache-Control", "s-maxage=60, max-age=0"]], body="b-body")
    R(); R()


@scenario("c", "no freshness info, Last-Modified 1 day old -> 2 GETs")
def c(p, R):
    cfg(p, headers=[["Last-Modified", LM_1DAY]], body="c-body")
    R(); R()


@scenario("d", "no freshness info, no validator -> 2 GETs")
def d(p, R):
    cfg(p, headers=[], body="d-body")
    R(); R()


@scenario("e", "Cache-Control: no-cache + ETag (origin answers 304 to a matching INM) -> 2 GETs")
def e(p, R):
    cfg(p, headers=[["Cache-Control", "no-cache"]], body="e-body #{n}", etag='"e1"', inm304=True)
    R(); R()


@scenario("f", "max-age=1 + ETag; GET, wait 2.2 s, GET, GET (origin 304s a matching INM)")
def f(p, R):
    cfg(p, headers=[["Cache-Control", "max-age=1"]], body="f-body #{n}", etag='"f1"', inm304=True)
    R(); sl(2.2); R(); sl(0.3); R()


@scenario("g1", "max-age=1; GET; origin down (closes conn); wait 2.2 s; GET; wait 1 s; GET; wait 3 s; GET")
def g1(p, R):
    cfg(p, headers=[["Cache-Control", "max-age=1"]], body="g1-body #{n}")
    R(); origin("GET", "/__down?path=" + p); sl(2.2)
    R(); sl(1); R(); sl(3); R()
    origin("GET", "/__up?path=" + p)


@scenario("g2", "as g1 with Cache-Control: max-age=1, must-revalidate")
def g2(p, R):
    cfg(p, headers=[["Cache-Control", "max-age=1, must-revalidate"]], body="g2-body #{n}")
    R(); origin("GET", "/__down?path=" + p); sl(2.2)
    R(); sl(1); R(); sl(3); R()
    origin("GET", "/__up?path=" + p)


@scenario("g3", "max-age=1, must-revalidate + ETag; GET; down; wait 2.2 s; GET; origin up; GET at once; wait 3.2 s; GET")
def g3(p, R):
    cfg(p, headers=[["Cache-Control", "max-age=1, must-revalidate"]], body="g3-body #{n}", etag='"g3"', inm304=True)
    R(); origin("GET", "/__down?path=" + p); sl(2.2)
    R(); origin("GET", "/__up?path=" + p)
    R(); sl(3.2); R()


@scenario("g4", "no-cache + ETag; GET; down; wait 2.2 s; GET; origin up; GET at once; wait 3.2 s; GET")
def g4(p, R):
    cfg(p, headers=[["Cache-Control", "no-cache"]], body="g4-body #{n}", etag='"g4"', inm304=True)
    R(); origin("GET", "/__down?path=" + p); sl(2.2)
    R(); origin("GET", "/__up?path=" + p)
    R(); sl(3.2); R()


@scenario("h", "max-age=1; GET; every later origin request -> 503; wait 2.2 s; GET; GET; wait 1 s; GET")
def h(p, R):
    cfg(p, headers=[["Cache-Control", "max-age=1"]], body="h-body #{n}", after_first=503)
    R(); sl(2.2); R(); R(); sl(1); R()


@scenario("h2", "max-age=1, must-revalidate + ETag; GET; later origin requests -> 503; wait 2.2 s; GET; GET; origin healed; GET; wait 31 s; GET")
def h2(p, R):
    cfg(p, headers=[["Cache-Control", "max-age=1, must-revalidate"]], body="h2-body #{n}", etag='"h2"', inm304=True,
        after_first=503)
    R(); sl(2.2); R(); R(); origin("GET", "/__heal?path=" + p); R(); sl(31); R()


@scenario("i", "max-age=60 + ETag; GET; GET with matching If-None-Match; GET with non-matching INM")
def i(p, R):
    cfg(p, headers=[["Cache-Control", "max-age=60"]], body="i-body", etag='"i1"', inm304=True)
    R(); R(headers={"If-None-Match": '"i1"'}); R(headers={"If-None-Match": '"zz"'})


@scenario("j1", "max-age=60, body 0123456789; GET; GET Range: bytes=0-3; GET Range: bytes=20-30")
def j1(p, R):
    cfg(p, headers=[["Cache-Control", "max-age=60"]], body="0123456789")
    R(); R(headers={"Range": "bytes=0-3"}); R(headers={"Range": "bytes=20-30"})


@scenario("j2", "max-age=60, body 0123456789; Range: bytes=0-3 on a miss; same Range again")
def j2(p, R):
    cfg(p, headers=[["Cache-Control", "max-age=60"]], body="0123456789")
    R(headers={"Range": "bytes=0-3"}); sl(0.3); R(headers={"Range": "bytes=0-3"})


@scenario("k", "max-age=60, Vary: Accept-Language; GET en, fr, en, fr, (none)")
def k(p, R):
    cfg(p, headers=[["Cache-Control", "max-age=60"], ["Vary", "Accept-Language"]], body="k-body", per_lang=True)
    for al in ("en", "fr", "en", "fr"):
        R(headers={"Accept-Language": al})
    R()


@scenario("k2", "max-age=60, Vary: Accept-Language; GET en, en, fr, fr, en")
def k2(p, R):
    cfg(p, headers=[["Cache-Control", "max-age=60"], ["Vary", "Accept-Language"]], body="k2-body", per_lang=True)
    for al in ("en", "en", "fr", "fr", "en"):
        R(headers={"Accept-Language": al})


@scenario("l", "max-age=60; GET; GET; POST (origin 200); GET")
def l_(p, R):
    cfg(p, headers=[["Cache-Control", "max-age=60"]], body="l-body #{n}")
    R(); R(); R(method="POST", body="x=1", headers={"Content-Type": "application/x-www-form-urlencoded"}); R()


@scenario("m1", "Cache-Control: private, max-age=60 -> 2 GETs")
def m1(p, R):
    cfg(p, headers=[["Cache-Control", "private, max-age=60"]], body="m1-body #{n}")
    R(); R()


@scenario("m2", "Cache-Control: max-age=60 + Set-Cookie (text/plain) -> 2 GETs")
def m2(p, R):
    cfg(p, headers=[["Cache-Control", "max-age=60"], ["Set-Cookie", "sid=abc; Path=/"]], body="m2-body #{n}")
    R(); R()


@scenario("m3", "Cache-Control: max-age=60 + Set-Cookie (application/octet-stream) -> 2 GETs")
def m3(p, R):
    cfg(p, headers=[["Cache-Control", "max-age=60"], ["Set-Cookie", "sid=abc; Path=/"],
                    ["Content-Type", "application/octet-stream"]], body="m3-body #{n}")
    R(); R()


@scenario("n", "CDN-Cache-Control: max-age=60 + Cache-Control: no-store -> 2 GETs")
def n(p, R):
    cfg(p, headers=[["CDN-Cache-Control", "max-age=60"], ["Cache-Control", "no-store"]], body="n-body #{n}")
    R(); R()


@scenario("n2", "Surrogate-Control: max-age=60 + Cache-Control: no-store -> 2 GETs")
def n2(p, R):
    cfg(p, headers=[["Surrogate-Control", "max-age=60"], ["Cache-Control", "no-store"]], body="n2-body #{n}")
    R(); R()


# ---------------------------------------------------------------- main
ATS_LOG = os.path.join(os.path.dirname(OUT.rstrip("/")), "run/ats/log/squid.log")


def attach_ats_codes():
    # ATS writes its transaction log with a delay: match lines to ATS steps afterwards, in order, by URL path
    time.sleep(6)
    try:
        lines = open(ATS_LOG).read().splitlines()
    except OSError:
        return
    by_path = {}
    for ln in lines:
        f = ln.split(" ")
        if len(f) >= 6:
            by_path.setdefault(re.sub(r"^https?://[^/]+", "", f[5]), []).append(f[2])
    for r in RESULTS:
        if r["target"] != "ats":
            continue
        for s in r["steps"]:
            q = by_path.get(s["path"], [])
            s["hit"] += " " + (q.pop(0) if q else "?")


def main():
    origin("GET", "/__reset")
    for fn in SCEN:
        if ONLY and fn.scen[0] not in ONLY:
            continue
        for t in TARGETS:
            print("== %s %s" % (fn.scen[0], t), file=sys.stderr)
            run_one(fn, t)
    attach_ats_codes()
    with open(os.path.join(OUT, "results.json"), "w") as fp:
        json.dump(RESULTS, fp, indent=1)
    with open(os.path.join(OUT, "results.md"), "w") as fp:
        cur = None
        for r in RESULTS:
            if r["scenario"] != cur:
                cur = r["scenario"]
                fp.write("\n### %s: %s\n\n" % (cur, r["title"]))
            fp.write("**%s**\n\n" % r["target"])
            for i, s in enumerate(r["steps"], 1):
                rh = " ".join("%s: %s" % kv for kv in s["req_headers"].items())
                fp.write("%d. %s %s%s -> %s (%d ms)\n" % (i, s["method"], s["path"], (" [" + rh + "]") if rh else "",
                                                        fmt_rec(s), s["ms"]))
            for pth, cnt in r["origin"].items():
                lg = "; ".join("%s%s%s%s" % (x["method"], " INM=" + x["inm"] if x["inm"] else "",
                                              " IMS" if x["ims"] else "", " Range=" + x["range"] if x["range"] else "")
                               for x in cnt["log"])
                fp.write("\n   origin %s: %d request(s): %s\n" % (pth, cnt["count"], lg))
            fp.write("\n")
    print(open(os.path.join(OUT, "results.md")).read())


main()
