#!/usr/bin/env python3
"""An independent check of cairn's transparency log (index/log.md), written
from the C2SP specs and RFC 6962 without cairn's code.

    log_check.py vectors index/log-vectors.json
    log_check.py root STATIC_DIR     # a registry's static root, as served
    log_check.py proof FILE VKEY     # a c2sp.org/tlog-proof@v1 against a log key

Exits 0 when everything verifies; prints what failed otherwise."""
import base64, hashlib, json, os, struct, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.exceptions import InvalidSignature

def sha256(b): return hashlib.sha256(b).digest()
def leaf_hash(e): return sha256(b"\x00" + e)
def node_hash(l, r): return sha256(b"\x01" + l + r)

def mth(hashes):
    """RFC 6962 Merkle tree hash of a list of leaf hashes."""
    if not hashes: return sha256(b"")
    if len(hashes) == 1: return hashes[0]
    k = 1
    while k * 2 < len(hashes): k *= 2
    return node_hash(mth(hashes[:k]), mth(hashes[k:]))

def key_id(name, typ, pub): return sha256(name.encode() + b"\n" + bytes([typ]) + pub)[:4]

def parse_vkey(vkey):
    name, kid, b64 = vkey.split("+", 2)
    raw = base64.b64decode(b64)
    assert key_id(name, raw[0], raw[1:]).hex() == kid, f"key ID of {vkey}"
    return name, raw[0], kid, Ed25519PublicKey.from_public_bytes(raw[1:])

def check_note(note, vkeys):
    """Verifies the note's signatures by vkeys; returns (body, {vkey: time or None})."""
    body, _, sigs = note.partition("\n\n")
    body += "\n"
    found = {}
    for line in sigs.strip("\n").split("\n"):
        assert line.startswith("\u2014 "), f"signature line {line!r}"
        name, b64 = line[2:].split(" ")
        raw = base64.b64decode(b64)
        for vkey in vkeys:
            kname, typ, kid, pub = parse_vkey(vkey)
            if kname != name or raw[:4].hex() != kid: continue
            sig = raw[4:]
            if typ == 1:
                pub.verify(sig, body.encode()); found[vkey] = None
            elif typ == 4:
                t = struct.unpack(">Q", sig[:8])[0]
                pub.verify(sig[8:], f"cosignature/v1\ntime {t}\n".encode() + body.encode()); found[vkey] = t
    return body, found

def check_vectors(path):
    v = json.load(open(path))
    for seed, vkey, typ in ((v["noteSeed"], v["noteVkey"], 1), (v["timeSeed"], v["timeVkey"], 4)):
        pub = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed)).public_key().public_bytes_raw()
        want = f'{v["origin"]}+{key_id(v["origin"], typ, pub).hex()}+{base64.b64encode(bytes([typ]) + pub).decode()}'
        assert vkey == want, f"vkey {vkey} != {want}"
    line = v["line"].encode()
    first = line.replace(b'"yanked":true', b'"yanked":false')
    for e in v["entries"][:2]:
        assert e.split(" ")[5] == hashlib.sha256(first).hexdigest(), "line digest"
    hashes = [leaf_hash(e.encode()) for e in v["entries"]]
    assert [h.hex() for h in hashes] == v["entryHashes"], "entry hashes"
    root = mth(hashes)
    assert root.hex() == v["rootHash"], "root hash"
    body, found = check_note(v["checkpoint"], [v["noteVkey"], v["timeVkey"]])
    assert body == f'{v["origin"]}\n{len(hashes)}\n{base64.b64encode(root).decode()}\n', "checkpoint body"
    assert found == {v["noteVkey"]: None, v["timeVkey"]: v["time"]}, f"signatures {found}"
    # Ed25519 is deterministic: signing the bytes index/log.md defines with
    # the same keys gives exactly the checkpoint's signature lines.
    note = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v["noteSeed"]))
    cosigner = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v["timeSeed"]))
    kid = lambda vkey: bytes.fromhex(vkey.split("+")[1])
    note_sig = kid(v["noteVkey"]) + note.sign(body.encode())
    stamp = struct.pack(">Q", v["time"])
    time_sig = kid(v["timeVkey"]) + stamp + cosigner.sign(f'cosignature/v1\ntime {v["time"]}\n{body}'.encode())
    want = f'{body}\n\u2014 {v["origin"]} {base64.b64encode(note_sig).decode()}\n' \
           f'\u2014 {v["origin"]} {base64.b64encode(time_sig).decode()}\n'
    assert v["checkpoint"] == want, "the checkpoint is not the bytes index/log.md defines"
    print(f"vectors ok: {len(hashes)} entries, root {root.hex()}")

