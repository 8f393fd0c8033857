"""Teams, their roles and members, and credit transfers, as Vast's backend describes them (vast-ai/docs,
api-reference/openapi/yaml/auto_*_team_*.yaml and auto_put_api_v0_commands_transfer_credit_*.yaml):

- A team is an account of its own (balance, instances, charges), created by a user's key with the three
  default roles (`emulator.access.DEFAULT_ROLES`) and its creator as owner. The creating key keeps acting on
  its personal account (vastai 1.9.1: "Your API key keeps acting on your personal account"); work in the team
  is done with a key made in the team's context.
- Roles, invitations and member removal are team-context calls (403 from a personal account); the owner role
  cannot be given, changed or removed; a role cannot grant what the caller does not hold; a role in use
  cannot be removed. Removing a member revokes every key they hold in the team.
- Only the owner may delete the team; the remaining balance goes back to the owner's personal account.
- Credit moves between accounts by id or e-mail, in whole cents, never below zero; a team may send credit
  only back to its owner.
"""

from __future__ import annotations

import re
from decimal import Decimal

from emulator.access import DEFAULT_ROLES, OWNER, Caller
from emulator.bodies import CreateRoleBody, CreateTeamBody, TransferCreditBody, UpdateRoleBody
from emulator.errors import Forbidden, InvalidArgs, NotFound
from emulator.identity import IdentityCore
from emulator.keys import parse_permissions
from emulator.state import Account, Invitation, Member, Role
from fleet.permissions import PermissionSet

INVITATION_TTL = 4 * 3600.0  # docs.vast.ai/guides/teams/managing-teams: "Team Invitations will expire after 4 hours"
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
CENT = Decimal("0.01")


