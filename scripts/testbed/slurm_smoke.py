#!/usr/bin/env python3
"""Smoke test for the Slurm testbed (scripts/testbed/slurm.sh).

Exercises, against slurmrestd v0.0.38 with a self-minted HS256 JWT, what the
Slurm adapter relies on, and records the exact replies of the REST quirks so
that the adapter can map them:

  ping; invalid/missing token; empty result; account tree
  province -> prefecture -> project with a GrpTRES cpu=2 quota on the project;
  QOS create; a 3-CPU job pends on the quota while a 1-CPU job runs; raising
  the quota (REST first, sacctmgr when REST does not apply it) releases the
  pending job; cleanup.

Usage:  eval "$(scripts/testbed/slurm.sh env)"; python3 scripts/testbed/slurm_smoke.py [--report FILE]
Python stdlib only. Run as root (sbatch submits as the token user, root).
Exit status 0 when every check passed.
"""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

API = os.environ.get("SLURMRESTD_API_VERSION", "v0.0.38")
URL = os.environ["SLURMRESTD_URL"].rstrip("/")
USER = os.environ["SLURM_USER"]
CLUSTER = os.environ.get("SLURM_CLUSTER", "yunguan")
SACCTMGR = os.environ.get("SLURM_SACCTMGR", "/usr/bin/sacctmgr")
SCONTROL = os.environ.get("SLURM_SCONTROL", "/usr/bin/scontrol")
SBATCH = os.environ.get("SLURM_SBATCH", "/usr/bin/sbatch")
with open(os.environ["SLURM_JWT_KEY"], "rb") as fh:
    KEY = fh.read()

# Account tree of the test; names are prefixed so cleanup never touches
# anything else in the cluster.
PROV, PREF, PROJ = "yg-smoke-prov", "yg-smoke-pref", "yg-smoke-proj"
QOS = "yg-smoke-qos"

REPORT = {}  # quirk name -> {"status": ..., "body": ...}
FAILED = []


