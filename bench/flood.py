#!/usr/bin/env python3
"""Bad input for the soak test (bench/soak.sh): until the deadline, open
connections to the IMAPS and SMTP submission ports of a Carepost on
loopback and send what a broken or hostile client would: random bytes,
TLS handshakes dropped half-way, commands cut off, unknown commands, huge
literals, nested MIME, mail to outside the trust space, a wrong password
now and then. Every answer is read and thrown away; the point is that the
server stays up and flat while its real clients go on.

  flood.py HOST IMAPS_PORT SMTPS_PORT CA_FILE USER PASSWORD SECONDS
"""
import os
import random
import socket
import ssl
import sys
import time

host, imaps, smtps, ca, user, password, secs = sys.argv[1:8]
imaps, smtps, deadline = int(imaps), int(smtps), time.time() + float(secs)
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False  # the dev certificate names the host name, we dial 127.0.0.1
rng = random.Random(int(os.environ.get("FLOOD_SEED", "7")))
counts = {}


def tls(port):
    s = socket.create_connection((host, port), timeout=10)
    return ctx.wrap_socket(s, server_hostname="localhost")


def drain(s, n=4):
    try:
        s.settimeout(2)
        for _ in range(n):
            if not s.recv(65536):
                break
    except (OSError, ssl.SSLError):
        pass


def random_bytes(_):
    s = tls(rng.choice([imaps, smtps]))
    drain(s, 1)
    s.sendall(os.urandom(rng.randint(1, 4096)) + b"\r\n")
    drain(s)
    s.close()


def half_handshake(_):
    s = socket.create_connection((host, rng.choice([imaps, smtps])), timeout=10)
    s.sendall(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03")  # a ClientHello cut short
    time.sleep(rng.random())
    s.close()


def connect_close(_):
    socket.create_connection((host, rng.choice([imaps, smtps])), timeout=10).close()


IMAP_JUNK = [
    b"a1 FROBNICATE\r\n",
    b"a1 LOGIN\r\n",
    b"a1 SELECT {999999999}\r\n",
    b"a1 SELECT \"INBOX\r\n",
    b"a1 FETCH 1:* (BODY[1.2.3.4.5.6.7.8.9])\r\n",
    b"a1 SEARCH " + b"(" * 2000 + b"ALL" + b")" * 2000 + b"\r\n",
    b"a1 STATUS &-&-&-& (MESSAGES)\r\n",
    b"a1 APPEND INBOX {10}\r\nabc",
    b"a1 UID FETCH 0:-1 FLAGS\r\n",
    b"a1 IDLE\r\nDONE\r\nDONE\r\n",
]


def imap_junk(_):
    s = tls(imaps)
    drain(s, 1)
    s.sendall(b"a0 LOGIN \"%s\" \"%s\"\r\n" % (user.encode(), password.encode()))
    drain(s, 1)
    s.sendall(b"s SELECT INBOX\r\n")
    drain(s, 1)
    for _ in range(rng.randint(1, 6)):
        s.sendall(rng.choice(IMAP_JUNK))
        drain(s, 1)
    s.close()


def nested(depth):
    return b"".join([b"Content-Type: message/rfc822\r\n\r\nSubject: n\r\n"] * depth) + b"\r\nx\r\n"


def smtp_junk(_):
    s = tls(smtps)
    drain(s, 1)

    def cmd(line):
        s.sendall(line + b"\r\n")
        drain(s, 1)

    cmd(b"EHLO flood.test")
    cmd(b"AUTH PLAIN %s" % __import__("base64").b64encode(b"\0" + user.encode() + b"\0" + password.encode()))
    what = rng.randint(0, 4)
    if what == 0:
        cmd(b"MAIL FROM:<someone@gmail.com>")
    elif what == 1:
        cmd(b"MAIL FROM:<%s>" % user.encode())
        cmd(b"RCPT TO:<x@gmail.com>")
        cmd(b"RCPT TO:<nobody@carepost.test>")
    elif what == 2:
        cmd(b"MAIL FROM:<%s>" % user.encode())
        cmd(b"RCPT TO:<%s>" % user.encode())
        cmd(b"DATA")
        s.sendall(b"From: " + user.encode() + b"\r\n" + nested(rng.randint(100, 3000)) + b".\r\n")
        drain(s, 1)
    elif what == 3:
        cmd(b"MAIL FROM:<%s>" % user.encode())
        cmd(b"RCPT TO:<%s>" % user.encode())
        cmd(b"DATA")
        s.sendall(b"From: " + user.encode() + b"\r\nX-Long: " + b"y" * 100000 + b"\r\n")
        # and leave in the middle of DATA
    else:
        cmd(os.urandom(200).replace(b"\r", b"").replace(b"\n", b""))
    s.close()


def wrong_password(_):
    s = tls(imaps)
    drain(s, 1)
    s.sendall(b"a1 LOGIN \"%s\" \"not the password\"\r\n" % user.encode())
    drain(s, 1)
    s.close()


attacks = [random_bytes] * 3 + [half_handshake] * 2 + [connect_close] * 2 + [imap_junk] * 4 + [smtp_junk] * 4 + [wrong_password]
while time.time() < deadline:
    a = rng.choice(attacks)
    try:
        a(None)
        counts[a.__name__] = counts.get(a.__name__, 0) + 1
    except (OSError, ssl.SSLError) as e:
        counts[a.__name__ + " (" + type(e).__name__ + ")"] = counts.get(a.__name__ + " (" + type(e).__name__ + ")", 0) + 1
print("flood:", ", ".join("%s %d" % kv for kv in sorted(counts.items())))
