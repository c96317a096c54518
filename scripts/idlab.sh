#!/usr/bin/env bash
# The identification lab: real Debian daemons in a network namespace, for `portolan identify`,
# `scan -sV` and their comparison with `nmap -sV` (crates/portolan/tests/identify_lab.rs,
# bench/identify.sh).
#
#   bash scripts/idlab.sh up     # install what is missing (apt-get), start every daemon
#   bash scripts/idlab.sh down   # stop them (by pid, then whatever is left in the namespace)
#
# Layout: namespace pid-lab, reached from the root namespace over veth pid-h (198.18.210.1) ↔
# pid-l (198.18.210.2 standard ports, 198.18.210.3 services on other services' ports). Every
# daemon runs in the foreground with its configuration in $IDLAB_DIR (default /tmp/pid-idlab),
# under `timeout $IDLAB_LIFETIME` (default 1800 s), in its own process group whose id is kept
# in $IDLAB_DIR/pids. The ground truth is written here, from this configuration and from the
# daemons' own --version output, to $IDLAB_DIR/manifest.tsv:
#
#   address  port  transport  service  tls(yes|no)  product|-  version|-  nonstandard(yes|no)
#
# `product` is the daemon's own name (from its --version output or its Debian package; "-":
# a bare protocol service such as echo), `version` the upstream version where the daemon
# puts it on the wire ("-": it does not).
# Needs root. `up` removes leftovers of a crashed run first; it is idempotent.
set -euo pipefail

NS=pid-lab
HOST_IF=pid-h
LAB_IF=pid-l
HOST_IP=198.18.210.1
STD=198.18.210.2
ALT=198.18.210.3
D="${IDLAB_DIR:-/tmp/pid-idlab}"
LIFETIME="${IDLAB_LIFETIME:-1800}"

PACKAGES=(openssh-server nginx-light lighttpd vsftpd opensmtpd dovecot-imapd dovecot-pop3d dnsmasq-base
  chrony snmpd slapd mariadb-server redis-server memcached mosquitto rsync ngircd krb5-kdc
  rpcbind inetutils-inetd inetutils-telnetd fingerd finger tinyproxy samba xrdp tigervnc-standalone-server
  pptpd git tftpd-hpa openssl iproute2)

log() { echo "idlab: $*" >&2; }

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # no daemon may start in the root namespace while packages install
  local made_policy=no
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=yes
  fi
  local ok=no
  for attempt in 1 2 3; do
    if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
      ok=yes
      break
    fi
    log "apt-get failed (attempt $attempt), retrying"
    sleep 5
  done
  [ "$made_policy" = yes ] && rm -f /usr/sbin/policy-rc.d
  [ "$ok" = yes ] || { log "could not install ${missing[*]}"; exit 1; }
}

