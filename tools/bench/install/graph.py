#!/usr/bin/env python3
"""Synthetic dependency graph for the install benchmark.

  graph.py spec    --packages N --versions V --seed S            > graph.json
  graph.py publish --url URL --token T --spec graph.json [--jobs J]

Package i (`bench-pkg-NNN`) depends on 0-4 packages with a higher index,
always including one edge from a random lower-indexed parent, so the whole
graph is reachable from `bench-pkg-000`. Every package has V versions
(1.0.0, 1.1.0, ...) and every requirement is `^1.0`, so the resolver has
choices to make. The spec is plain JSON so a cargo-side script can publish
the same graph as crates.
"""
import argparse, gzip, io, json, random, sys, tarfile, urllib.request
from concurrent.futures import ThreadPoolExecutor


def spec(n, versions, seed):
    rng = random.Random(seed)
    deps = {i: set() for i in range(n)}
    for j in range(1, n):
        deps[rng.randrange(0, j)].add(j)
    for i in range(n):
        for _ in range(rng.randrange(0, 4)):
            if i + 1 < n:
                deps[i].add(rng.randrange(i + 1, n))
    name = lambda i: f"bench-pkg-{i:03d}"
    pkgs = []
    for i in range(n):
        for v in range(versions):
            pkgs.append({"name": name(i), "version": f"1.{v}.0",
                         "deps": {name(d): "^1.0" for d in sorted(deps[i])}})
    return {"root": name(0), "packages": pkgs}


def tarball(p):
    prefix = f"{p['name']}-{p['version']}"
    manifest = f'[package]\nname = "{p["name"]}"\nversion = "{p["version"]}"\nkind = "library"\n'
    manifest += 'description = "benchmark package"\nlicense = "MIT"\n\n[dependencies]\n'
    manifest += "".join(f'{d} = "{r}"\n' for d, r in p["deps"].items())
    files = {"cairn.toml": manifest.encode(),
             "README.md": f"# {p['name']}\n\n{'lorem ipsum ' * 40}\n".encode(),
             "src/main.md": ("x" * 2000).encode()}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(f"{prefix}/{path}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1153704088
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def publish(url, token, spec_, jobs):
    def put(p):
        req = urllib.request.Request(f"{url}/api/v1/packages/{p['name']}/{p['version']}",
                                     data=tarball(p), method="PUT",
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/gzip"})
        with urllib.request.urlopen(req, timeout=120) as r:
            assert r.status == 201, r.status
    # Versions in order per package: publish version k of every package, then k+1.
    by_version = {}
    for p in spec_["packages"]:
        by_version.setdefault(p["version"], []).append(p)
    with ThreadPoolExecutor(jobs) as ex:
        for _, ps in sorted(by_version.items()):
            list(ex.map(put, ps))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("spec")
    s.add_argument("--packages", type=int, default=300)
    s.add_argument("--versions", type=int, default=2)
    s.add_argument("--seed", type=int, default=42)
    p = sub.add_parser("publish")
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--spec", required=True)
    p.add_argument("--jobs", type=int, default=8)
    a = ap.parse_args()
    if a.cmd == "spec":
        json.dump(spec(a.packages, a.versions, a.seed), sys.stdout, indent=1)
    else:
        publish(a.url, a.token, json.load(open(a.spec)), a.jobs)


if __name__ == "__main__":
    main()
