"""Tenants as Slurm accounts: the account chain that mirrors the org tree, and its users.

Called by `adapter.SlurmProvider.ensure_tenant` / `ensure_scope`. Each org
level (province → prefecture → department → project) is one account whose
association's parent is the level above, under Slurm's `root`; slurmctld then
enforces every ancestor's GrpTRES over the sum of its children, which is how
a prefecture's grant caps all its departments together.

Everything here goes over REST (v0.0.38 creates accounts, associations and
users reliably); the one exception is moving an association to another
parent (a department moved between prefectures), which REST cannot change
and `sacctmgr modify account … set parent=` can. Nothing here deletes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from providers.base import ProviderRejected
from providers.slurm.client import missing_user_field, nothing_found
from providers.slurm.naming import account_name, is_safe_user
from providers.slurm.session import SlurmSession

ROOT_ACCOUNT: Final = "root"
# The `organization` of every account Yunguan creates: the marker that lets
# ensure_tenant refuse to adopt a same-named account the site made by hand.
ORGANIZATION: Final = "yunguan"
# slurmdbd keeps descriptions in a tinytext (255 bytes); Chinese names take
# 3 bytes a character, so cut by bytes, on a character boundary.
_MAX_DESCRIPTION_BYTES: Final = 250


@dataclass(frozen=True)
class Chain:
    names: tuple[str, ...]  # top first; the last is the tenant's account
    leaf_associations: tuple[Mapping[str, Any], ...]


def _description(text: str) -> str:
    raw = text.strip().encode("utf-8")[:_MAX_DESCRIPTION_BYTES]
    return raw.decode("utf-8", errors="ignore")


def _is_account_association(assoc: Mapping[str, Any]) -> bool:
    return not assoc.get("user") and not assoc.get("partition")


class Tenants:
    def __init__(self, session: SlurmSession) -> None:
        self._s = session

    def ensure_chain(self, codes: Sequence[str], leaf_description: str) -> Chain:
        """Ensures one account per code, each under the previous one (the first
        under `root`); returns the account names, top first, and the leaf's
        associations. Ancestors are described by their code when created and
        never re-described: their names belong to the org tree, which this
        call does not carry.

        Round trips are what costs (each slurmdbd call takes ~0.27 s on the
        testbed), so: one GET of all account records, one batched POST for
        the missing or re-described ones, and one GET per level for the
        associations, whose payload stays bounded on a large cluster."""
        if not codes:
            raise ProviderRejected("an empty org path has no Slurm account", cloud=self._s.cloud)
        names = [account_name(code) for code in codes]
        if len(set(names)) != len(names):
            raise ProviderRejected(f"org path {codes} repeats a code", cloud=self._s.cloud)
        described = zip([*codes[:-1], leaf_description], names, strict=True)
        self._ensure_accounts(names, [_description(text) or name for text, name in described])
        parent, leaf = ROOT_ACCOUNT, []
        for name in names:
            leaf = self._ensure_association(name, parent)
            parent = name
        return Chain(names=tuple(names), leaf_associations=tuple(leaf))

    def ensure_users(
        self, account: str, users: Sequence[str], known: Sequence[Mapping[str, Any]] | None = None
    ) -> None:
        """Adds a user association on `account` for every user that lacks one
        (`known`: the account's associations when the caller just read them).
        Users missing from the spec keep their association: removing one would
        strand their queued jobs, so it is an explicit admin action."""
        wanted = list(dict.fromkeys(users))
        bad = [user for user in wanted if not is_safe_user(user)]
        if bad:
            raise ProviderRejected(f"not valid Slurm user names: {bad}", cloud=self._s.cloud)
        if not wanted:
            return
        current = self.associations(account) if known is None else known
        present = {a.get("user") for a in current if a.get("user")}
        missing = [u for u in wanted if u not in present]
        for user in missing:
            self._ensure_user(user)
            self._s.rest.slurmdb(
                "POST",
                "associations",
                body={"associations": [
                    {"account": account, "cluster": self._s.cluster, "user": user}
                ]},
            )
        if missing:
            present = {a.get("user") for a in self.associations(account) if a.get("user")}
            absent = [u for u in missing if u not in present]
            if absent:
                raise ProviderRejected(
                    f"slurmdbd did not associate {', '.join(absent)} with {account}",
                    cloud=self._s.cloud,
                )

    def associations(self, account: str) -> list[Mapping[str, Any]]:
        """The account's associations in our cluster (its own and its users'); [] when none."""
        reply = self._s.rest.slurmdb(
            "GET",
            "associations",
            params={"account": account, "cluster": self._s.cluster},
            tolerate=nothing_found,
        )
        return [a for a in reply.body.get("associations") or () if a.get("account") == account]

    def account_association(self, account: str) -> Mapping[str, Any] | None:
        return next((a for a in self.associations(account) if _is_account_association(a)), None)

    # -- steps -------------------------------------------------------------------

    def _ensure_accounts(self, names: Sequence[str], descriptions: Sequence[str]) -> None:
        reply = self._s.rest.slurmdb("GET", "accounts", tolerate=nothing_found)
        existing = {str(a.get("name")): a for a in reply.body.get("accounts") or ()}
        posts = []
        for i, (name, description) in enumerate(zip(names, descriptions, strict=True)):
            current = existing.get(name)
            if current is None:
                posts.append(name)
                continue
            if str(current.get("organization") or "") != ORGANIZATION:
                raise ProviderRejected(
                    f"Slurm account {name} exists but was not created by Yunguan "
                    f"(organization {current.get('organization')!r}); refusing to adopt it",
                    cloud=self._s.cloud,
                )
            if i == len(names) - 1 and current.get("description") != description:
                posts.append(name)
        if posts:
            wanted = dict(zip(names, descriptions, strict=True))
            # POST /accounts creates accounts or updates their description; a
            # list is fine here (unlike associations, see below).
            self._s.rest.slurmdb(
                "POST",
                "accounts",
                body={"accounts": [
                    {"name": n, "description": wanted[n], "organization": ORGANIZATION}
                    for n in posts
                ]},
            )

    def _ensure_association(self, name: str, parent: str) -> list[Mapping[str, Any]]:
        """Returns all associations of the account (its own first is not promised)."""
        associations = self.associations(name)
        current = next((a for a in associations if _is_account_association(a)), None)
        if current is None:
            # Quirk: an account association is posted without "user" (and one
            # per request: the parser error this provokes stops the rest of a
            # list); the reply carries "Missing required field 'user'" although
            # the association is created, so the GET below is the real check.
            self._s.rest.slurmdb(
                "POST",
                "associations",
                body={"associations": [
                    {"account": name, "cluster": self._s.cluster, "parent_account": parent}
                ]},
                tolerate=missing_user_field,
            )
            associations = self.associations(name)
            current = next((a for a in associations if _is_account_association(a)), None)
            if current is None:
                raise ProviderRejected(
                    f"slurmdbd did not create the association of {name} under {parent}",
                    cloud=self._s.cloud,
                )
        if (current.get("parent_account") or ROOT_ACCOUNT) != parent:
            # The org node moved (e.g. a department to another prefecture).
            self._s.cli.sacctmgr(
                "modify", "account", "where", f"name={name}", f"cluster={self._s.cluster}",
                "set", f"parent={parent}",
            )
        return associations

    def _ensure_user(self, user: str) -> None:
        # POST /users only for a user slurmdbd lacks: re-posting an existing
        # user could reset attributes the site set (admin level, default account).
        reply = self._s.rest.slurmdb("GET", f"user/{user}", tolerate=nothing_found)
        if any(u.get("name") == user for u in reply.body.get("users") or ()):
            return
        self._s.rest.slurmdb("POST", "users", body={"users": [{"name": user}]})