def tile_path(n, w):
    s = f"{n % 1000:03d}"; n //= 1000
    while n > 0: s = f"x{n % 1000:03d}/{s}"; n //= 1000
    return s + (f".p/{w}" if w < 256 else "")

def check_root(static):
    config = json.load(open(os.path.join(static, "index/config.json")))
    log = config["log"]
    keys = open(os.path.join(static, "log/keys")).read().split("\n")
    assert keys[:2] == [log["key"], log["timeKey"]], "log/keys and config.json differ"
    body, found = check_note(open(os.path.join(static, "log/checkpoint")).read(), [log["key"], log["timeKey"]])
    assert log["key"] in found and log["timeKey"] in found, f"missing registry signatures: {found}"
    origin, size, root = body.split("\n")[:3]
    size = int(size)
    assert origin == log["origin"], "origin"
    entries = []
    for n in range((size + 255) // 256):
        w = min(256, size - n * 256)
        data = open(os.path.join(static, "log/tile/entries", tile_path(n, w)), "rb").read()
        got = []
        while data:
            (l,) = struct.unpack(">H", data[:2]); got.append(data[2:2 + l]); data = data[2 + l:]
        assert len(got) == w, f"bundle {n} has {len(got)} entries, not {w}"
        tile = open(os.path.join(static, "log/tile/0", tile_path(n, w)), "rb").read()
        assert tile == b"".join(leaf_hash(e) for e in got), f"level-0 tile {n} is not its entries' hashes"
        entries += got
    assert base64.b64encode(mth([leaf_hash(e) for e in entries])).decode() == root, "the entries do not hash to the checkpoint"
    # Every line that names a log entry is that entry's publish.
    for dirpath, _, files in os.walk(os.path.join(static, "index")):
        if ".git" in dirpath: continue
        for f in files:
            p = os.path.join(dirpath, f)
            if f == "config.json" or "advisories" in p: continue
            for raw in open(p, "rb").read().split(b"\n"):
                if not raw.strip(): continue
                line = json.loads(raw)
                if "logIndex" not in line: continue
                e = entries[line["logIndex"]].decode().rstrip("\n").split(" ")
                want = ["cairn-log-v1", "publish", line["name"], line["vers"], line["cksum"],
                        hashlib.sha256(raw.replace(b'"yanked":true', b'"yanked":false')).hexdigest()]
                assert e[:6] == want, f"entry {line['logIndex']} {e} is not the publish of {p}"
    print(f"log ok: {size} entries")

def root_from_inclusion(index, size, leaf, proof):
    """RFC 9162, 2.1.3.2: the root an inclusion proof leads to."""
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        assert sn != 0, "proof too long"
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1; sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1; sn >>= 1
    assert sn == 0, "proof too short"
    return r

def check_proof(path, vkey):
    text = open(path).read()
    head, _, note = text.partition("\n\n")
    lines = head.split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1", "header"
    assert lines[1].startswith("extra "), "extra"
    entry = base64.b64decode(lines[1][6:])
    assert lines[2].startswith("index "), "index"
    index = int(lines[2][6:])
    proof = [base64.b64decode(l) for l in lines[3:]]
    body, found = check_note(note, [vkey])
    assert vkey in found, "the log key did not sign the checkpoint"
    origin, size, root = body.split("\n")[:3]
    got = root_from_inclusion(index, int(size), leaf_hash(entry), proof)
    assert base64.b64encode(got).decode() == root, "the inclusion proof does not lead to the checkpoint's root"
    print(f"proof ok: entry {index} of {size}: {entry.decode().strip()}")

if __name__ == "__main__":
    try:
        {"vectors": check_vectors, "root": check_root, "proof": check_proof}[sys.argv[1]](*sys.argv[2:])
    except (AssertionError, InvalidSignature, KeyError, FileNotFoundError) as e:
        print(f"log check failed: {type(e).__name__}: {e}"); sys.exit(1)