def log(msg):
    print(f"[smoke {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def check(ok, what):
    log(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        FAILED.append(what)
    return ok


def b64url(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def mint_jwt(user, key=KEY, lifespan=900, now=None):
    """HS256 token in the form slurmctld's auth/jwt expects (claim `sun`)."""
    now = int(time.time()) if now is None else now
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps({"exp": now + lifespan, "iat": now, "sun": user}).encode())
    sig = b64url(hmac.new(key, head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + sig).decode()


TOKEN = mint_jwt(USER)


def rest(method, path, body=None, token=TOKEN, user=USER):
    """Returns (HTTP status, parsed JSON or raw text). Never raises on HTTP errors."""
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["X-SLURM-USER-TOKEN"] = token
    if user is not None:
        headers["X-SLURM-USER-NAME"] = user
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(URL + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def short(body):
    """The part of a reply worth recording: everything but `meta` (the plugin
    and Slurm version, the same in every reply), or the raw text."""
    if isinstance(body, dict):
        return {k: v for k, v in body.items() if k != "meta"}
    return body[:300]


def record(name, status, body):
    REPORT[name] = {"status": status, "body": short(body)}
    log(f"      {name}: HTTP {status} {json.dumps(short(body))[:300]}")


def run(*cmd, check_rc=True):
    res = subprocess.run(cmd, capture_output=True, text=True)
    if check_rc and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> {res.returncode}: {res.stderr.strip()}")
    return res.stdout.strip()


def wait_for(pred, seconds, step=0.5):
    end = time.time() + seconds
    while True:
        val = pred()
        if val or time.time() > end:
            return val
        time.sleep(step)


def tres(**counts):
    return [{"type": k, "count": v} for k, v in counts.items()]


def account_assoc(account):
    """The account's own association (no user) from slurmdbd, or None."""
    status, body = rest("GET", f"/slurmdb/{API}/associations?account={account}&cluster={CLUSTER}")
    if status != 200:
        return None
    for assoc in body.get("associations", []):
        if assoc.get("account") == account and not assoc.get("user"):
            return assoc
    return None


def assoc_cpu_limit(assoc):
    for t in (assoc or {}).get("max", {}).get("tres", {}).get("total", []) or []:
        if t.get("type") == "cpu":
            return t.get("count")
    return None


def ctld_grp_tres(account):
    """GrpTRES as slurmctld enforces it right now (scontrol show assoc_mgr)."""
    out = run(SCONTROL, "-o", "show", "assoc_mgr", f"accounts={account}", "flags=assoc", check_rc=False)
    for line in out.splitlines():
        if f"Account={account} " in line and "UserName= " in line:
            for field in line.split():
                if field.startswith("GrpTRES="):
                    return field[len("GrpTRES="):]
    return None


def job_state(job_id):
    status, body = rest("GET", f"/slurm/{API}/job/{job_id}")
    if status != 200 or not body.get("jobs"):
        return None, None
    job = body["jobs"][0]
    return job.get("job_state"), job.get("state_reason")


def cleanup(job_ids=()):
    """Cancel our jobs, then remove the tree leaf-first and the QOS. Retries,
    because an account with jobs still completing cannot be deleted."""
    for jid in job_ids:
        rest("DELETE", f"/slurm/{API}/job/{jid}")
    out = run("/usr/bin/squeue", "-h", "-o", "%i %a", check_rc=False)
    for line in out.splitlines():
        jid, acct = line.split()
        if acct.startswith("yg-smoke-"):
            rest("DELETE", f"/slurm/{API}/job/{jid}")
    for account in (PROJ, PREF, PROV):
        def gone(account=account):
            status, _ = rest("GET", f"/slurmdb/{API}/account/{account}")
            if status != 200:
                return True
            rest("DELETE", f"/slurmdb/{API}/account/{account}")
            return False
        wait_for(gone, 30, step=1)
    rest("DELETE", f"/slurmdb/{API}/qos/{QOS}")


def main():
    t_start = time.time()
    report_path = sys.argv[sys.argv.index("--report") + 1] if "--report" in sys.argv else None

    # --- REST basics and auth errors -----------------------------------
    status, body = rest("GET", f"/slurm/{API}/ping")
    check(status == 200 and body.get("pings", [{}])[0].get("ping") == "UP", f"ping -> {status}")

    status, body = rest("GET", f"/slurm/{API}/ping", token=mint_jwt(USER, key=b"not-the-key-" * 3))
    record("invalid_token_wrong_key", status, body)
    status, body = rest("GET", f"/slurm/{API}/ping", token="garbage")
    record("invalid_token_malformed", status, body)
    status, body = rest("GET", f"/slurm/{API}/ping", token=mint_jwt(USER, now=int(time.time()) - 7200))
    record("invalid_token_expired", status, body)
    status, body = rest("GET", f"/slurm/{API}/ping", token=None, user=None)
    record("missing_token", status, body)
    status, body = rest("GET", f"/slurm/{API}/jobs", token=mint_jwt(USER, key=b"x" * 32))
    record("invalid_token_jobs", status, body)
    status, body = rest("GET", f"/slurmdb/{API}/accounts", token=mint_jwt(USER, key=b"x" * 32))
    record("invalid_token_slurmdb", status, body)
    check(REPORT["invalid_token_wrong_key"]["status"] >= 400, "a token with a wrong signature is refused")

    # --- empty results --------------------------------------------------
    cleanup()  # leftovers of an interrupted earlier run
    status, body = rest("GET", f"/slurmdb/{API}/associations?account=yg-smoke-nope")
    record("empty_associations", status, body)
    status, body = rest("GET", f"/slurmdb/{API}/account/yg-smoke-nope")
    record("empty_account", status, body)
    status, body = rest("GET", f"/slurmdb/{API}/qos/yg-smoke-nope")
    record("empty_qos", status, body)

    # --- account tree ---------------------------------------------------
    t0 = time.time()
    status, body = rest("POST", f"/slurmdb/{API}/accounts", {"accounts": [
        {"name": PROV, "description": "smoke province", "organization": "yunguan"},
        {"name": PREF, "description": "smoke prefecture", "organization": "yunguan"},
        {"name": PROJ, "description": "smoke project", "organization": "yunguan"},
    ]})
    record("accounts_create", status, body)
    # Associations one per request and without a "user" key (see the notes):
    # an error in a list stops processing of the rest of it.
    for account, parent, extra in (
        (PROV, "root", {}),
        (PREF, PROV, {}),
        (PROJ, PREF, {"max": {"tres": {"total": tres(cpu=2)}}}),
    ):
        status, body = rest("POST", f"/slurmdb/{API}/associations", {"associations": [
            dict({"account": account, "cluster": CLUSTER, "parent_account": parent}, **extra)]})
        record(f"association_create_{account}", status, body)
    # The user association lets root submit jobs to the project account.
    status, body = rest("POST", f"/slurmdb/{API}/associations", {"associations": [
        {"account": PROJ, "cluster": CLUSTER, "user": USER}]})
    record("user_association_create", status, body)

    tree = {a: account_assoc(a) for a in (PROV, PREF, PROJ)}
    check(all(tree.values()), "province/prefecture/project associations exist (GET)")
    check((tree[PREF] or {}).get("parent_account") == PROV
          and (tree[PROJ] or {}).get("parent_account") == PREF, "parents are province -> prefecture -> project")
    check(assoc_cpu_limit(tree[PROJ]) == 2, "project GrpTRES cpu=2 stored in slurmdbd")
    grp = wait_for(lambda: (ctld_grp_tres(PROJ) or "").startswith("cpu=2"), 10)
    check(bool(grp), f"slurmctld enforces GrpTRES {ctld_grp_tres(PROJ)}")
    user_ok = wait_for(lambda: f"UserName={USER}(" in run(
        SCONTROL, "-o", "show", "assoc_mgr", f"accounts={PROJ}", f"users={USER}", "flags=assoc", check_rc=False), 10)
    check(bool(user_ok), f"slurmctld knows the {USER} association on {PROJ}")
    REPORT["timing_account_tree_s"] = round(time.time() - t0, 2)

    # --- QOS ------------------------------------------------------------
    status, body = rest("POST", f"/slurmdb/{API}/qos", {"qos": [
        {"name": QOS + "-lc", "description": "schema key"}]})
    record("qos_create_lowercase_key", status, body)
    status, body = rest("POST", f"/slurmdb/{API}/qos", {"QOS": [
        {"name": QOS, "description": "smoke qos",
         "limits": {"max": {"tres": {"total": tres(cpu=3)}}}}]})
    record("qos_create", status, body)
    status, body = rest("GET", f"/slurmdb/{API}/qos/{QOS}")
    qos = (body.get("QOS") or body.get("qos") or [{}])[0] if status == 200 else {}
    check(qos.get("name") == QOS, f"QOS {QOS} created (GET -> {status})")
    REPORT["qos_total_after_create"] = qos.get("limits", {}).get("max", {}).get("tres", {}).get("total")
    # Updating an existing QOS is the same POST; it applies live.
    status, body = rest("POST", f"/slurmdb/{API}/qos", {"QOS": [
        {"name": QOS, "limits": {"max": {"tres": {"total": tres(cpu=5)}}}}]})
    record("qos_update", status, body)
    _, body = rest("GET", f"/slurmdb/{API}/qos/{QOS}")
    total = ((body.get("QOS") or [{}])[0].get("limits", {}).get("max", {}).get("tres", {}).get("total") or [])
    check([t.get("count") for t in total if t.get("type") == "cpu"] == [5], f"QOS GrpTRES updated over REST: {total}")

    # --- quota enforcement ----------------------------------------------
    def sbatch(cpus, name):
        return run(SBATCH, "--parsable", f"--account={PROJ}", f"--cpus-per-task={cpus}", "--mem-per-cpu=256",
                   f"--job-name={name}", "--output=/dev/null", "--chdir=/tmp", "--wrap", "sleep 600").split(";")[0]

    big = sbatch(3, "yg-smoke-big")
    small = sbatch(1, "yg-smoke-small")
    jobs = [big, small]
    log(f"      submitted big={big} (3 cpu), small={small} (1 cpu)")
    try:
        running = wait_for(lambda: job_state(small)[0] == "RUNNING", 20)
        check(bool(running), f"1-CPU job runs: {job_state(small)}")
        wait_for(lambda: "Grp" in (job_state(big)[1] or ""), 20)
        st = job_state(big)
        REPORT["pending_reason"] = st[1]
        check(st[0] == "PENDING" and "GrpCpu" in (st[1] or ""), f"3-CPU job pends on the quota: {st}")

        # Raise the quota over REST first (the adapter would prefer it).
        t0 = time.time()
        status, body = rest("POST", f"/slurmdb/{API}/associations", {"associations": [
            {"account": PROJ, "cluster": CLUSTER, "parent_account": PREF,
             "max": {"tres": {"total": tres(cpu=4)}}}]})
        record("association_update_grptres", status, body)
        db_ok = wait_for(lambda: assoc_cpu_limit(account_assoc(PROJ)) == 4, 4)
        ctld_ok = wait_for(lambda: (ctld_grp_tres(PROJ) or "").startswith("cpu=4"), 1)
        REPORT["association_update_grptres"].update(
            applied_in_slurmdbd=bool(db_ok), applied_in_slurmctld=bool(ctld_ok),
            slurmdbd_limit_after=assoc_cpu_limit(account_assoc(PROJ)), slurmctld_grptres_after=ctld_grp_tres(PROJ))
        log(f"      REST GrpTRES update applied: slurmdbd={bool(db_ok)} slurmctld={bool(ctld_ok)}")
        REPORT["raise_method"] = "rest"
        if not (db_ok and ctld_ok):
            t0 = time.time()
            out = run(SACCTMGR, "-i", "modify", "account", PROJ, "where", f"cluster={CLUSTER}",
                      "set", "GrpTRES=cpu=4")
            REPORT["raise_method"] = "sacctmgr"
            REPORT["sacctmgr_modify_output"] = out
            ctld_ok = wait_for(lambda: (ctld_grp_tres(PROJ) or "").startswith("cpu=4"), 10)
            check(bool(ctld_ok), f"sacctmgr raised GrpTRES: slurmctld has {ctld_grp_tres(PROJ)}")
        released = wait_for(lambda: job_state(big)[0] == "RUNNING", 30)
        REPORT["timing_release_after_raise_s"] = round(time.time() - t0, 2)
        check(bool(released), f"raised quota releases the pending job: {job_state(big)} "
                              f"after {REPORT['timing_release_after_raise_s']} s via {REPORT['raise_method']}")

        # Capacity as the adapter reads it.
        status, body = rest("GET", f"/slurm/{API}/nodes")
        node = (body.get("nodes") or [{}])[0] if status == 200 else {}
        check(node.get("cpus") == 4 and node.get("alloc_cpus") == 4, f"node cpus/alloc over REST: "
              f"{node.get('cpus')}/{node.get('alloc_cpus')} gres={node.get('gres')}")
    finally:
        t0 = time.time()
        cleanup(jobs)
        REPORT["timing_cleanup_s"] = round(time.time() - t0, 2)

    status, body = rest("GET", f"/slurmdb/{API}/associations?account={PROJ}")
    check(status != 200 or not body.get("associations"), f"tree removed (GET associations -> {status})")
    status, body = rest("GET", f"/slurmdb/{API}/qos/{QOS}")
    check(status != 200 or not (body.get("QOS") or body.get("qos")), f"QOS removed (GET -> {status})")
    rest("DELETE", f"/slurmdb/{API}/qos/{QOS}-lc")
    status, body = rest("DELETE", f"/slurmdb/{API}/account/{PROJ}")
    record("delete_missing_account", status, body)

    REPORT["timing_total_s"] = round(time.time() - t_start, 2)
    REPORT["failed"] = FAILED
    print(json.dumps(REPORT, indent=2))
    if report_path:
        with open(report_path, "w") as fh:
            json.dump(REPORT, fh, indent=2)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
