#!/usr/bin/env python3
"""crypt_ref.py: a second implementation of doc/encryption.md, written from
the document alone (Python's cryptography), for the tests: what vmaback
writes this reads, and what this writes vmaback reads.

  crypt_ref.py decrypt KEYFILE IN OUT [PASSPHRASE-FILE]
  crypt_ref.py encrypt PUBFILE IN OUT
  crypt_ref.py keyid FILE
  crypt_ref.py checksig PUBFILE FILE
"""
import hashlib
import os
import struct
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                               Ed25519PublicKey)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MAGIC = b"VBCRYPT\0"
SIG_HEAD = bytes([0x5B, 0x2A, 0x4D, 0x18, 0x80, 0, 0, 0]) + b"VBSIG\0\0\x01"
RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def hkdf(ikm, salt, info, n=32):
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt, info=info).derive(ikm)


def read_blob(path):
    lines = [l.rstrip("\r\n") for l in open(path) if not l.startswith("#") and l.strip()]
    typ = lines[0]
    digits = "".join(c for c in "".join(lines[1:]) if c not in "- \t")
    blob = bytes.fromhex(digits)
    if hashlib.sha256(blob[:-2]).digest()[:2] != blob[-2:]:
        sys.exit("check bytes do not match")
    return typ, blob[:-2]


def secret_parts(s):
    xpriv = hkdf(s, None, b"vmaback-v1 x25519")
    epriv = hkdf(s, None, b"vmaback-v1 ed25519")
    xpub = X25519PrivateKey.from_private_bytes(xpriv).public_key().public_bytes(*RAW)
    epub = Ed25519PrivateKey.from_private_bytes(epriv).public_key().public_bytes(*RAW)
    return xpriv, xpub, epub


def key_id(xpub, epub):
    return hashlib.sha256(b"vmaback-v1 key id" + xpub + epub).digest()[:16]


def load_secret(path, passfile=None):
    typ, blob = read_blob(path)
    if typ == "vmaback-secret-key-v1":
        return blob
    name, logn, r, p = typ.split()
    assert name == "vmaback-secret-key-v1-scrypt"
    pw = open(passfile, "rb").readline().rstrip(b"\n")
    salt, sealed = blob[:16], blob[16:]
    w = Scrypt(salt=salt, length=32, n=1 << int(logn), r=int(r), p=int(p)).derive(pw)
    return AESGCM(w).decrypt(bytes(12), sealed, name.encode())


def load_public(path):
    typ, blob = read_blob(path)
    if typ == "vmaback-public-key-v1":
        return blob[:32], blob[32:64]
    _, xpub, epub = secret_parts(load_secret(path))
    return xpub, epub


def decrypt(keyfile, src, dst, passfile=None):
    xpriv, xpub, epub = secret_parts(load_secret(keyfile, passfile))
    data = open(src, "rb").read()
    if len(data) >= 136 and data[-136:-120] == SIG_HEAD:
        data = data[:-136]
    h = data[:132]
    if len(h) < 132 or h[:8] != MAGIC or h[8] != 1 or h[10:12] != b"\0\0" or h[115] != 0:
        sys.exit("bad header")
    if h[12:28] != key_id(xpub, epub):
        sys.exit("wrong key")
    c = 1 << h[9]
    eph, prefix = h[28:60], h[108:115]
    shared = X25519PrivateKey.from_private_bytes(xpriv).exchange(
        X25519PublicKey.from_public_bytes(eph))
    w = hkdf(shared, eph + xpub, b"vmaback-v1 wrap")
    k = AESGCM(w).decrypt(bytes(12), h[60:108], h[:60])
    g = AESGCM(k)
    g.decrypt(prefix + b"\xff\xff\xff\xff\x02", h[116:132], h[:116])
    out, off, i = [], 132, 0
    while True:
        sealed = data[off:off + c + 16]
        if len(sealed) < 16:
            sys.exit("truncated at %d" % off)
        last = off + len(sealed) == len(data)
        nonce = prefix + struct.pack(">I", i) + (b"\x01" if last else b"\x00")
        if not last and len(sealed) != c + 16:
            sys.exit("short chunk at %d" % off)
        out.append(g.decrypt(nonce, sealed, None))
        off += len(sealed)
        i += 1
        if last:
            break
    open(dst, "wb").write(b"".join(out))


def encrypt(pubfile, src, dst):
    xpub, epub = load_public(pubfile)
    data = open(src, "rb").read()
    k, prefix = os.urandom(32), os.urandom(7)
    e = X25519PrivateKey.generate()
    epk = e.public_key().public_bytes(*RAW)
    shared = e.exchange(X25519PublicKey.from_public_bytes(xpub))
    w = hkdf(shared, epk + xpub, b"vmaback-v1 wrap")
    h = MAGIC + bytes([1, 16, 0, 0]) + key_id(xpub, epub) + epk
    h += AESGCM(w).encrypt(bytes(12), k, h)
    h += prefix + b"\0"
    h += AESGCM(k).encrypt(prefix + b"\xff\xff\xff\xff\x02", b"", h)
    g, c = AESGCM(k), 1 << 16
    chunks = [data[i:i + c] for i in range(0, len(data), c)] or [b""]
    body = b"".join(g.encrypt(prefix + struct.pack(">I", i) +
                              (b"\x01" if i == len(chunks) - 1 else b"\x00"), ch, None)
                    for i, ch in enumerate(chunks))
    open(dst, "wb").write(h + body)


def checksig(pubfile, path):
    xpub, epub = load_public(pubfile)
    data = open(path, "rb").read()
    body, t = data[:-136], data[-136:]
    if t[:16] != SIG_HEAD or t[16:32] != key_id(xpub, epub):
        sys.exit("not signed by this key")
    if hashlib.sha256(body).digest() != t[32:64] or struct.unpack("<Q", t[64:72])[0] != len(body):
        sys.exit("changed")
    Ed25519PublicKey.from_public_bytes(epub).verify(
        t[72:136], b"vmaback-v1 signature" + t[16:72])


if __name__ == "__main__":
    if sys.argv[1] == "decrypt":
        decrypt(*sys.argv[2:])
    elif sys.argv[1] == "encrypt":
        encrypt(*sys.argv[2:])
    elif sys.argv[1] == "checksig":
        checksig(*sys.argv[2:])
    else:
        print(key_id(*load_public(sys.argv[2])).hex())
