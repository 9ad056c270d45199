"""Several real OS users on one shared home: taking turns, racing, refused.

Each test runs the real ``tui-ca`` as users created for it (os_users.py), on a
home made with ``init --admin-group``. The racing tests start both processes,
hold them at a barrier (a pipe) until both are ready, and let them go at once.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import csr_pem, make_csr
from tests.policy.os_users import Accounts, accounts
from tests.server.live import free_port, wait_for
from tui_ca.engine.sharing import SHARING_FILE

PASSPHRASE = "shared CA passphrase"
ROUNDS = 4


@pytest.fixture(scope="module")
def people() -> Iterator[Accounts]:
    # alice, bob and carol are CA admins; alice and carol also approvers; eve is nobody.
    with accounts(["alice", "bob", "carol", "eve"],
                  {"admins": ["alice", "bob", "carol"], "approvers": ["alice", "carol"]}) as made:  # fmt: skip
        for who in made.users:
            secret = made.workdir / f"passphrase-{who}"
            secret.write_text(PASSPHRASE + "\n")
            os.chown(secret, pwd.getpwnam(made.users[who]).pw_uid, -1)
            secret.chmod(0o600)
        yield made


class Home:
    """One shared home and the admins who use it."""

    def __init__(self, people: Accounts, name: str) -> None:
        self.people = people
        self.path = people.workdir / name
        # The first admin owns an empty folder and shares it (as one would under /srv).
        self.path.mkdir(mode=0o700)
        os.chown(self.path, pwd.getpwnam(people.users["alice"]).pw_uid, -1)
        made = self.cli("alice", "init", "--cn", "Shared CA", "--admin-group", people.groups["admins"], umask="077")
        assert made.returncode == 0, made.stderr

    def args(self, who: str, *args: str) -> list[str]:
        return ["--passphrase-file", str(self.people.workdir / f"passphrase-{who}"), *args]

    def cli(self, who: str, *args: str, umask: str | None = None, stdin: bytes | None = None):
        return self.people.run(who, *self.args(who, *args), home=self.path, umask=umask, stdin=stdin)

    def submit(self, who: str, cn: str) -> int:
        done = self.cli(who, "submit", "-", stdin=csr_pem(make_csr(cn=cn)))
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    def show(self, request_id: int) -> dict:
        done = self.cli("carol", "show", "--json", str(request_id))
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def audit(self) -> list[dict]:
        done = self.cli("carol", "audit", "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def one_line(done, code: int, *fragments: str) -> str:
    assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and done.stderr.startswith("tui-ca: "), done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, (fragment, done.stderr)
    return done.stderr


def test_admins_take_turns_on_a_shared_home_and_every_file_stays_group_usable(people):
    home = Home(people, "turns")
    user = people.users
    # Opposite umasks: one that would lock the others out, one that would open files to everybody.
    first = home.submit("bob", "svc-one")
    assert home.cli("alice", "approve", str(first), umask="077").returncode == 0
    revoked = home.cli("bob", "revoke", str(first), "--reason", "superseded", umask="000")
    assert revoked.returncode == 0, revoked.stderr
    second = home.submit("carol", "svc-two")
    assert home.cli("bob", "approve", str(second), umask="022").returncode == 0
    listed = home.cli("alice", "list", "certs", "--json", umask="077")
    assert listed.returncode == 0, listed.stderr
    assert {(c["id"], c["status"]) for c in json.loads(listed.stdout)} == {(first, "revoked"), (second, "valid")}
    checked = home.cli("carol", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert home.cli("bob", "audit", "--verify").returncode == 0
    by_action = {(r["action"], r["target"]): r["user"] for r in home.audit()}
    assert by_action[("approve", f"request {first}")] == user["alice"]
    assert by_action[("revoke", f"certificate {first}")] == user["bob"]
    assert by_action[("approve", f"request {second}")] == user["bob"]

    gid = grp.getgrnam(people.groups["admins"]).gr_gid
    owners = set()
    for path in [home.path, *home.path.rglob("*")]:
        info = os.lstat(path)
        mode = stat.S_IMODE(info.st_mode)
        assert info.st_gid == gid, path
        if stat.S_ISDIR(info.st_mode):
            assert mode == 0o2770, (path, oct(mode))
        elif path.name == SHARING_FILE:
            assert mode == 0o640, (path, oct(mode))
        else:
            assert mode == 0o660, (path, oct(mode))
            owners.add(pwd.getpwuid(info.st_uid).pw_name)
    # The files are really the work of several admins, each usable by the next.
    assert {user["alice"], user["bob"]} <= owners


def test_someone_outside_the_admin_group_is_refused_in_one_line(people):
    home = Home(people, "outsider")
    request_id = home.submit("bob", "kept")
    before = sorted((str(p), p.stat().st_mtime_ns) for p in home.path.rglob("*"))
    for args in (["list"], ["approve", str(request_id)], ["submit", "-"]):
        done = home.cli("eve", *args, stdin=csr_pem(make_csr(cn="eve")))
        one_line(done, 1, str(home.path))
    assert sorted((str(p), p.stat().st_mtime_ns) for p in home.path.rglob("*")) == before
    assert home.show(request_id)["request"]["status"] == "queued"


def test_a_key_one_admin_alone_can_read_is_refused_in_one_line(people):
    home = Home(people, "owner-only")
    request_id = home.submit("carol", "blocked")
    (home.path / "ca/issuing.key").chmod(0o600)  # alice's file, as if made by hand before sharing
    one_line(home.cli("bob", "approve", str(request_id)), 1, "cannot read", "ca/issuing.key", "chmod 660")
    (home.path / "ca/issuing.key").chmod(0o660)
    assert home.cli("bob", "approve", str(request_id)).returncode == 0


def test_a_private_home_refuses_the_other_admins(people):
    home = people.workdir / "private"
    home.mkdir(mode=0o700)
    os.chown(home, pwd.getpwnam(people.users["alice"]).pw_uid, -1)
    assert people.run("alice", "init", "--cn", "Alice's own CA", home=home).returncode == 0
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    one_line(people.run("bob", "list", home=home), 1, str(home))
    # Group bits set by hand do not share a home: the key is refused, naming the way back.
    os.chown(home / "ca/issuing.key", -1, grp.getgrnam(people.groups["admins"]).gr_gid)
    (home / "ca/issuing.key").chmod(0o640)
    request_id = int(people.run("alice", "submit", "-", home=home, stdin=csr_pem(make_csr(cn="p"))).stdout)
    one_line(people.run("alice", "approve", str(request_id), home=home), 1, "has no admin group", "chmod 600")


def test_two_admins_approving_at_once_issue_exactly_one_certificate_naming_both(people):
    home = Home(people, "race")
    assert home.cli("alice", "policy", "set", "--approvals", "2").returncode == 0
    user = people.users
    for round_ in range(ROUNDS):
        request_id = home.submit("carol", f"race-{round_}")
        outcomes = people.race([("alice", home.args("alice", "approve", str(request_id))),
                                ("bob", home.args("bob", "approve", str(request_id)))], home=home.path)  # fmt: skip
        assert [done.returncode for done in outcomes] == [0, 0], [done.stderr for done in outcomes]
        pending = [done for done in outcomes if "approval 1 of 2 recorded" in done.stdout]
        issued = [done for done in outcomes if done.stdout.startswith(f"{request_id} ") and done not in pending]
        assert len(pending) == 1 and len(issued) == 1, [done.stdout for done in outcomes]
        shown = home.show(request_id)
        assert shown["request"]["status"] == "approved"
        assert sorted(a["user"] for a in shown["request"]["approvals"]) == sorted([user["alice"], user["bob"]])
        certs = json.loads(home.cli("carol", "list", "certs", "--json").stdout)
        assert [c["requester"] for c in certs].count(f"race-{round_}") == 1
        trail = [r for r in home.audit() if r["action"] == "approve" and r["target"] == f"request {request_id}"]
        assert sorted(r["user"] for r in trail) == sorted([user["alice"], user["bob"]])
        assert [r["outcome"] for r in trail][0] == "approval 1 of 2"
        assert sorted(trail[-1]["extra"]["approvers"]) == sorted([user["alice"], user["bob"]])
    assert home.cli("carol", "check").returncode == 0


def test_one_admin_approving_twice_never_reaches_k(people):
    home = Home(people, "twice")
    assert home.cli("alice", "policy", "set", "--approvals", "2").returncode == 0
    for round_ in range(ROUNDS):
        request_id = home.submit("carol", f"twice-{round_}")
        outcomes = people.race([("alice", home.args("alice", "approve", str(request_id)))] * 2, home=home.path)
        assert sorted(done.returncode for done in outcomes) == [0, 1], [done.stderr for done in outcomes]
        refused = next(done for done in outcomes if done.returncode == 1)
        one_line(refused, 1, "has already approved")
        again = home.cli("alice", "approve", str(request_id))
        one_line(again, 1, "has already approved")
        shown = home.show(request_id)
        assert shown["request"]["status"] == "queued", shown["request"]
        assert [a["user"] for a in shown["request"]["approvals"]] == [people.users["alice"]]
        # A second person still can.
        assert home.cli("bob", "approve", str(request_id)).returncode == 0
        assert home.show(request_id)["request"]["status"] == "approved"


def test_an_admin_without_the_approver_role_is_refused_in_one_line_and_audited(people):
    home = Home(people, "roles")
    set_roles = home.cli("alice", "policy", "roles", "--approver", people.groups["approvers"])
    assert set_roles.returncode == 0, set_roles.stderr
    request_id = home.submit("bob", "needs-a-role")
    refused = home.cli("bob", "approve", str(request_id))
    one_line(refused, 1, f"{people.users['bob']} may not approve", "approver role", people.groups["approvers"])
    assert home.show(request_id)["request"]["status"] == "queued"
    records = [r for r in home.audit() if r["outcome"] == "refused: role missing"]
    assert [(r["user"], r["action"], r["target"]) for r in records] == [
        (people.users["bob"], "approve", f"requests {request_id}")
    ]
    assert records[0]["extra"]["uid"] == pwd.getpwnam(people.users["bob"]).pw_uid
    assert home.cli("carol", "approve", str(request_id)).returncode == 0


def test_a_server_one_admin_set_up_runs_as_another(people):
    home = Home(people, "serve")
    assert home.cli("alice", "server-setup", umask="077").returncode == 0
    users_file = home.path / "est-users"
    added = home.cli("carol", "est-user", "--users", str(users_file), "client-1", stdin=b"a long password\n")
    assert added.returncode == 0, added.stderr
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o660
    http_port = free_port()
    command = people.command("bob", *home.args("bob", "serve", "--port", str(free_port()), "--http-port",
                                               str(http_port), "--users", str(users_file)), home=home.path)  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=people.env(),
                              cwd=people.workdir)  # fmt: skip
    try:

        def answered() -> bool:
            if server.poll() is not None:
                raise AssertionError(f"serve as bob exited {server.returncode}: {server.communicate()[1]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/crl", timeout=5) as reply:
                    return reply.status == 200
            except urllib.error.HTTPError as exc:
                return exc.code < 500
            except OSError:
                return False

        wait_for(answered, timeout=120)
    finally:
        server.terminate()
        server.communicate(timeout=60)


def test_the_users_are_gone_after_the_fixture():
    with accounts(["temp"], {"tempgroup": ["temp"]}) as made:
        name, group = made.users["temp"], made.groups["tempgroup"]
        workdir = made.workdir
        assert pwd.getpwnam(name) and grp.getgrnam(group)
    for lookup, key in ((pwd.getpwnam, name), (grp.getgrnam, group)):
        with pytest.raises(KeyError):
            lookup(key)
    assert not Path(workdir).exists()
