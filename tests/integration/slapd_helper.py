"""A real OpenLDAP slapd for the directory tests, with an AD-like schema.

    from slapd_helper import Slapd
    ldap = Slapd(tmp_path).start()          # 127.0.0.1:<free port>, suffix dc=example,dc=test
    ldap.add(ldif_text)                     # ldapadd as the root DN
    ldap.delete(dn)
    ldap.modify(ldif_text)
    ldap.stop()

The server runs from a slapd.conf (-f) in its own temporary directory with
an mdb database loaded by slapadd; nothing outside that directory is used
but the schema files Debian installs with slapd.  The schema adds `user`
and `group` object classes and the attributes sAMAccountName,
proxyAddresses, userAccountControl (bit 2 = disabled) and memberOf; mail,
displayName and member come from the standard schemas.

Accounts: the root DN (ROOT_DN / ROOT_PW) edits the data; the service
account SVC_DN / SVC_PW is an ordinary entry that mailark binds as; it may
read everything but passwords.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from conftest import free_port

SUFFIX = "dc=example,dc=test"
ROOT_DN = "cn=admin," + SUFFIX
ROOT_PW = "root-secret-1"
SVC_DN = "cn=mailark-svc,ou=service," + SUFFIX
SVC_PW = "svc-secret-1"
SCHEMA_DIR = "/etc/ldap/schema"

AD_SCHEMA = """
objectIdentifier mkAD 1.3.6.1.4.1.32473.77
objectIdentifier mkADat mkAD:1
objectIdentifier mkADoc mkAD:2

attributetype ( mkADat:1 NAME 'sAMAccountName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( mkADat:2 NAME 'proxyAddresses'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( mkADat:3 NAME 'userAccountControl'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( mkADat:4 NAME 'memberOf'
  EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )

objectclass ( mkADoc:1 NAME 'user' SUP top STRUCTURAL
  MUST cn
  MAY ( sAMAccountName $ mail $ proxyAddresses $ userAccountControl $ memberOf $
        displayName $ userPassword $ sn $ givenName $ description ) )
objectclass ( mkADoc:2 NAME 'group' SUP top STRUCTURAL
  MUST cn
  MAY ( sAMAccountName $ member $ mail $ description ) )
"""

BASE_LDIF = """dn: {suffix}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=service,{suffix}
objectClass: organizationalUnit
ou: service

dn: {svc_dn}
objectClass: user
cn: mailark-svc
userPassword: {svc_pw}

dn: ou=people,{suffix}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{suffix}
objectClass: organizationalUnit
ou: groups
"""


def _port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


class Slapd:
    def __init__(self, workdir):
        self.dir = Path(workdir) / "slapd"
        self.port = free_port()
        self.url = "ldap://127.0.0.1:%d" % self.port
        self.proc = None

    def _write_conf(self):
        (self.dir / "db").mkdir(parents=True, exist_ok=True)
        (self.dir / "ad.schema").write_text(AD_SCHEMA)
        conf = "\n".join([
            "include %s/core.schema" % SCHEMA_DIR,
            "include %s/cosine.schema" % SCHEMA_DIR,
            "include %s/inetorgperson.schema" % SCHEMA_DIR,
            "include %s" % (self.dir / "ad.schema"),
            "pidfile %s" % (self.dir / "slapd.pid"),
            "argsfile %s" % (self.dir / "slapd.args"),
            "modulepath /usr/lib/ldap",
            "moduleload back_mdb",
            "sizelimit unlimited",
            "database mdb",
            "maxsize 104857600",
            'suffix "%s"' % SUFFIX,
            'rootdn "%s"' % ROOT_DN,
            "rootpw %s" % ROOT_PW,
            "directory %s" % (self.dir / "db"),
            "index objectClass,mail,proxyAddresses eq",
            "access to attrs=userPassword by anonymous auth by * none",
            "access to * by users read by * none",
            "",
        ])
        (self.dir / "slapd.conf").write_text(conf)

    def _slapadd(self, ldif):
        path = self.dir / "base.ldif"
        path.write_text(ldif)
        p = subprocess.run(["slapadd", "-f", str(self.dir / "slapd.conf"), "-l", str(path)],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, "slapadd failed:\n%s%s" % (p.stdout, p.stderr)

    def start(self, timeout=15):
        if not (self.dir / "slapd.conf").exists():
            self._write_conf()
            self._slapadd(BASE_LDIF.format(suffix=SUFFIX, svc_dn=SVC_DN, svc_pw=SVC_PW))
        self.log = open(self.dir / "slapd.log", "ab")
        self.proc = subprocess.Popen(
            ["slapd", "-f", str(self.dir / "slapd.conf"), "-h", self.url + "/", "-d", "0"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("slapd exited with %d:\n%s" % (
                    self.proc.returncode, (self.dir / "slapd.log").read_text()[-3000:]))
            if _port_open(self.port):
                return self
            time.sleep(0.05)
        raise AssertionError("slapd not listening on %d after %ds" % (self.port, timeout))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def _tool(self, tool, ldif, *extra):
        p = subprocess.run([tool, "-x", "-H", self.url, "-D", ROOT_DN, "-w", ROOT_PW, *extra],
                           input=ldif, capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, "%s failed (%d):\n%s%s" % (tool, p.returncode, p.stdout,
                                                             p.stderr)
        return p

    def add(self, ldif):
        return self._tool("ldapadd", ldif)

    def modify(self, ldif):
        return self._tool("ldapmodify", ldif)

    def delete(self, dn):
        return self._tool("ldapdelete", "", dn)


def user_ldif(cn, mail=None, proxies=(), display=None, uac=512, member_of=(), password=None):
    """One `user` entry under ou=people."""
    lines = ["dn: cn=%s,ou=people,%s" % (cn, SUFFIX), "objectClass: user", "cn: %s" % cn,
             "sAMAccountName: %s" % cn, "userAccountControl: %d" % uac]
    if mail:
        lines.append("mail: %s" % mail)
    lines += ["proxyAddresses: %s" % p for p in proxies]
    if display:
        lines.append("displayName: %s" % display)
    lines += ["memberOf: %s" % g for g in member_of]
    if password:
        lines.append("userPassword: %s" % password)
    return "\n".join(lines) + "\n\n"


def group_ldif(cn, members=()):
    """One `group` entry under ou=groups; members are DNs."""
    lines = ["dn: cn=%s,ou=groups,%s" % (cn, SUFFIX), "objectClass: group", "cn: %s" % cn]
    lines += ["member: %s" % m for m in members]
    return "\n".join(lines) + "\n\n"


def person_dn(cn):
    return "cn=%s,ou=people,%s" % (cn, SUFFIX)


def group_dn(cn):
    return "cn=%s,ou=groups,%s" % (cn, SUFFIX)
