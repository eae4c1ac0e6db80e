#!/usr/bin/env python3
"""Synthetic dependency graph for the install benchmark.

  graph.py spec    --packages N --versions V --seed S            > graph.json
  graph.py publish --url URL --token T --spec graph.json [--jobs J]
  graph.py publish-crates --url URL --token T --spec graph.json --project DIR [--jobs J]

Package i (`bench-pkg-NNN`) depends on 0-4 packages with a higher index,
always including one edge from a random lower-indexed parent, so the whole
graph is reachable from `bench-pkg-000`. Every package has V versions
(1.0.0, 1.1.0, ...) and every requirement is `^1.0`, so the resolver has
choices to make. The spec is plain JSON.

`publish` puts the graph as cairn packages (`PUT /api/v1/packages/...`).
`publish-crates` puts the same graph (same edges, same versions) as crates
named `bench-crate-NNN` through cargo's publish endpoint
(`PUT /api/v1/crates/new`, cargo's binary frame), reusing `crate_bytes`,
`frame` and `publish` of tools/bench/cargo/gen.py; those write every
requirement as `^1`, which is the same range as the spec's `^1.0`
(>=1.0.0, <2.0.0). It then writes a consumer project in DIR whose only
dependency is `bench-crate-000 = "1"`, so `cargo generate-lockfile` there
reaches every crate.
"""
import argparse, gzip, io, json, os, random, sys, tarfile, types, urllib.request
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cargo"))
import gen as cargo_gen  # noqa: E402  (tools/bench/cargo/gen.py)

PKG_PREFIX, CRATE_PREFIX = "bench-pkg-", "bench-crate-"


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
        for _, ps in sorted(by_version.items(), key=lambda kv: version_key(kv[0])):
            list(ex.map(put, ps))


def version_key(v):
    return [int(x) for x in v.split(".")]


def crate_name(pkg):
    assert pkg.startswith(PKG_PREFIX), pkg
    return CRATE_PREFIX + pkg[len(PKG_PREFIX):]


def publish_crates(url, token, spec_, project, jobs):
    # gen.py writes every requirement as "^1": only equal to the spec when the
    # spec's requirement is "^1.0" (or "^1"), so refuse anything else.
    for p in spec_["packages"]:
        for d, r in p["deps"].items():
            if r not in ("^1.0", "^1"):
                sys.exit(f"{p['name']} {p['version']}: requirement {d} {r!r} is not ^1.0")
    conn = types.SimpleNamespace(url=url, token=token)  # what gen.publish reads

    def put(p):
        cargo_gen.publish(conn, crate_name(p["name"]), p["version"],
                          [crate_name(d) for d in p["deps"]])
    # As `publish`: version k of every crate, then k+1 (index lines oldest first).
    by_version = {}
    for p in spec_["packages"]:
        by_version.setdefault(p["version"], []).append(p)
    with ThreadPoolExecutor(jobs) as ex:
        for _, ps in sorted(by_version.items(), key=lambda kv: version_key(kv[0])):
            list(ex.map(put, ps))

    os.makedirs(os.path.join(project, "src"), exist_ok=True)
    with open(os.path.join(project, "Cargo.toml"), "w") as f:
        f.write('[package]\nname = "bench-consumer"\nversion = "0.1.0"\nedition = "2021"\n'
                'publish = false\n\n[dependencies]\n'
                f'{crate_name(spec_["root"])} = "1"\n\n[workspace]\n')
    with open(os.path.join(project, "src", "main.rs"), "w") as f:
        f.write("fn main() {}\n")
    crates = len({p["name"] for p in spec_["packages"]})
    print(f"published {len(spec_['packages'])} versions of {crates} crates", file=sys.stderr)


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
    c = sub.add_parser("publish-crates")
    c.add_argument("--url", required=True)
    c.add_argument("--token", required=True)
    c.add_argument("--spec", required=True)
    c.add_argument("--project", required=True)
    c.add_argument("--jobs", type=int, default=8)
    a = ap.parse_args()
    if a.cmd == "spec":
        json.dump(spec(a.packages, a.versions, a.seed), sys.stdout, indent=1)
    elif a.cmd == "publish":
        publish(a.url, a.token, json.load(open(a.spec)), a.jobs)
    else:
        publish_crates(a.url, a.token, json.load(open(a.spec)), a.project, a.jobs)


if __name__ == "__main__":
    main()
