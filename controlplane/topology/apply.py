"""`topology apply`: validate, plan, and write in one transaction (or not at all).

Called by the CLI and by `yunguan up`. A dry run computes the same plan and
rolls back; any problem, in the file or against the stored state, writes nothing.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from controlplane.db.quota_tables import QuotaGrant
from controlplane.db.tables import OrgNode
from controlplane.db.uow import UnitOfWork
from controlplane.topology.diff import Action, OrgRecord, Plan, plan
from controlplane.topology.model import TopologyDocument
from controlplane.topology.store import TopologyStore
from controlplane.vocabulary import ConflictError, InvalidInputError, Problem


def _moves_with_grants(session: Session, result: Plan) -> list[Problem]:
    """A node that holds quota grants (itself or below) cannot change parent: its
    grants were drawn from the old parent's headroom, and the tree's sums would
    silently stop adding up. Its grants must be set to zero first."""
    problems = []
    for change, rec in result.org:
        if change.action is not Action.UPDATE or "parent" not in change.fields:
            continue
        node = session.scalar(select(OrgNode).where(OrgNode.code == rec.code))
        if node is None:
            continue
        held = session.scalar(
            select(func.count())
            .select_from(QuotaGrant)
            .join(OrgNode, OrgNode.id == QuotaGrant.node_id)
            .where(
                OrgNode.path.startswith(node.path),
                (QuotaGrant.granted > 0) | (QuotaGrant.allocated > 0),
            )
        )
        if held:
            problems.append(
                Problem(
                    f"{rec.level.value} {rec.code}",
                    f"cannot move to {rec.parent!r}: it (or a node below it) holds quota grants; "
                    "set them to zero first",
                )
            )
    return problems


def _write(store: TopologyStore, result: Plan) -> None:
    deletes_org: list[OrgRecord] = []
    for change, rec in result.org:
        if change.action is Action.DELETE:
            deletes_org.append(rec)
        else:
            store.upsert_org(rec)
    for change, cloud in result.clouds:
        if change.action is Action.DELETE:
            store.delete_cloud(change.code)
        else:
            store.upsert_cloud(cloud)
    # Org deletions last: clouds owned by a pruned prefecture went first.
    for rec in deletes_org:
        store.delete_org(rec.code)


def apply_topology(
    session_factory: sessionmaker[Session],
    doc: TopologyDocument,
    *,
    source: str,
    dry_run: bool = False,
    prune: bool = False,
) -> Plan:
    with UnitOfWork(session_factory) as uow:
        store = TopologyStore(uow.session)
        result = plan(doc, store.org_records(), store.cloud_records(), prune=prune)
        result.problems.extend(_moves_with_grants(uow.session, result))
        if result.problems:
            first = result.problems[0]
            more = f" (and {len(result.problems) - 1} more)" if len(result.problems) > 1 else ""
            raise InvalidInputError(
                f"{source}: {first}{more}", code="topology.invalid", problems=result.problems
            )
        if dry_run or result.empty:
            return result
        try:
            _write(store, result)
            uow.commit()
        except IntegrityError as exc:
            raise ConflictError(
                f"{source}: cannot apply: an object to remove or move is still referenced "
                f"({exc.orig.__class__.__name__})",
                code="topology.conflict",
            ) from exc
        return result
