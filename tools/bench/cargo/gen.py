#!/usr/bin/env python3
"""Synthetic crates for the `cargo generate-lockfile` benchmark.

Builds a layered DAG of tiny crates (LAYERS layers of WIDTH crates), each
crate in layer L depending on FANOUT crates of layer L+1, publishes every
version into a cairn registry through cargo's own publish endpoint
(`PUT /api/v1/crates/new`, the binary frame cargo sends), and writes a
consumer project that depends on every crate of layer 0 (so every crate is
a transitive dependency). Standard library only; talks to the URL given.

    gen.py --url http://127.0.0.1:PORT --token cairn_... --project DIR \
           [--layers 10] [--width 30] [--fanout 3] [--versions 3] [--jobs 4]
"""

import argparse
import concurrent.futures
import gzip
import io
import json
import os
import random
import struct
import sys
import tarfile
import urllib.error
import urllib.request


def name(layer, i):
    # Fixed width, so no two names are confusable (SPEC section 2).
    return f"dag-{layer:02d}-{i:03d}"


def deps_of(layer, i, args):
    if layer + 1 >= args.layers:
        return []
    w = args.width
    picks = []
    # i, i+1, i+7, ...: every crate of the next layer is picked by someone.
    for off in [0, 1, 7, 13, 19, 23, 29, 31][: args.fanout]:
        j = (i + off) % w
        if j not in picks:
            picks.append(j)
    return [name(layer + 1, j) for j in picks]


def crate_bytes(crate, version, deps):
    prefix = f"{crate}-{version}"
    toml = [
        "[package]",
        f'name = "{crate}"',
        f'version = "{version}"',
        'edition = "2021"',
        f'description = "Synthetic benchmark crate {crate}"',
        'license = "MIT"',
        "",
        "[dependencies]",
    ]
    toml += [f'{d} = "^1"' for d in deps]
    files = {
        "Cargo.toml": ("\n".join(toml) + "\n").encode(),
        "src/lib.rs": b"",
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(f"{prefix}/{path}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def frame(crate, version, deps, body):
    meta = {
        "name": crate, "vers": version, "features": {}, "authors": [],
        "description": f"Synthetic benchmark crate {crate}", "license": "MIT",
        "keywords": [], "categories": [], "badges": {}, "links": None,
        "deps": [
            {"name": d, "version_req": "^1", "features": [], "optional": False,
             "default_features": True, "target": None, "kind": "normal"}
            for d in deps
        ],
    }
    js = json.dumps(meta).encode()
    return struct.pack("<I", len(js)) + js + struct.pack("<I", len(body)) + body


def publish(args, crate, version, deps):
    data = frame(crate, version, deps, crate_bytes(crate, version, deps))
    req = urllib.request.Request(
        f"{args.url}/api/v1/crates/new", data=data, method="PUT",
        headers={"Authorization": args.token, "Content-Type": "application/octet-stream"},
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            resp.read()
    except urllib.error.HTTPError as e:
        raise SystemExit(f"publishing {crate} {version}: {e.code} {e.read().decode(errors='replace')}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--project", required=True)
    p.add_argument("--layers", type=int, default=10)
    p.add_argument("--width", type=int, default=30)
    p.add_argument("--fanout", type=int, default=3)
    p.add_argument("--versions", type=int, default=3)
    p.add_argument(
        "--versions-mean",
        type=float,
        default=0,
        help="crates.io-like version counts instead of --versions: 1 + an exponential draw "
        "with this mean minus one (bench-prefill's distribution), seeded",
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--jobs", type=int, default=4)
    args = p.parse_args()

    rng = random.Random(args.seed)
    counts = {}
    for layer in range(args.layers):
        for i in range(args.width):
            if args.versions_mean > 0:
                counts[(layer, i)] = 1 + int(rng.expovariate(1 / max(args.versions_mean - 1, 1e-9)))
            else:
                counts[(layer, i)] = args.versions
    work = []
    for (layer, i), count in counts.items():
        for v in range(count):
            work.append((name(layer, i), f"1.{v}.0", deps_of(layer, i, args)))
    # Versions in order (a package's lines are oldest first); crates of one
    # version in parallel.
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for v in range(max(counts.values())):
            batch = [w for w in work if w[1] == f"1.{v}.0"]
            list(pool.map(lambda w: publish(args, *w), batch))

    os.makedirs(f"{args.project}/src", exist_ok=True)
    with open(f"{args.project}/Cargo.toml", "w") as f:
        f.write('[package]\nname = "dag-consumer"\nversion = "0.1.0"\nedition = "2021"\npublish = false\n\n[dependencies]\n')
        for i in range(args.width):
            f.write(f'{name(0, i)} = "1"\n')
    with open(f"{args.project}/src/main.rs", "w") as f:
        f.write("fn main() {}\n")
    print(f"published {len(work)} versions of {args.layers * args.width} crates", file=sys.stderr)


if __name__ == "__main__":
    main()
