#!/usr/bin/env python3
"""The npm benchmark's packages (tools/bench/npm.sh).

  graph.py make DIR N [PREFIX]
                              N packages PREFIX-NNN (default bench-npm; a
                              binary tree: NNN depends on 2NNN+1 and 2NNN+2),
                              each as npm would publish it: DIR/NNN.json, the
                              body of `PUT /{name}` with its tarball in
                              _attachments
  graph.py publish URL TOKEN DIR
                              PUTs every body to the registry at URL (a
                              cairn door or Verdaccio), in dependency order
  graph.py project DIR        a project depending on bench-npm-000
  graph.py sources DIR N      N package directories pub-NNN for `npm publish`
"""
import base64, hashlib, io, json, os, sys, tarfile, urllib.request


PREFIX = "bench-npm"


def name(i):
    return f"{PREFIX}-{i:03d}"


def tarball(files):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.USTAR_FORMAT) as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(f"package/{path}")
            info.size, info.mode, info.mtime = len(data), 0o644, 499162500
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def body(i, n):
    deps = {name(c): "^1.0.0" for c in (2 * i + 1, 2 * i + 2) if c < n}
    manifest = {"name": name(i), "version": "1.0.0", "description": f"benchmark package {i}",
                "main": "index.js", "license": "MIT", "dependencies": deps}
    files = {"package.json": json.dumps(manifest, indent=2).encode(),
             "index.js": f"module.exports = {i};\n".encode() + b"// padding\n" * 200,
             "README.md": f"# {name(i)}\n".encode()}
    tgz = tarball(files)
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()
    version = dict(manifest, _id=f"{name(i)}@1.0.0",
                   dist={"integrity": integrity, "shasum": hashlib.sha1(tgz).hexdigest(),
                         "tarball": f"http://localhost/{name(i)}/-/{name(i)}-1.0.0.tgz"})
    return {"_id": name(i), "name": name(i), "description": manifest["description"],
            "dist-tags": {"latest": "1.0.0"}, "versions": {"1.0.0": version}, "access": None,
            "_attachments": {f"{name(i)}-1.0.0.tgz": {"content_type": "application/octet-stream",
                                                      "data": base64.b64encode(tgz).decode(),
                                                      "length": len(tgz)}}}


def main():
    cmd = sys.argv[1]
    if cmd == "make":
        global PREFIX
        out, n = sys.argv[2], int(sys.argv[3])
        PREFIX = sys.argv[4] if len(sys.argv) > 4 else PREFIX
        os.makedirs(out, exist_ok=True)
        for i in range(n):
            with open(os.path.join(out, f"{i:03d}.json"), "w") as f:
                json.dump(body(i, n), f)
    elif cmd == "publish":
        url, token, src = sys.argv[2].rstrip("/"), sys.argv[3], sys.argv[4]
        for file in sorted(os.listdir(src), reverse=True):  # leaves first
            data = open(os.path.join(src, file), "rb").read()
            pkg = json.loads(data)["name"]
            req = urllib.request.Request(f"{url}/{pkg}", data=data, method="PUT", headers={
                "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req) as resp:
                assert resp.status in (200, 201), (pkg, resp.status)
    elif cmd == "project":
        out = sys.argv[2]
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "package.json"), "w") as f:
            json.dump({"name": "bench-app", "version": "0.0.0", "private": True,
                       "dependencies": {name(0): "^1.0.0"}}, f)
    elif cmd == "sources":
        out, n = sys.argv[2], int(sys.argv[3])
        for i in range(n):
            d = os.path.join(out, f"pub-{i:03d}")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "package.json"), "w") as f:
                json.dump({"name": f"bench-pub-{i:03d}", "version": "1.0.0", "license": "MIT",
                           "description": f"publish benchmark {i}"}, f)
            with open(os.path.join(d, "index.js"), "w") as f:
                f.write(f"module.exports = {i};\n")
    else:
        sys.exit(__doc__)


main()
