"""A throwaway OpenLDAP ``slapd`` (Debian's) for the LDAP upstream tests.

`Slapd` writes a slapd.conf into a temporary directory (mdb backend, suffix dc=example,dc=org,
a root DN, the memberof overlay), runs slapd in the foreground as the test user on
127.0.0.1:<free port>, waits (bounded) until the root DN can bind, and loads `DIRECTORY` over LDAP
so that the overlay fills memberOf. Access rules are a real deployment's: only the service
account may search, users may only bind (and read themselves), nobody reads password hashes.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from support import free_port, wait_until_ready

from idbroker.federation.ldap import Connection, Server  # ldap3, imported without pyasn1's warnings

SLAPD = Path("/usr/sbin/slapd")
SCHEMA = Path("/etc/ldap/schema")
MODULES = Path("/usr/lib/ldap")
SUFFIX = "dc=example,dc=org"
ROOT_DN, ROOT_PASSWORD = f"cn=admin,{SUFFIX}", "root secret"
SERVICE_DN, SERVICE_PASSWORD = f"cn=idbroker,ou=services,{SUFFIX}", "service secret"
PASSWORD = "correct horse battery staple"  # every user's
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

CONFIG = """\
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/inetorgperson.schema
modulepath {modules}
moduleload back_mdb
moduleload memberof
pidfile {dir}/slapd.pid
database mdb
maxsize 10485760
suffix "{suffix}"
rootdn "{root_dn}"
rootpw "{root_password}"
directory {dir}/db
overlay memberof
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="{service_dn}" read by self read by * none
"""

# alice is in staff, staff in everyone, everyone in admins and admins in everyone (a cycle);
# carol and dave share an address, so a login by it is ambiguous.
DIRECTORY = f"""\
dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,{SUFFIX}
objectClass: organizationalUnit
ou: people

dn: ou=services,{SUFFIX}
objectClass: organizationalUnit
ou: services

dn: ou=groups,{SUFFIX}
objectClass: organizationalUnit
ou: groups

dn: {SERVICE_DN}
objectClass: applicationProcess
objectClass: simpleSecurityObject
cn: idbroker
userPassword: {SERVICE_PASSWORD}

dn: uid=alice,ou=people,{SUFFIX}
objectClass: inetOrgPerson
uid: alice
cn: Alice Liddell
givenName: Alice
sn: Liddell
displayName: Alice Liddell
mail: alice@example.org
userPassword: {PASSWORD}

dn: uid=bob,ou=people,{SUFFIX}
objectClass: inetOrgPerson
uid: bob
cn: bob
sn: Builder
userPassword: {PASSWORD}

dn: uid=carol,ou=people,{SUFFIX}
objectClass: inetOrgPerson
uid: carol
cn: carol
sn: C
mail: shared@example.org
userPassword: {PASSWORD}

dn: uid=dave,ou=people,{SUFFIX}
objectClass: inetOrgPerson
uid: dave
cn: dave
sn: D
mail: shared@example.org
userPassword: {PASSWORD}

dn: cn=staff,ou=groups,{SUFFIX}
objectClass: groupOfNames
cn: staff
member: uid=alice,ou=people,{SUFFIX}

dn: cn=admins,ou=groups,{SUFFIX}
objectClass: groupOfNames
cn: admins
member: uid=dave,ou=people,{SUFFIX}

dn: cn=everyone,ou=groups,{SUFFIX}
objectClass: groupOfNames
cn: everyone
member: cn=staff,ou=groups,{SUFFIX}
member: uid=bob,ou=people,{SUFFIX}
member: cn=admins,ou=groups,{SUFFIX}
"""
# Added after the entries above exist (the cycle needs both ends).
LATER = [(f"cn=admins,ou=groups,{SUFFIX}", f"cn=everyone,ou=groups,{SUFFIX}")]


def parse_ldif(text: str) -> list[tuple[str, dict[str, list[str]]]]:
    """The plain LDIF used here (no folding, no base64): [(dn, {attribute: values})]."""
    entries = []
    for block in text.strip().split("\n\n"):
        pairs = [line.split(": ", 1) for line in block.splitlines()]
        attributes: dict[str, list[str]] = {}
        for name, value in pairs[1:]:
            attributes.setdefault(name, []).append(value)
        entries.append((pairs[0][1], attributes))
    return entries


class Slapd:
    def __init__(self, workdir: Path):
        self.dir = workdir
        self.port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        (workdir / "db").mkdir(parents=True, exist_ok=True)
        (workdir / "slapd.conf").write_text(CONFIG.format(
            schema=SCHEMA, modules=MODULES, dir=workdir, suffix=SUFFIX, root_dn=ROOT_DN,
            root_password=ROOT_PASSWORD, service_dn=SERVICE_DN))

    def start(self) -> None:
        with open(self.dir / "slapd.log", "ab") as out:
            self.proc = subprocess.Popen(
                [str(SLAPD), "-f", str(self.dir / "slapd.conf"), "-h", f"{self.url}/", "-d", "0"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        def binds() -> bool:
            with self.root():
                return True

        try:
            wait_until_ready(self.proc, binds, START_TIMEOUT, "slapd (a bind)", self.log)
        except TimeoutError:
            self.stop()
            raise

    def root(self) -> Connection:
        return Connection(Server("127.0.0.1", port=self.port, connect_timeout=1), ROOT_DN, ROOT_PASSWORD,
                          auto_bind=True, receive_timeout=5, raise_exceptions=True)

    def load(self, ldif: str = DIRECTORY) -> None:
        with self.root() as conn:
            for dn, attributes in parse_ldif(ldif):
                conn.add(dn, attributes=attributes)
            for group, member in LATER:
                conn.modify(group, {"member": [("MODIFY_ADD", [member])]})

    def pause(self) -> None:
        """Stops answering without closing anything: a hung directory."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)

    def log(self) -> str:
        return (self.dir / "slapd.log").read_text(errors="replace")[-4000:]
