#!/usr/bin/env bash
# tests/lib/mkcerts.sh DIR: throwaway certificates for the TLS tests.
#
# Writes into DIR (created if missing), with the openssl CLI only, EC keys
# on prime256v1 and a validity of a day or two:
#   ca.pem ca.key                a test CA
#   server.pem server.key        CN=localhost, SAN IP:127.0.0.1 DNS:localhost,
#                                serverAuth and clientAuth, signed by ca
#   server2.pem server2.key      the same names, another key (another
#                                fingerprint): the cert a reload swaps in
#   client.pem client.key        CN=riven-test-client, clientAuth, by ca
#   expired.pem expired.key      a client cert by ca whose validity ended
#                                (2020-01-01 .. 2020-01-02)
#   other-ca.pem other-ca.key    an unrelated CA
#   other-client.pem .key        a client cert signed by other-ca
#   mc-bundle.pem                server.pem then ca.pem: a chain for
#                                memcached's ssl_chain_cert
# Every file is mode 0644 and DIR 0755 so that a memcached running as
# nobody (-u nobody, what the harness does as root) can read its files:
# these keys protect nothing and live only in a temp dir of a test run.
# Never commit them.
#
# Prints nothing on success; on failure, a message on stderr and exit 1.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
command -v openssl >/dev/null 2>&1 || {
    echo "mkcerts: openssl not found (Debian package openssl)" >&2
    exit 1
}
mkdir -p "$dir"
cd "$dir"
work=$(mktemp -d mkcerts.XXXXXX)
log="$work/log"
trap 'rm -rf "$work"' EXIT

fail() {
    echo "mkcerts: $*" >&2
    [ -s "$log" ] && sed 's/^/mkcerts:   /' "$log" >&2
    exit 1
}

# Our own config: the system openssl.cnf neither adds nor clashes with
# the extensions below.
cat >"$work/x509.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

# `openssl ca` for the expired cert: it alone takes any start and end date
[ca]
default_ca = test_ca
[test_ca]
dir = WORKDIR
database = $dir/index.txt
new_certs_dir = $dir
serial = $dir/serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
EOF
sed -i "s|WORKDIR|$PWD/$work|" "$work/x509.cnf"
: >"$work/index.txt"
openssl rand -hex 8 >"$work/serial"

# key NAME: an EC P-256 key in NAME.key
key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 \
        -out "$1.key" 2>"$log" || fail "genpkey $1.key failed"
}

# ca NAME CN: a self-signed CA in NAME.pem, NAME.key
ca() {
    key "$1"
    openssl req -new -x509 -config "$work/x509.cnf" -key "$1.key" \
        -subj "/CN=$2" -days 2 -sha256 -extensions ca_ext \
        -set_serial "0x$(openssl rand -hex 8)" -out "$1.pem" 2>"$log" ||
        fail "CA $1.pem failed"
}

# leaf NAME CN EXT CA: NAME.pem, NAME.key with extensions EXT, by CA
leaf() {
    key "$1"
    openssl req -new -config "$work/x509.cnf" -key "$1.key" -subj "/CN=$2" \
        -out "$work/$1.csr" 2>"$log" || fail "CSR for $1 failed"
    openssl x509 -req -in "$work/$1.csr" -CA "$4.pem" -CAkey "$4.key" \
        -set_serial "0x$(openssl rand -hex 8)" -days 1 -sha256 \
        -extfile "$work/x509.cnf" -extensions "$3" -out "$1.pem" \
        2>"$log" || fail "signing $1.pem with $4 failed"
}

ca ca "riven test CA"
leaf server localhost server_ext ca
leaf server2 localhost server_ext ca
leaf client riven-test-client client_ext ca

# expired: valid 2020-01-01 .. 2020-01-02, signed by ca
key expired
openssl req -new -config "$work/x509.cnf" -key expired.key \
    -subj "/CN=riven-test-expired" -out "$work/expired.csr" 2>"$log" ||
    fail "CSR for expired failed"
openssl ca -batch -config "$work/x509.cnf" -cert ca.pem -keyfile ca.key \
    -in "$work/expired.csr" -startdate 20200101000000Z \
    -enddate 20200102000000Z -extfile "$work/x509.cnf" \
    -extensions client_ext -notext -out expired.pem >"$log" 2>&1 ||
    fail "openssl ca for expired.pem failed"

ca other-ca "riven test other CA"
leaf other-client riven-test-other-client client_ext other-ca

cat server.pem ca.pem >mc-bundle.pem

# checks: each chain as the tests expect it
v() {
    openssl verify -CAfile "$1" "$2" >"$log" 2>&1
}
for f in server server2 client; do
    v ca.pem "$f.pem" || fail "$f.pem does not verify against ca.pem"
done
v other-ca.pem other-client.pem ||
    fail "other-client.pem does not verify against other-ca.pem"
v ca.pem other-client.pem && fail "other-client.pem verifies against ca.pem"
v ca.pem expired.pem && fail "expired.pem is not expired"
grep -q "expired" "$log" || fail "expired.pem fails for another reason"
fp1=$(openssl x509 -in server.pem -noout -fingerprint -sha256)
fp2=$(openssl x509 -in server2.pem -noout -fingerprint -sha256)
[ "$fp1" != "$fp2" ] || fail "server.pem and server2.pem are the same"

chmod 0755 .
chmod 0644 ./*.pem ./*.key
exit 0