class TeamOperations(IdentityCore):
    """What a key may do about teams, roles, members and credit."""

    # ------------------------------------------------------------------------------------------ teams

    def create_team(self, caller: Caller, body: CreateTeamBody) -> Account:
        if caller.in_team:
            raise InvalidArgs("Cannot create a team within a team: use a key of your personal account")
        return self.found_team(caller.user, body)

    def found_team(self, owner: Account, body: CreateTeamBody) -> Account:
        """A new team account owned by `owner` (a user account), its default roles, and the credit moved in."""
        name = (body.team_name or "").strip()
        if not name:
            raise InvalidArgs('team_name is required: {"team_name": "ml-research", "transfer_credit": 25}')
        if not 1 <= len(name) <= 128:
            raise InvalidArgs(f"team_name is {len(name)} characters; at most 128")
        credit = body.transfer_credit
        if credit < 0:
            raise InvalidArgs("transfer credit must be a positive number")
        with self.lock:
            now = self._sync()
            if owner.kind != "user":
                raise InvalidArgs("Cannot create a team within a team: use a key of your personal account")
            if any(a.username.lower() == name.lower() for a in self.state.accounts.values() if a.deleted_at is None):
                raise InvalidArgs("Team name already exists")
            if credit > 0 and self._balance(owner.id) < credit:
                raise InvalidArgs(f"not enough credit to transfer: {credit} asked, "
                                  f"{self._balance(owner.id).quantize(CENT)} available", code="insufficient_balance")
            team_id = self.state.next_account_id
            self.state.next_account_id += 1
            team = Account(id=team_id, username=name, email=f"{name}@team.invalid", credit=Decimal(0),
                           created_at=now, kind="team", owner_id=owner.id)
            self.state.accounts[team_id] = team
            for role_name, identifier, permissions in DEFAULT_ROLES:
                role = self._add_role(team_id, role_name, permissions, now, identifier=identifier)
                if identifier == OWNER:
                    self.state.members[f"{team_id}:{owner.id}"] = Member(team_id=team_id, user_id=owner.id,
                                                                         role_id=role.id, joined_at=now)
            if credit > 0:
                self._move_credit(self.state.accounts[owner.id], team, credit)
            self._touch()
            return team.model_copy()

    def destroy_team(self, caller: Caller) -> int:
        """Delete the caller's team; returns the owner's primary key id (Vast's `pkey_id`)."""
        with self.lock:
            now = self._sync()
            team = caller.account
            if not caller.in_team:
                raise NotFound("Cannot Delete Team: User is not a team account")
            if team.owner_id != caller.user.id:
                raise Forbidden("Only the Team's Owner may delete the team", code="not_allowed")
            if any(i.account_id == team.id for i in self._live()):
                # Vast's console asks for this first; a team deleted under running instances would orphan them.
                raise InvalidArgs("Cannot delete a team that still has instances: destroy them first")
            owner = self.state.accounts[team.owner_id]
            left = self._balance(team.id)
            if left > 0:
                self._move_credit(self.state.accounts[team.id], owner, left)
            for key in self.state.api_keys.values():
                if key.account_id == team.id and key.deleted_at is None:
                    self._revoke(key, now)
            for role_id in [r.id for r in self.state.roles.values() if r.team_id == team.id]:
                del self.state.roles[role_id]
            for member_key in [k for k, m in self.state.members.items() if m.team_id == team.id]:
                del self.state.members[member_key]
            for invitation_id in [i.id for i in self.state.invitations.values() if i.team_id == team.id]:
                del self.state.invitations[invitation_id]
            self.state.accounts[team.id].deleted_at = now
            self._touch()
            primary = [k.id for k in self.state.api_keys.values()
                       if k.account_id == owner.id and k.primary and k.deleted_at is None]
            return primary[0] if primary else 0

    # ------------------------------------------------------------------------------------------ roles

    def _add_role(self, team_id: int, name: str, permissions: PermissionSet, now: float, *,
                  identifier: str | None = None) -> Role:
        role_id = self.state.next_role_id
        self.state.next_role_id += 1
        role = self.state.roles[role_id] = Role(id=role_id, team_id=team_id, name=name, identifier=identifier,
                                                permissions=permissions, created_at=now)
        return role

    def _team_roles(self, team_id: int) -> list[Role]:
        return sorted((r for r in self.state.roles.values() if r.team_id == team_id), key=lambda r: r.id)

    def _role_named(self, team_id: int, name: str) -> Role | None:
        return next((r for r in self._team_roles(team_id) if r.name == name), None)

    @staticmethod
    def _in_team(caller: Caller, doing: str) -> int:
        if not caller.in_team:
            raise Forbidden(f"Only team accounts can {doing}: use a key made in the team's context")
        return caller.account.id

    @staticmethod
    def _role_name(name: str | None) -> str:
        name = (name or "").strip()
        if not 2 <= len(name) <= 50:
            raise InvalidArgs(f"Role name must be 2-50 characters; got {len(name)}")
        return name

    def _grantable(self, caller: Caller, permissions: PermissionSet) -> None:
        beyond = self._beyond(caller, permissions)
        if beyond is not None:
            raise Forbidden(f"You cannot give a role permissions you do not hold: {beyond}")

    def create_role(self, caller: Caller, body: CreateRoleBody) -> Role:
        team_id = self._in_team(caller, "create team roles")
        if body.name is None or body.permissions is None:
            raise InvalidArgs('Missing required params: name and permissions, e.g. {"name": "deploy", '
                              '"permissions": {"api": {"instance_write": {}}}}')
        name = self._role_name(body.name)
        permissions = parse_permissions(body.permissions, placeholders=False)
        with self.lock:
            now = self._sync()
            if self._role_named(team_id, name) is not None:
                raise Forbidden(f"A role named {name!r} already exists in this team")
            self._grantable(caller, permissions)
            role = self._add_role(team_id, name, permissions, now)
            self._touch()
            return role.model_copy()

    def role(self, caller: Caller, name: str) -> Role:
        team_id = self._in_team(caller, "read team roles")
        with self.lock:
            role = self._role_named(team_id, name)
            if role is None:
                raise NotFound("Role not found")
            return role.model_copy()

    def roles(self, caller: Caller) -> list[Role]:
        """Every role but the owner's (as Vast's `roles-full` lists them)."""
        team_id = self._in_team(caller, "read team roles")
        with self.lock:
            return [r.model_copy() for r in self._team_roles(team_id) if r.identifier != OWNER]

    def update_role(self, caller: Caller, role_ref: str, body: UpdateRoleBody) -> Role:
        team_id = self._in_team(caller, "update team roles")
        if not role_ref.strip().isdigit():
            raise InvalidArgs(f"Role id must be an integer; got {role_ref!r} (see `vastai show team-roles`)")
        if body.name is None and body.permissions is None:
            raise InvalidArgs("Missing required params: name and/or permissions")
        name = None if body.name is None else self._role_name(body.name)
        permissions = None if body.permissions is None else parse_permissions(body.permissions, placeholders=False)
        role_id = int(role_ref)
        with self.lock:
            self._sync()
            role = self.state.roles.get(role_id)
            if role is None or role.team_id != team_id:
                raise NotFound(f"Role with id {role_id} not found.")
            if role.identifier == OWNER:
                raise Forbidden("Cannot update the team owner role")
            if caller.role is not None and caller.role.id == role.id:
                raise Forbidden("You cannot modify the permissions of the role your own key acts with")
            if name is not None and name != role.name and self._role_named(team_id, name) is not None:
                raise Forbidden(f"A role named {name!r} already exists in this team")
            if permissions is not None:
                self._grantable(caller, permissions)
                role.permissions = permissions
            if name is not None:
                role.name = name
            self._touch()
            return role.model_copy()

    def remove_role(self, caller: Caller, name: str, role_id: int | None = None) -> Role:
        team_id = self._in_team(caller, "delete team roles")
        with self.lock:
            self._sync()
            role = self.state.roles.get(role_id) if role_id is not None else self._role_named(team_id, name)
            if role is None or role.team_id != team_id:
                raise NotFound("Role not found")
            if role.identifier == OWNER:
                raise Forbidden("Cannot delete the owner role")
            if any(m.role_id == role.id for m in self.state.members.values()):
                raise InvalidArgs("Cannot delete role if there are team members with the role")
            del self.state.roles[role.id]
            self._touch()
            return role

    # ---------------------------------------------------------------------------------------- members

    def members(self, caller: Caller) -> list[tuple[Account, Role]]:
        team_id = self._in_team(caller, "list team members")
        with self.lock:
            s = self.state
            return sorted(((s.accounts[m.user_id].model_copy(), s.roles[m.role_id].model_copy())
                           for m in s.members.values() if m.team_id == team_id), key=lambda pair: pair[0].id)

    def invite(self, caller: Caller, email: str | None, role_name: str | None) -> Invitation:
        if not caller.in_team:
            raise InvalidArgs("Only a team account can invite members: use a key made in the team's context")
        email, role_name = (email or "").strip(), (role_name or "").strip()
        if not email or not role_name:
            raise InvalidArgs("Missing email or role param: invite ?email=<address>&role=<role name>")
        if not EMAIL.fullmatch(email):
            raise InvalidArgs(f"{email!r} is not an e-mail address")
        with self.lock:
            now = self._sync()
            team_id = caller.account.id
            role = self._role_named(team_id, role_name)
            if role is None:
                raise NotFound(f"Invalid role choice for invitee: no role {role_name!r} in this team")
            if role.identifier == OWNER:
                raise InvalidArgs("The owner role cannot be given by invitation")
            if email.lower() == caller.user.email.lower():
                raise InvalidArgs("You cannot invite yourself.")
            if any(self.state.accounts[m.user_id].email.lower() == email.lower()
                   for m in self.state.members.values() if m.team_id == team_id):
                raise InvalidArgs("User is already a member of this team.")
            invitation_id = self.state.next_invitation_id
            self.state.next_invitation_id += 1
            invitation = self.state.invitations[invitation_id] = Invitation(
                id=invitation_id, team_id=team_id, email=email, role_id=role.id, invited_by=caller.user.id,
                created_at=now, expires_at=now + INVITATION_TTL)
            self._touch()
            return invitation.model_copy()

    def remove_member(self, caller: Caller, user_id: int) -> None:
        team_id = self._in_team(caller, "remove team members")
        with self.lock:
            now = self._sync()
            member = self.state.members.get(f"{team_id}:{user_id}")
            if member is None:
                raise NotFound("User is not a member of this team")
            if user_id == caller.account.owner_id:
                raise Forbidden("Cannot remove the team owner from the team")
            if user_id == caller.user.id:
                raise Forbidden("You cannot remove yourself from the team")
            del self.state.members[f"{team_id}:{user_id}"]
            for key in self.state.api_keys.values():
                if key.account_id == team_id and key.user_id == user_id and key.deleted_at is None:
                    self._revoke(key, now)
            self._touch()

    def accept_invitation(self, team_id: int, email: str) -> Member:
        """What the link in the invitation e-mail does: the account with that address joins the team."""
        with self.lock:
            now = self._sync()
            pending = [i for i in self.state.invitations.values()
                       if i.team_id == team_id and i.email.lower() == email.strip().lower() and i.accepted_at is None]
            if not pending:
                raise NotFound(f"no pending invitation to team {team_id} for {email}")
            invitation = max(pending, key=lambda i: i.id)
            if invitation.expires_at <= now:
                raise InvalidArgs("This invitation has expired (after 4 hours): ask the team for a new one")
            if invitation.role_id not in self.state.roles:
                raise InvalidArgs("That Role no longer exists. Contact team owner for new invite.")
            user = next((a for a in self.state.accounts.values()
                         if a.kind == "user" and a.deleted_at is None and a.email.lower() == invitation.email.lower()),
                        None)
            if user is None:
                raise InvalidArgs(f"no Vast account has the address {invitation.email}: it must sign up first")
            if f"{team_id}:{user.id}" in self.state.members:
                raise InvalidArgs("User is already a member of this team.")
            invitation.accepted_at = now
            member = self.state.members[f"{team_id}:{user.id}"] = Member(
                team_id=team_id, user_id=user.id, role_id=invitation.role_id, joined_at=now)
            self._touch()
            return member.model_copy()

    # ----------------------------------------------------------------------------------------- credit

    def _move_credit(self, sender: Account, recipient: Account, amount: Decimal) -> None:
        sender.credit -= amount
        recipient.credit += amount

    def transfer_credit(self, caller: Caller, body: TransferCreditBody) -> None:
        amount = body.amount
        if amount <= 0:
            raise InvalidArgs("The amount to transfer cannot be zero or negative")
        if amount != amount.quantize(CENT):
            raise InvalidArgs("Amount cannot have more than 2 decimal places")
        recipient_ref = str(body.recipient).strip()
        with self.lock:
            self._sync()
            accounts = [a for a in self.state.accounts.values() if a.deleted_at is None]
            if recipient_ref.isdigit():
                recipient = next((a for a in accounts if a.id == int(recipient_ref)), None)
            elif EMAIL.fullmatch(recipient_ref):
                recipient = next((a for a in accounts if a.email.lower() == recipient_ref.lower()), None)
            else:
                raise InvalidArgs("Invalid recipient email format", code="invalid_recipient")
            if recipient is None:
                raise InvalidArgs("User not found", code="invalid_recipient")
            sender = self.state.accounts[caller.account.id]
            if recipient.id == sender.id:
                raise InvalidArgs("You cannot transfer credit to yourself", code="invalid_recipient")
            if sender.kind == "team" and recipient.id != sender.owner_id:
                raise InvalidArgs("Team accounts can only transfer credit back to the team owner",
                                  code="invalid_recipient")
            if self._balance(sender.id) < amount:
                raise InvalidArgs("You lack the credit balance to perform that operation", code="insufficient_balance")
            self._move_credit(sender, self.state.accounts[recipient.id], amount)
            self._touch()