down() {
  if [ -f "$D/pids" ]; then
    while read -r pid name; do
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done <"$D/pids"
    sleep 0.5
    while read -r pid name; do
      kill -KILL -- "-$pid" 2>/dev/null || true
    done <"$D/pids"
  fi
  if ip netns list 2>/dev/null | grep -qw "$NS"; then
    # anything still inside our own namespace was started by this lab
    for pid in $(ip netns pids "$NS" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
  fi
  ip link del "$HOST_IF" 2>/dev/null || true
  rm -rf /etc/netns/"$NS"
  # Xvnc's display lock and socket, should it have been killed before it could remove them
  rm -f /tmp/.X57-lock /tmp/.X11-unix/X57
  rm -rf "$D"
}

# start NAME CMD...: runs CMD in the namespace, in its own session, bounded in time
start() {
  local name=$1
  shift
  ip netns exec "$NS" setsid timeout --kill-after=5 "$LIFETIME" "$@" >"$D/log/$name.log" 2>&1 </dev/null &
  echo "$! $name" >>"$D/pids"
}

in_ns() { ip netns exec "$NS" "$@"; }

network() {
  ip netns add "$NS"
  ip link add "$HOST_IF" type veth peer name "$LAB_IF"
  ip link set "$LAB_IF" netns "$NS"
  ip addr add "$HOST_IP/24" dev "$HOST_IF"
  ip link set "$HOST_IF" up
  in_ns ip addr add "$STD/24" dev "$LAB_IF"
  in_ns ip addr add "$ALT/24" dev "$LAB_IF"
  in_ns ip link set "$LAB_IF" up
  in_ns ip link set lo up
  # name lookups inside the lab fail fast (nothing answers on loopback) instead of timing out
  mkdir -p /etc/netns/"$NS"
  printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >/etc/netns/"$NS"/resolv.conf
  printf '127.0.0.1 localhost\n%s lab.example lab\n' "$STD" >/etc/netns/"$NS"/hosts
}

certs() {
  # ECDSA: OpenSMTPD 6.8's privilege-separated RSA signing fails with OpenSSL 3
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 -subj "/CN=lab.example/O=Portolan identify lab" \
    -addext "subjectAltName=DNS:lab.example,IP:$STD" -keyout "$D/key.pem" -out "$D/cert.pem" 2>/dev/null
  chmod 600 "$D/key.pem"
  # a copy daemons that drop privileges can read (lab-only key)
  cp "$D/key.pem" "$D/key-shared.pem"
  chmod 644 "$D/key-shared.pem"
}

configs() {
  mkdir -p /run/sshd "$D/nginx" "$D/redis" "$D/redis-alt" "$D/vsftpd-empty" "$D/dovecot-run" "$D/ldapdb" "$D/rsync"
  ssh-keygen -q -t ed25519 -N '' -f "$D/ssh_host_ed25519_key"
  for port_addr in "22 $STD" "443 $ALT"; do
    set -- $port_addr
    cat >"$D/sshd_$1.conf" <<EOF
Port $1
ListenAddress $2
HostKey $D/ssh_host_ed25519_key
PidFile none
UsePAM no
EOF
  done
  cat >"$D/nginx.conf" <<EOF
worker_processes 1;
pid $D/nginx.pid;
error_log stderr;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $D/nginx/body;
  proxy_temp_path $D/nginx/proxy;
  fastcgi_temp_path $D/nginx/fastcgi;
  uwsgi_temp_path $D/nginx/uwsgi;
  scgi_temp_path $D/nginx/scgi;
  server { listen $STD:80; location / { return 200 "<html><head><title>Portolan lab</title></head></html>\n"; } }
  server { listen $STD:443 ssl; ssl_certificate $D/cert.pem; ssl_certificate_key $D/key.pem;
           location / { return 301 https://lab.example/login; } }
  server { listen $ALT:22; location / { return 200 "not ssh\n"; } }
}
EOF
  cat >"$D/lighttpd.conf" <<EOF
server.document-root = "$D"
server.port = 8081
server.bind = "$STD"
server.pid-file = "$D/lighttpd.pid"
server.errorlog = "$D/log/lighttpd-error.log"
EOF
  cat >"$D/vsftpd.conf" <<EOF
listen=YES
listen_ipv6=NO
background=NO
listen_address=$STD
listen_port=21
anonymous_enable=YES
anon_root=$D/vsftpd-empty
local_enable=NO
secure_chroot_dir=$D/vsftpd-empty
ssl_enable=YES
rsa_cert_file=$D/cert.pem
rsa_private_key_file=$D/key.pem
EOF
  # implicit TLS (ftps) on 990
  sed -e 's/^listen_port=21$/listen_port=990/' "$D/vsftpd.conf" >"$D/vsftpd-990.conf"
  echo "implicit_ssl=YES" >>"$D/vsftpd-990.conf"
  cat >"$D/smtpd.conf" <<EOF
pki lab.example cert "$D/cert.pem"
pki lab.example key "$D/key.pem"
listen on $STD port 25 tls pki lab.example hostname lab.example
action "local" mbox
match from any for domain "lab.example" action "local"
EOF
  cat >"$D/dovecot.conf" <<EOF
base_dir = $D/dovecot-run
protocols = imap pop3
listen = $STD
log_path = /dev/stderr
ssl = yes
ssl_cert = <$D/cert.pem
ssl_key = <$D/key.pem
auth_mechanisms = plain
passdb {
  driver = static
  args = password=unused-lab-password
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$D/dovecot-run
}
service imap-login {
  inet_listener imap {
    port = 143
  }
  inet_listener imaps {
    port = 993
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 110
  }
  inet_listener pop3s {
    port = 995
    ssl = yes
  }
}
EOF
  cat >"$D/chrony.conf" <<EOF
bindaddress $STD
port 123
cmdport 0
allow all
local stratum 10
pidfile $D/chronyd.pid
EOF
  # smux (RFC 1227) on 199: a peer must authenticate with its OID and password
  cat >"$D/snmpd.conf" <<EOF
rocommunity public default
smuxsocket $STD
smuxpeer .1.3.6.1.4.1.674.10892.1 unused-lab-smux-password
EOF
  # pptpd: the control connection (1723) answers without pppd; call addresses stay in the lab's
  # range and are never used (no call is placed)
  cat >"$D/pptpd.conf" <<EOF
option $D/pptpd-options
localip 198.18.211.1
remoteip 198.18.211.10-20
EOF
  : >"$D/pptpd-options"
  # git daemon (9418) serving one bare repository
  mkdir -p "$D/git"
  git init -q --bare "$D/git/lab.git"
  # tftpd-hpa (69/udp), secure mode in an empty directory
  mkdir -p "$D/tftp"
  cat >"$D/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $D/slapd.pid
TLSCertificateFile $D/cert.pem
TLSCertificateKeyFile $D/key.pem
database mdb
suffix "dc=lab,dc=example"
rootdn "cn=admin,dc=lab,dc=example"
directory $D/ldapdb
EOF
  cat >"$D/mosquitto.conf" <<EOF
per_listener_settings false
allow_anonymous true
listener 1883 $STD
listener 8883 $STD
certfile $D/cert.pem
keyfile $D/key-shared.pem
EOF
  cat >"$D/rsyncd.conf" <<EOF
pid file = $D/rsyncd.pid
use chroot = no
[lab]
path = $D/rsync
read only = yes
EOF
  cat >"$D/ngircd.conf" <<EOF
[Global]
Name = irc.lab.example
Info = Portolan identify lab
Listen = $STD
Ports = 6667
PidFile = $D/ngircd.pid
MotdPhrase = lab
[Options]
DNS = no
Ident = no
PAM = no
EOF
  cat >"$D/krb5.conf" <<EOF
[libdefaults]
  default_realm = LAB.EXAMPLE
[realms]
  LAB.EXAMPLE = {
    kdc = $STD
  }
EOF
  cat >"$D/kdc.conf" <<EOF
[kdcdefaults]
  kdc_ports = 88
  kdc_tcp_ports = 88
[realms]
  LAB.EXAMPLE = {
    database_name = $D/krb5/principal
    key_stash_file = $D/krb5/stash
    acl_file = $D/krb5/kadm5.acl
  }
EOF
  mkdir -p "$D/krb5"
  touch "$D/krb5/kadm5.acl"
  KRB5_CONFIG="$D/krb5.conf" KRB5_KDC_PROFILE="$D/kdc.conf" \
    kdb5_util create -s -r LAB.EXAMPLE -P unused-lab-master-key >"$D/log/kdb5_util.log" 2>&1
  cat >"$D/inetd.conf" <<EOF
echo    stream tcp nowait root internal
echo    dgram  udp wait   root internal
discard stream tcp nowait root internal
daytime stream tcp nowait root internal
daytime dgram  udp wait   root internal
chargen stream tcp nowait root internal
time    stream tcp nowait root internal
telnet  stream tcp nowait root /usr/sbin/telnetd telnetd
finger  stream tcp nowait nobody /usr/sbin/in.fingerd in.fingerd
EOF
  cat >"$D/tinyproxy.conf" <<EOF
Port 8888
Listen $STD
Timeout 60
Allow $HOST_IP
LogLevel Error
MaxClients 20
EOF
  mkdir -p "$D/samba/run" "$D/samba/lock" "$D/samba/state" "$D/samba/cache" "$D/samba/private" "$D/samba/ncalrpc"
  cat >"$D/smb.conf" <<EOF
[global]
  workgroup = LAB
  server role = standalone server
  interfaces = $STD
  bind interfaces only = yes
  smb ports = 445 139
  disable netbios = yes
  pid directory = $D/samba/run
  lock directory = $D/samba/lock
  state directory = $D/samba/state
  cache directory = $D/samba/cache
  private dir = $D/samba/private
  ncalrpc dir = $D/samba/ncalrpc
  log file = $D/log/samba.log
  map to guest = bad user
EOF
  # nmbd (NetBIOS name service, 137/udp) from the same configuration, NetBIOS on
  sed -e '/disable netbios/d' -e 's|^  workgroup = LAB$|  workgroup = LAB\n  netbios name = LABSMB|' \
    -e "s|samba.log|nmbd.log|" "$D/smb.conf" >"$D/nmb.conf"
  # xrdp: the packaged configuration, listening on the lab address, in the foreground
  sed -e "s|^port=3389\$|port=tcp://$STD:3389|" -e 's|^fork=true|fork=false|' /etc/xrdp/xrdp.ini >"$D/xrdp.ini"
  # MariaDB and PostgreSQL data directories
  mariadb-install-db --no-defaults --datadir="$D/mysql" --user=root --auth-root-authentication-method=normal \
    --skip-test-db >"$D/log/mariadb-install.log" 2>&1
  mkdir -p "$D/pg" "$D/pgsock"
  chown postgres:postgres "$D/pg" "$D/pgsock"
  chmod 755 "$D"
  local pgbin
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  setpriv --reuid=postgres --regid=postgres --init-groups -- "$pgbin/initdb" -D "$D/pg/data" -A trust -U postgres \
    >"$D/log/initdb.log" 2>&1
}

daemons() {
  local pgbin
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  start sshd /usr/sbin/sshd -D -e -f "$D/sshd_22.conf"
  start sshd-alt /usr/sbin/sshd -D -e -f "$D/sshd_443.conf"
  start nginx /usr/sbin/nginx -g 'daemon off;' -c "$D/nginx.conf"
  start lighttpd /usr/sbin/lighttpd -D -f "$D/lighttpd.conf"
  start vsftpd /usr/sbin/vsftpd "$D/vsftpd.conf"
  start vsftpd-990 /usr/sbin/vsftpd "$D/vsftpd-990.conf"
  start smtpd /usr/sbin/smtpd -d -f "$D/smtpd.conf"
  start dovecot /usr/sbin/dovecot -F -c "$D/dovecot.conf"
  start dnsmasq /usr/sbin/dnsmasq -k -C /dev/null --listen-address="$STD" --bind-interfaces --port=53 \
    --no-resolv --no-hosts --pid-file="$D/dnsmasq.pid"
  start chronyd /usr/sbin/chronyd -d -x -f "$D/chrony.conf"
  start snmpd /usr/sbin/snmpd -f -Lo -C -c "$D/snmpd.conf" -p "$D/snmpd.pid" "udp:$STD:161"
  start slapd /usr/sbin/slapd -d 0 -h "ldap://$STD/ ldaps://$STD/" -f "$D/slapd.conf"
  start mariadb /usr/sbin/mariadbd --no-defaults --datadir="$D/mysql" --socket="$D/mysql.sock" \
    --bind-address="$STD" --port=3306 --user=root --pid-file="$D/mysql.pid" --skip-log-error \
    --skip-name-resolve --skip-grant-tables
  start postgres setpriv --reuid=postgres --regid=postgres --init-groups -- "$pgbin/postgres" -D "$D/pg/data" \
    -c listen_addresses="$STD" -c port=5432 -c unix_socket_directories="$D/pgsock"
  start redis /usr/bin/redis-server --bind "$STD" --port 6379 --protected-mode no --save '' --appendonly no \
    --dir "$D/redis" --tls-port 6380 --tls-cert-file "$D/cert.pem" --tls-key-file "$D/key.pem" \
    --tls-ca-cert-file "$D/cert.pem" --tls-auth-clients no
  start redis-alt /usr/bin/redis-server --bind "$ALT" --port 8080 --protected-mode no --save '' --appendonly no \
    --dir "$D/redis-alt"
  start memcached /usr/bin/memcached -u nobody -l "$STD" -p 11211 -U 11211
  start mosquitto /usr/sbin/mosquitto -c "$D/mosquitto.conf"
  start rsyncd /usr/bin/rsync --daemon --no-detach --config="$D/rsyncd.conf" --address="$STD" --port=873
  start ngircd /usr/sbin/ngircd -n -f "$D/ngircd.conf"
  start krb5kdc env KRB5_CONFIG="$D/krb5.conf" KRB5_KDC_PROFILE="$D/kdc.conf" /usr/sbin/krb5kdc -n
  start rpcbind /usr/sbin/rpcbind -f -w
  start inetd /usr/sbin/inetutils-inetd -d "$D/inetd.conf"
  start tinyproxy /usr/bin/tinyproxy -d -c "$D/tinyproxy.conf"
  start smbd /usr/sbin/smbd --foreground --no-process-group --debug-stdout -s "$D/smb.conf"
  start nmbd /usr/sbin/nmbd --foreground --no-process-group --debug-stdout -s "$D/nmb.conf"
  start pptpd /usr/sbin/pptpd -f -c "$D/pptpd.conf" -o "$D/pptpd-options" -p "$D/pptpd.pid" -l "$STD"
  start gitd /usr/bin/git daemon --reuseaddr --listen="$STD" --port=9418 --base-path="$D/git" --export-all \
    --informative-errors "$D/git"
  start tftpd /usr/sbin/in.tftpd --foreground --listen --address "$STD:69" --user nobody --secure "$D/tftp"
  start xrdp /usr/sbin/xrdp --nodaemon --config "$D/xrdp.ini"
  # Xvnc turns away an address after 5 connections that end before authentication (every
  # scanner's probes do); the comparison scans it twice in a row from one address, so the
  # threshold is raised for the lab
  start xvnc /usr/bin/Xvnc :57 -rfbport 5901 -interface "$STD" -SecurityTypes None -nolisten tcp \
    -BlacklistThreshold 1000
}

# upstream versions, from the daemons themselves
versions() {
  V_SSH=$(ssh -V 2>&1 | sed -n 's/^OpenSSH_\([0-9.p]*\).*/\1/p')
  V_NGINX=$(/usr/sbin/nginx -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
  V_LIGHTTPD=$(/usr/sbin/lighttpd -v 2>&1 | sed -n 's|^lighttpd/\([0-9.]*\).*|\1|p')
  V_VSFTPD=$(dpkg-query -W -f='${Version}' vsftpd | sed 's/-.*//')
  V_DNSMASQ=$(/usr/sbin/dnsmasq --version | sed -n 's/^Dnsmasq version \([0-9.]*\).*/\1/p')
  V_MARIADB=$(/usr/sbin/mariadbd --version | sed -n 's/.*Ver \([0-9.]*\)-MariaDB.*/\1/p')
  V_REDIS=$(/usr/bin/redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')
  V_MEMCACHED=$(/usr/bin/memcached -V | sed -n 's/^memcached \([0-9.]*\).*/\1/p')
  V_MOSQUITTO=$(dpkg-query -W -f='${Version}' mosquitto | sed 's/-.*//')
  V_NGIRCD=$(/usr/sbin/ngircd --version | sed -n '1s/^ngIRCd \([0-9.]*\).*/\1/p')
  V_TINYPROXY=$(/usr/bin/tinyproxy -v | sed -n 's/^tinyproxy \([0-9.]*\).*/\1/p')
  # products whose version the wire does not show: the name from the daemon or its package
  # (smbd --version prints only "Version 4.x"; Debian's in.fingerd has no version option)
  P_SAMBA=$(/usr/sbin/smbd --version | grep -q '^Version ' && dpkg -S /usr/sbin/smbd | cut -d: -f1)
  P_XRDP=$(/usr/sbin/xrdp --version 2>&1 | sed -n '1s/^\(xrdp\) [0-9].*/\1/p')
  P_FINGERD=$(dpkg -S /usr/sbin/in.fingerd | cut -d: -f1)
  P_CHRONY=$(/usr/sbin/chronyd -v | sed -n 's/^chronyd (\(chrony\)) version.*/\1/p')
  P_XVNC=$(/usr/bin/Xvnc -version 2>&1 | sed -n 's/^Xvnc \(TigerVNC\) [0-9].*/\1/p')
  P_PPTPD=$(/usr/sbin/pptpd --version 2>&1 | sed -n 's/^\(pptpd\) v[0-9].*/\1/p')
  P_GIT=$(git --version | sed -n 's/^\(git\) version [0-9].*/\1/p')
  P_SNMPD=$(/usr/sbin/snmpd -v | sed -n 's/^\(NET-SNMP\) version.*/\1/p' | tr 'A-Z' 'a-z')
  P_TFTPD=$(dpkg -S /usr/sbin/in.tftpd | cut -d: -f1)
  local v
  for v in P_SAMBA P_XRDP P_FINGERD P_XVNC P_CHRONY P_PPTPD P_GIT P_SNMPD P_TFTPD; do
    [ -n "${!v}" ] || { log "cannot tell the product for $v"; exit 1; }
  done
}

manifest() {
  versions
  {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
      "$STD" 7 tcp echo no - - no \
      "$STD" 9 tcp discard no - - no \
      "$STD" 13 tcp daytime no - - no \
      "$STD" 19 tcp chargen no - - no \
      "$STD" 21 tcp ftp no vsftpd "$V_VSFTPD" no \
      "$STD" 22 tcp ssh no OpenSSH "$V_SSH" no \
      "$STD" 23 tcp telnet no - - no \
      "$STD" 25 tcp smtp no OpenSMTPD - no \
      "$STD" 37 tcp time no - - no \
      "$STD" 53 tcp domain no dnsmasq "$V_DNSMASQ" no \
      "$STD" 79 tcp finger no "$P_FINGERD" - no \
      "$STD" 80 tcp http no nginx "$V_NGINX" no \
      "$STD" 88 tcp kerberos-sec no "MIT Kerberos" - no \
      "$STD" 110 tcp pop3 no Dovecot - no \
      "$STD" 111 tcp rpcbind no - 2-4 no \
      "$STD" 143 tcp imap no Dovecot - no \
      "$STD" 389 tcp ldap no OpenLDAP - no \
      "$STD" 443 tcp http yes nginx "$V_NGINX" no \
      "$STD" 990 tcp ftp yes vsftpd "$V_VSFTPD" no \
      "$STD" 636 tcp ldap yes OpenLDAP - no \
      "$STD" 873 tcp rsync no - - no \
      "$STD" 993 tcp imap yes Dovecot - no \
      "$STD" 995 tcp pop3 yes Dovecot - no \
      "$STD" 1883 tcp mqtt no Mosquitto "$V_MOSQUITTO" no \
      "$STD" 3306 tcp mysql no MariaDB "$V_MARIADB" no \
      "$STD" 5432 tcp postgresql no PostgreSQL - no \
      "$STD" 6379 tcp redis no Redis "$V_REDIS" no \
      "$STD" 6380 tcp redis yes Redis "$V_REDIS" no \
      "$STD" 6667 tcp irc no ngircd "$V_NGIRCD" no \
      "$STD" 8081 tcp http no lighttpd "$V_LIGHTTPD" no \
      "$STD" 8883 tcp mqtt yes Mosquitto "$V_MOSQUITTO" no \
      "$STD" 8888 tcp http-proxy no Tinyproxy "$V_TINYPROXY" no \
      "$STD" 11211 tcp memcached no Memcached "$V_MEMCACHED" no \
      "$STD" 445 tcp microsoft-ds no "$P_SAMBA" - no \
      "$STD" 139 tcp netbios-ssn no "$P_SAMBA" - no \
      "$STD" 3389 tcp ms-wbt-server no "$P_XRDP" - no \
      "$STD" 5901 tcp vnc no "$P_XVNC" - no \
      "$STD" 53 udp domain no dnsmasq "$V_DNSMASQ" no \
      "$STD" 88 udp kerberos-sec no "MIT Kerberos" - no \
      "$STD" 123 udp ntp no "$P_CHRONY" - no \
      "$STD" 161 udp snmp no net-snmp - no \
      "$STD" 199 tcp smux no "$P_SNMPD" - no \
      "$STD" 1723 tcp pptp no "$P_PPTPD" - no \
      "$STD" 9418 tcp git no "$P_GIT" - no \
      "$STD" 7 udp echo no - - no \
      "$STD" 13 udp daytime no - - no \
      "$STD" 69 udp tftp no "$P_TFTPD" - no \
      "$STD" 111 udp rpcbind no - 2-4 no \
      "$STD" 137 udp netbios-ns no "$P_SAMBA" - no \
      "$STD" 11211 udp memcached no Memcached "$V_MEMCACHED" no \
      "$ALT" 22 tcp http no nginx "$V_NGINX" yes \
      "$ALT" 443 tcp ssh no OpenSSH "$V_SSH" yes \
      "$ALT" 8080 tcp redis no Redis "$V_REDIS" yes
  } >"$D/manifest.tsv"
}

wait_ready() {
  local deadline=$((SECONDS + 60)) missing
  while :; do
    missing=()
    local tcp udp
    tcp=$(in_ns ss -Hltn 2>/dev/null | awk '{print $4}')
    udp=$(in_ns ss -Hlun 2>/dev/null | awk '{print $4}')
    while IFS=$'\t' read -r addr port proto _; do
      local list=$tcp
      [ "$proto" = udp ] && list=$udp
      grep -qE "^($addr|\*|0\.0\.0\.0|\[::\]):$port\$" <<<"$list" || missing+=("$addr:$port/$proto")
    done <"$D/manifest.tsv"
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ $SECONDS -ge $deadline ]; then
      log "not listening after 60 s: ${missing[*]} (logs in $D/log)"
      return 1
    fi
    sleep 0.3
  done
}

up() {
  [ "$(id -u)" -eq 0 ] || { log "needs root (network namespaces, apt-get)"; exit 1; }
  local t0=$SECONDS
  install_packages
  down
  mkdir -p "$D/log"
  : >"$D/pids"
  network
  certs
  configs
  daemons
  manifest
  wait_ready
  log "up in $((SECONDS - t0)) s: $(wc -l <"$D/manifest.tsv") ports, manifest $D/manifest.tsv"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
