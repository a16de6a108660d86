#!/usr/bin/env bash
# Installs the Debian packages mailark needs to build, test and benchmark.
# Idempotent and quiet when everything is already present.
set -euo pipefail

PKGS=(
  build-essential pkg-config
  libevent-dev libssl-dev libsqlite3-dev libjansson-dev libmicrohttpd-dev
  libsodium-dev libzstd-dev libinih-dev libunbound-dev libcmocka-dev
  openssl ca-certificates
  python3 python3-pytest python3-aiosmtpd swaks postfix unbound
  libldap-dev slapd ldap-utils
  libgmime-3.0-dev libpst-dev pst-utils libarchive-dev notmuch
  libcurl4-openssl-dev curl dovecot-imapd isync mutt libnet-ssleay-perl libio-socket-ssl-perl
  libspf2-dev libopendkim-dev libopendmarc-dev libmagic-dev
  clamav clamav-daemon clamav-milter opendkim opendkim-tools python3-dkim python3-dnspython
  spamassassin spamc rspamd
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Postfix is a test peer and benchmark reference only: no system configuration.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
# slapd is a test peer only: the tests run their own; no system directory.
echo "slapd slapd/no_configuration boolean true" | $SUDO debconf-set-selections
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts services it installs where it can; mailark's tests run their own instances.
for svc in postfix unbound slapd dovecot clamav-daemon clamav-freshclam clamav-milter \
    opendkim spamd spamassassin rspamd; do
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
