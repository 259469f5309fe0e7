#!/bin/sh
# Runs inside a private network namespace (unshare --net): socksifyd listens
# on 10.9.9.9, an address that exists only on this namespace's loopback
# device, so the server is "off loopback" and protects the host, while no
# packet can leave the namespace. Prints one line per probe.
#   netns_protect.sh SOCKSIFYD HELPERS_DIR WORKDIR
set -eu
socksifyd=$1 helpers=$2 work=$3
ip link set lo up
ip addr add 10.9.9.9/32 dev lo
# A prefix on loopback: Linux makes every address of it the host's. A /0
# is not (no local route for it): nothing beyond it may be denied.
ip addr add 10.9.10.1/24 dev lo
ip addr add 10.20.0.1/0 dev lo
# Shorter than /8 too, as long as the network is outside 0.0.0.0/8.
ip addr add 12.0.0.1/7 dev lo
# Multicast on loopback, so a group member of this host can hear a datagram.
ip link set lo multicast on
ip route add 224.0.0.0/4 dev lo

pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# A target on the wildcard, both families: what a host service looks like.
python3 -c 'import socket,sys,threading
t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); t.bind(("::", 0)); t.listen(16)
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); u.bind(("::", t.getsockname()[1]))
# A member of an mDNS-like group (224.0.0.251), as avahi would be.
m = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); m.bind(("0.0.0.0", 0))
m.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             socket.inet_aton("224.0.0.251") + socket.inet_aton("10.9.9.9"))
open(sys.argv[1] + ".tmp", "w").write("%d %d\n" % (t.getsockname()[1], m.getsockname()[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
def udp():
    while True:
        d, a = u.recvfrom(100)
        open(sys.argv[2], "a").write(d.decode() + "\n")
def group():
    while True:
        d, a = m.recvfrom(100)
        open(sys.argv[2], "a").write(d.decode() + "\n")
threading.Thread(target=udp, daemon=True).start()
threading.Thread(target=group, daemon=True).start()
while True:
    c, _ = t.accept(); c.sendall(b"SECRET"); c.close()' "$work/target.port" "$work/udp.log" &
pids="$pids $!"
"$socksifyd" -l 10.9.9.9:0 --no-auth -v 2>"$work/socksifyd.log" &
pids="$pids $!"
i=0
while { [ ! -s "$work/target.port" ] || ! grep -q 'listening on' "$work/socksifyd.log"; } && [ $i -lt 50 ]; do
	sleep 0.1; i=$((i + 1))
done
read -r tport mport <"$work/target.port"
# An address the host gains after the server started is protected as well.
ip addr add 10.9.9.10/32 dev lo
i=0
while ! grep -q 'host addresses changed' "$work/socksifyd.log" && [ $i -lt 50 ]; do
	sleep 0.1; i=$((i + 1))
done
pport=$(sed -n 's/^socksifyd: listening on .*:\([0-9]*\)$/\1/p' "$work/socksifyd.log")

python3 - "$pport" "$tport" "$mport" <<'PY'
import socket, struct, sys, time
proxy, port, mport = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def connect(atyp_addr):
    s = socket.create_connection(("10.9.9.9", proxy)); s.settimeout(5)
    s.sendall(b"\x05\x01\x00"); assert s.recv(2) == b"\x05\x00"
    s.sendall(b"\x05\x01\x00" + atyp_addr + struct.pack(">H", port))
    r = s.recv(4)
    return "%02x" % r[1]

v4 = lambda a: b"\x01" + socket.inet_aton(a)
v6 = lambda a: b"\x04" + socket.inet_pton(socket.AF_INET6, a)
for name, a in (("[::]", v6("::")), ("10.9.9.9", v4("10.9.9.9")),
                ("[::ffff:10.9.9.9]", v6("::ffff:10.9.9.9")), ("127.0.0.1", v4("127.0.0.1")),
                ("10.9.9.10-added-later", v4("10.9.9.10")),
                ("10.9.10.77-of-a-prefix-on-lo", v4("10.9.10.77"))):
    print("connect", name, connect(a))
print("connect 13.2.3.4-of-a-/7-on-lo", connect(v4("13.2.3.4")))
got = connect(v4("203.0.113.5"))
print("connect 203.0.113.5-beyond-a-/0-on-lo", "02" if got == "02" else "not 02 (%s)" % got)

# UDP to [::], to 10.9.9.9 and to a multicast group: nothing may arrive
s = socket.create_connection(("10.9.9.9", proxy)); s.settimeout(5)
s.sendall(b"\x05\x01\x00"); assert s.recv(2) == b"\x05\x00"
s.sendall(b"\x05\x03\x00\x01\0\0\0\0\0\0")
r = s.recv(10); assert r[:2] == b"\x05\x00"
relay = (socket.inet_ntoa(r[4:8]), struct.unpack(">H", r[8:10])[0])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"\0\0\0" + v6("::") + struct.pack(">H", port) + b"via-any6", relay)
u.sendto(b"\0\0\0" + v4("10.9.9.9") + struct.pack(">H", port) + b"via-own-address", relay)
u.sendto(b"\0\0\0" + v4("224.0.0.251") + struct.pack(">H", mport) + b"via-multicast", relay)
time.sleep(0.5)
print("udp sent")
PY
sleep 0.2
echo "udp arrived: $(cat "$work/udp.log" 2>/dev/null | tr '\n' ' ')"
