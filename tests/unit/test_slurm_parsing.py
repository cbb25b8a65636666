"""The Slurm adapter's pure parts, fed with replies captured from the real
testbed (Slurm 22.05.8, slurmrestd v0.0.38): TRES strings and lists, the
assoc_mgr dump, capacity from nodes, the error table, HS256 tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import jwt

from controlplane.vocabulary import Architecture, ResourceClass
from providers.base import (
    ProviderAuthError,
    ProviderNotFound,
    ProviderRejected,
    ProviderUnavailable,
)
from providers.slurm.capacity import capacity_from
from providers.slurm.commands import error_for_output
from providers.slurm.errors import Verdict, classify, parse_errors
from providers.slurm.quotas import parse_assoc_mgr_usage
from providers.slurm.tokens import KeyFileTokens, mint_hs256
from providers.slurm.tres import (
    gres_gpus,
    limits_from_association,
    minutes_to_units,
    sacctmgr_limits,
    tres_string,
)

CPU, GPU, MEM, HOURS = (ResourceClass.HPC_CPU, ResourceClass.HPC_GPU, ResourceClass.MEMORY_MIB,
                        ResourceClass.HPC_CORE_HOURS)


def test_tres_strings() -> None:
    assert tres_string("cpu=1,mem=256M,node=1,billing=1,gres/gpu=1") == {
        "cpu": 1, "mem": 256, "node": 1, "billing": 1, "gres/gpu": 1}
    assert tres_string("cpu=4,mem=8G,gres/gpu=2")["mem"] == 8192
    assert tres_string("mem=1.5G,bogus,x=") == {"mem": 1536}
    assert tres_string(None) == {}


def test_gres_gpus() -> None:
    assert gres_gpus("gpu:2") == 2
    assert gres_gpus("gpu:0") == 0
    assert gres_gpus("gpu:a100:1(IDX:0),gpu:v100:2(IDX:1-2)") == 3
    assert gres_gpus("gpu:a100:4(S:0-1)") == 4
    assert gres_gpus("") == gres_gpus(None) == 0


def test_limits_from_a_real_association() -> None:
    # After `sacctmgr … set GrpTRES=cpu=0,mem=2048,gres/gpu=1 GrpTRESMins=cpu=600`.
    assoc = {"max": {"tres": {
        "total": [{"type": "cpu", "name": None, "id": 1, "count": 0},
                  {"type": "mem", "name": None, "id": 2, "count": 2048},
                  {"type": "gres", "name": "gpu", "id": 1001, "count": 1}],
        "minutes": {"per": {"job": []}, "total": []},
        "group": {"minutes": [{"type": "cpu", "name": None, "id": 1, "count": 600}],
                  "active": []}}}}
    assert limits_from_association(assoc) == {CPU: 0, MEM: 2048, GPU: 1, HOURS: 10}
    assert limits_from_association({"max": {"tres": {"total": []}}}) == dict.fromkeys(
        (CPU, GPU, MEM, HOURS))


def test_sacctmgr_arguments_touch_only_given_classes() -> None:
    assert sacctmgr_limits({CPU: 2}) == ["GrpTRES=cpu=2"]
    assert sacctmgr_limits({GPU: 1, HOURS: 10, MEM: 4096}) == [
        "GrpTRES=gres/gpu=1,mem=4096", "GrpTRESMins=cpu=600"]
    assert sacctmgr_limits({}) == []


def test_core_hour_rounding() -> None:
    assert minutes_to_units(0, 60) == 0
    assert minutes_to_units(1, 60) == 1  # usage rounds up
    assert limits_from_association({"max": {"tres": {"group": {"minutes": [
        {"type": "cpu", "count": 90}]}}}})[HOURS] == 1  # a budget rounds down


# `scontrol -o show assoc_mgr accounts=yg-p flags=assoc`, one record a line.
_ACCOUNT_RECORD = " ".join([
    "ClusterName=yunguan Account=yg-p UserName= Partition= Priority=0 ID=11",
    "SharesRaw/Norm/Level/Factor=1/1.00/1/0.00 UsageRaw/Norm/Efctv=0.00/1.00/0.00",
    "ParentAccount=yg-d(10) Lft=3 DefAssoc=No GrpJobs=N(2) GrpJobsAccrue=N(0)",
    "GrpSubmitJobs=N(0) GrpWall=N(0.00)",
    "GrpTRES=cpu=4(3),mem=N(768),energy=N(0),node=N(1),billing=N(3),fs/disk=N(0),vmem=N(0),"
    "pages=N(0),gres/gpu=1(1)",
    "GrpTRESMins=cpu=600(61),mem=N(0),energy=N(0),node=N(0),billing=N(0),fs/disk=N(0),"
    "vmem=N(0),pages=N(0),gres/gpu=N(0)",
    "GrpTRESRunMins=cpu=N(0) MaxJobs= MaxJobsAccrue= MaxSubmitJobs= MaxWallPJ= MaxTRESPJ=",
    "MaxTRESPN= MaxTRESMinsPJ= MinPrioThresh=",
])
_USER_RECORD = (
    "ClusterName=yunguan Account=yg-p UserName=root(0) Partition= Priority=0 ID=12 "
    "ParentAccount= Lft=12 DefAssoc=No GrpJobs=N(2) GrpTRES=cpu=N(3) GrpTRESMins=cpu=N(61)"
)
ASSOC_MGR = "\n".join([
    "Current Association Manager state", "Association Records", _ACCOUNT_RECORD, _USER_RECORD,
])


def test_assoc_mgr_usage_of_the_account_association() -> None:
    usage = parse_assoc_mgr_usage(ASSOC_MGR, "yg-p")
    assert usage["GrpTRES"]["cpu"] == 3 and usage["GrpTRES"]["mem"] == 768
    assert usage["GrpTRES"]["gres/gpu"] == 1
    assert usage["GrpTRESMins"]["cpu"] == 61
    empty = "Current Association Manager state\nNo associations currently cached in Slurm.\n"
    assert parse_assoc_mgr_usage(empty, "yg-p") == {}
    assert parse_assoc_mgr_usage(ASSOC_MGR, "yg-other") == {}


def _node(**kw: object) -> dict[str, object]:
    node: dict[str, object] = {"architecture": "x86_64", "cpus": 4, "alloc_cpus": 1,
                               "real_memory": 8192, "alloc_memory": 256, "gres": "gpu:2",
                               "gres_used": "gpu:1", "state": "mixed", "state_flags": [],
                               "partitions": ["debug"]}
    node.update(kw)
    return node


def test_capacity_counts_unusable_nodes_idle_part_as_reserved() -> None:
    now = datetime.now(UTC)
    report = capacity_from(
        [_node(), _node(name="drained", state_flags=["DRAIN"]),
         _node(name="arm", architecture="aarch64", alloc_cpus=0, gres="", gres_used=""),
         _node(name="orphan", partitions=["closed"])],
        [{"name": "debug", "state": "UP"}, {"name": "closed", "state": "DOWN"}],
        now,
    )
    by = {(e.resource_class, e.architecture): e for e in report.entries}
    x86 = by[(CPU, Architecture.X86_64)]
    assert (x86.total, x86.used, x86.reserved) == (12, 3, 6)  # 2 unusable nodes × 3 idle
    assert by[(GPU, Architecture.X86_64)].total == 6
    assert by[(CPU, Architecture.AARCH64)].used == 0
    assert by[(MEM, Architecture.X86_64)].reserved == 2 * (8192 - 256)
    assert report.observed_at == now


def _errors(*entries: dict[str, object]) -> list[object]:
    return list(parse_errors({"errors": list(entries)}))


def test_error_table_from_real_replies() -> None:
    bad_token_ctld = _errors({"description": "slurmctld config is unable to load",
                              "error_number": -1, "error": "Unspecified error",
                              "source": "slurm_load_ctl_conf"})
    bad_token_nodes = _errors({"error": "Unspecified error", "errno": -1})
    bad_token_dbd = _errors({"error_number": 1007, "error": "Protocol authentication error",
                             "source": "slurmdb_tres_get"})
    nothing = _errors({"description": "Nothing found", "error_number": 9003,
                       "error": "Nothing found with query", "source": "slurmdb_accounts_get"})
    dbd_down = _errors({"description": "Failed connecting to slurmdbd", "error_number": 7000,
                        "error": "Unable to connect to database", "source": "slurmdb_tres_get"})
    dbd_conn_invalid = _errors({"error_number": 7008, "source": "openapi_get_db_conn",
                                "error": "Database connection reference is invalid"})
    missing_user = _errors({"description": "Missing required field 'user'",
                            "source": "_parser_run"})
    bad_parent = missing_user + _errors({"error_number": -1, "error": "Unspecified error",
                                         "source": "slurmdb_associations_add"})
    assert classify(500, bad_token_ctld) is Verdict.AMBIGUOUS  # = controller down
    assert classify(500, bad_token_nodes) is Verdict.AMBIGUOUS
    assert classify(500, bad_token_dbd) is Verdict.AUTH
    assert classify(200, bad_token_dbd) is Verdict.AUTH  # /tres says it under HTTP 200
    assert classify(401, []) is Verdict.AUTH
    assert classify(500, nothing) is Verdict.NOT_FOUND
    assert classify(200, dbd_down) is Verdict.UNAVAILABLE
    assert classify(200, dbd_conn_invalid) is Verdict.UNAVAILABLE
    assert classify(200, missing_user) is Verdict.REJECTED  # unless the caller tolerates it
    assert classify(400, bad_parent) is Verdict.REJECTED
    assert classify(404, []) is Verdict.REJECTED
    assert classify(502, []) is Verdict.UNAVAILABLE
    assert classify(500, _errors({"error_number": 2017, "error": "Invalid job id specified"})) \
        is Verdict.REJECTED
    assert classify(200, []) is None


def test_command_output_table_from_real_runs() -> None:
    bad_token = ("sacctmgr: error: Sending PersistInit msg: Protocol authentication error\n"
                 "sacctmgr: error: DBD_GET_TRES failure: Protocol authentication error\n"
                 " Unknown option: GrpTRES=cpu=-1\n Use keyword 'where' to modify condition")
    dbd_down = ("sacctmgr: error: slurm_persist_conn_open_without_init: failed to open "
                "persistent connection to host:127.0.0.1:16896: Connection refused\n"
                "sacctmgr: error: Sending PersistInit msg: Connection refused")
    ctld_down = ("slurm_load_assoc_mgr_info error: Unable to contact slurm controller "
                 "(connect failure)")
    assert isinstance(error_for_output("sacctmgr", bad_token, cloud=None), ProviderAuthError)
    assert isinstance(error_for_output("sacctmgr", dbd_down, cloud=None), ProviderUnavailable)
    assert isinstance(error_for_output("scontrol", ctld_down, cloud=None), ProviderUnavailable)
    assert isinstance(error_for_output("sacctmgr", " Nothing modified\n", cloud=None),
                      ProviderNotFound)
    unknown = error_for_output("sacctmgr", "sacctmgr: error: slurmdb_format_tres_str: no TRES "
                               "known by type bogus\n Unknown option: GrpTRES=bogus=1", cloud="c")
    assert isinstance(unknown, ProviderRejected) and "Unknown option" in str(unknown)


def test_hs256_tokens_are_standard_jwts() -> None:
    key = b"k" * 32
    token = mint_hs256(key, "root", now=1_800_000_000, lifespan_s=600)
    unchecked_times = {"verify_exp": False, "verify_iat": False}
    claims = jwt.decode(token, key, algorithms=["HS256"], options=unchecked_times)
    assert claims == {"iat": 1_800_000_000, "exp": 1_800_000_600, "sun": "root"}


def test_key_file_tokens_are_cached_and_renewed(tmp_path: Path) -> None:
    key_file = tmp_path / "jwt.key"
    key_file.write_bytes(b"s" * 32)
    now = [1_800_000_000.0]
    tokens = KeyFileTokens(key_file, "root", lifespan_s=600, clock=lambda: now[0])
    first = tokens.token()
    now[0] += 400
    assert tokens.token() == first  # still well before expiry
    now[0] += 100  # within the renew margin of `exp`
    assert tokens.token() != first
