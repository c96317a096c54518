#!/usr/bin/env bash
# Installs what Portolan's tests and benchmarks use, from Debian's packages. Idempotent: it
# installs only what is missing. Needs root (apt-get); CI runs as root.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have nmap || need+=(nmap)
have ndiff || need+=(ndiff)
have xmllint || need+=(libxml2-utils)
have xsltproc || need+=(xsltproc)
have hyperfine || need+=(hyperfine)
have ss || need+=(iproute2)
have ip || need+=(iproute2)
have nft || need+=(nftables)
# the firewall verify tests load rule sets into a namespace's kernel firewall
have iptables-restore || need+=(iptables)
have ipset || need+=(ipset)
have tcpdump || need+=(tcpdump)
have lsof || need+=(lsof)
have netstat || need+=(net-tools)
have ncat || need+=(ncat)
have openssl || need+=(openssl)
[ -x /usr/bin/time ] || need+=(time)
# real UDP services in the scan lab (scripts/lab.sh); Debian's policy-rc.d keeps them from
# starting on the machine itself when a service manager is present
have dnsmasq || need+=(dnsmasq-base)
have chronyd || need+=(chrony)
have snmpd || need+=(snmpd)
# the identification lab's daemons (scripts/idlab.sh installs its whole list on `up`; these are
# the ones issue 24 added: PPTP, git daemon, TFTP)
[ -x /usr/sbin/pptpd ] || need+=(pptpd)
have git || need+=(git)
[ -x /usr/sbin/in.tftpd ] || need+=(tftpd-hpa)
# the PostgreSQL server for the store tests (scripts/pg.sh runs a throwaway cluster)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
have psql || need+=(postgresql-client)
# the watch corpus (scripts/watch-corpus.sh): real scanners, a real sshd and clients
have masscan || need+=(masscan)
have sshpass || need+=(sshpass)
have curl || need+=(curl)
have ssh || need+=(openssh-client)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
# the peers watch is measured against on the same corpus
have psad || need+=(psad)
have fail2ban-regex || need+=(fail2ban)
# a real Prometheus scrapes watch --metrics (and promtool checks the exposition)
have promtool || need+=(prometheus)
# man pages are rendered by groff in the tests
have groff || need+=(groff-base)
# watch --journal follows journal files that systemd-journal-remote writes
[ -x /lib/systemd/systemd-journal-remote ] || need+=(systemd-journal-remote)
# the watch corpus's pcapng is written by Wireshark's editcap
have editcap || need+=(wireshark-common)
# fleet: a one-node Slurm cluster runs the job array (scripts/slurm.sh)
have sbatch || need+=(slurm-wlm)
have munged || need+=(munge)
# the report is opened in headless Chromium (scripts/browser-check.py), in a namespace of its
# own (unshare, from util-linux)
have chromium || need+=(chromium)
have unshare || need+=(util-linux)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: missing ${need[*]}; run as root (apt-get) or install them" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# no package's daemon starts on this machine (sshd, snmpd...): the tests start their own, in
# namespaces; policy-rc.d says so to invoke-rc.d while we install, and goes afterwards
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
# A stale package index makes installs fail; refresh it once, quietly, with a bounded retry.
for attempt in 1 2 3; do
  if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; then
    exit 0
  fi
  echo "install-test-deps: apt-get failed (attempt $attempt), retrying" >&2
  sleep 5
done
echo "install-test-deps: could not install ${need[*]}" >&2
exit 1
