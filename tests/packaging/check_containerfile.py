#!/usr/bin/python3
"""check_containerfile.py — static checks of the repository's Containerfile (no container engine).

    check_containerfile.py [--containerfile PATH] [--binary PATH]...

Asserts: several stages, every base image is Debian bookworm and named by reference only; the
builder runs `meson setup … -Dbuildtype=release`; the final stage installs no -dev package and no
tool-chain, copies sandboxd, sandboxd-init, dbmigrate and sql/ from the builder, runs as a
numeric non-root USER, EXPOSEs 8080 and has no HEALTHCHECK; and every shared library that the
given binaries link directly (readelf -d NEEDED, resolved with ldd, owner found with dpkg -S) is
installed by apt-get in the final stage (libc6 comes with the base image).

Exit 0 when every check passes, 1 otherwise (each failure printed). tests/packaging/
test_packaging.py imports the functions.
"""
import argparse
import os
import re
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_BINARIES = ["build/controller/sandboxd", "build/runtime/sandboxd-init",
                    "build/storage/dbmigrate"]
# Packages every Debian base image has (Priority: required) — libraries from them need no apt.
BASE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6", "libzstd1", "liblzma5", "libselinux1",
                 "libpcre2-8-0", "libcrypt1", "libacl1", "libattr1", "zlib1g", "libcap2"}
BUILD_TOOLS = {"build-essential", "gcc", "cc", "clang", "meson", "ninja-build", "pkg-config",
               "make", "g++", "libc6-dev"}
REQUIRED_COPIES = {
    "sandboxd": r"(^|/)controller/sandboxd$",
    "sandboxd-init": r"(^|/)runtime/sandboxd-init$",
    "dbmigrate": r"(^|/)storage/dbmigrate$",
    "sql/": r"(^|/)sql/?$",
}


class Stage:
    def __init__(self, image, name, index):
        self.image, self.name, self.index = image, name, index
        self.instructions = []          # (KEYWORD, rest)

    def get(self, keyword):
        return [rest for kw, rest in self.instructions if kw == keyword]


def parse(text):
    """Logical instructions (continuations joined, comments dropped) grouped into stages."""
    lines, cur = [], ""
    for raw in text.splitlines():
        s = raw.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue                    # comment inside a continued instruction
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        lines.append(cur.strip())
        cur = ""
    if cur.strip():
        lines.append(cur.strip())
    stages, pre = [], []
    for ln in lines:
        kw, _, rest = ln.partition(" ")
        kw = kw.upper()
        rest = rest.strip()
        if kw == "FROM":
            toks = [t for t in rest.split() if not t.startswith("--")]
            name = toks[2] if len(toks) >= 3 and toks[1].upper() == "AS" else None
            stages.append(Stage(toks[0], name, len(stages)))
        elif stages:
            stages[-1].instructions.append((kw, rest))
        else:
            pre.append((kw, rest))
    return pre, stages


def apt_packages(stage):
    """Package names passed to apt-get install in the stage's RUN instructions."""
    pkgs = []
    for run in stage.get("RUN"):
        for part in re.split(r"&&|;|\|\|", run):
            toks = shlex.split(part)
            # DEBIAN_FRONTEND=… apt-get install -y --no-install-recommends a b c
            toks = [t for t in toks if not re.match(r"^[A-Z_]+=", t)]
            for i, t in enumerate(toks):
                if t in ("apt-get", "apt") and "install" in toks[i + 1:i + 2]:
                    pkgs += [p for p in toks[i + 2:] if not p.startswith("-")]
    return pkgs


def copies_from(stage):
    """(from_stage, [sources], dest) for each COPY --from=… of the stage."""
    out = []
    for rest in stage.get("COPY"):
        toks = shlex.split(rest)
        frm = next((t.split("=", 1)[1] for t in toks if t.startswith("--from=")), None)
        args = [t for t in toks if not t.startswith("--")]
        if frm and len(args) >= 2:
            out.append((frm, args[:-1], args[-1]))
    return out


def needed_libs(binary):
    """{soname: resolved path} of the DT_NEEDED entries (readelf -d, resolved through ldd)."""
    dyn = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True)
    sonames = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn.stdout)
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = dict(re.findall(r"^\s*(\S+) => (/\S+)", ldd, re.M))
    # The dynamic loader is listed by ldd as a bare path ("/lib64/ld-linux-x86-64.so.2 (...)").
    for loader in re.findall(r"^\s*(/\S*ld-linux\S*) \(", ldd, re.M):
        paths.setdefault(os.path.basename(loader), loader)
    return {s: paths.get(s) for s in sonames}


def owning_package(path):
    cands = [path, os.path.realpath(path)]
    for p in list(cands):
        if p.startswith("/usr/"):
            cands.append(p[4:])
        else:
            cands.append("/usr" + p)
    for c in cands:
        r = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":", 1)[0].strip()
    return None


def check(containerfile, binaries):
    """List of failure messages (empty = all good)."""
    errs = []
    with open(containerfile, encoding="utf-8") as f:
        text = f.read()
    _, stages = parse(text)
    if len(stages) < 2:
        return [f"not multi-stage: {len(stages)} FROM"]
    names = {s.name: s for s in stages if s.name}
    final = stages[-1]
    for s in stages:
        if s.image in names:
            continue                                # FROM an earlier stage
        if not re.match(r"^(docker\.io/)?(library/)?debian:bookworm(-slim)?(@sha256:[0-9a-f]{64})?$",
                        s.image):
            errs.append(f"stage {s.name or s.index}: base image {s.image!r} is not Debian bookworm")
    # builder: meson release build
    builders = [s for s in stages if any("meson setup" in r for r in s.get("RUN"))]
    if not builders:
        errs.append("no stage runs `meson setup`")
    for b in builders:
        if not any(re.search(r"meson setup\b.*-Dbuildtype=release", r) for r in b.get("RUN")):
            errs.append(f"stage {b.name}: meson setup without -Dbuildtype=release")
        if b is final:
            errs.append("the final stage is the build stage")
    # final stage: packages
    pkgs = apt_packages(final)
    for p in pkgs:
        if p.endswith("-dev") or p in BUILD_TOOLS:
            errs.append(f"final stage installs build package {p}")
    # final stage: non-root USER (the last USER wins)
    users = final.get("USER")
    if not users:
        errs.append("final stage has no USER (would run as root)")
    else:
        u = users[-1].split(":")[0]
        if not u.isdigit():
            errs.append(f"final USER {users[-1]!r} is not numeric (runAsNonRoot needs a uid)")
        elif int(u) == 0:
            errs.append("final USER is root")
        else:
            g = users[-1].split(":")[1] if ":" in users[-1] else None
            if g is not None and (not g.isdigit() or int(g) == 0):
                errs.append(f"final USER group {g!r} is root or not numeric")
    # copies
    copied = [src for frm, srcs, _ in copies_from(final) for src in srcs]
    for what, pat in REQUIRED_COPIES.items():
        if not any(re.search(pat, c) for c in copied):
            errs.append(f"final stage does not COPY {what} from the builder")
    if "8080" not in " ".join(final.get("EXPOSE")).replace("/tcp", "").split():
        errs.append("final stage does not EXPOSE 8080")
    for s in stages:
        if s.get("HEALTHCHECK"):
            errs.append(f"stage {s.name or s.index} has a HEALTHCHECK (Kubernetes probes instead)")
    if not (final.get("ENTRYPOINT") or final.get("CMD")):
        errs.append("final stage has neither ENTRYPOINT nor CMD")
    # run-time libraries of the binaries
    for b in binaries:
        if not os.path.exists(b):
            errs.append(f"binary {b} not built (build it first: meson setup build && ninja -C build)")
            continue
        for soname, path in needed_libs(b).items():
            if not path:
                errs.append(f"{b}: {soname} not resolved by ldd")
                continue
            pkg = owning_package(path)
            if pkg is None:
                errs.append(f"{b}: {soname} ({path}) belongs to no Debian package")
            elif pkg not in pkgs and pkg not in BASE_PACKAGES:
                errs.append(f"{b} links {soname} from package {pkg}, "
                            f"which the final stage does not install")
    return errs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--containerfile", default=os.path.join(ROOT, "Containerfile"))
    ap.add_argument("--binary", action="append",
                    help="binary whose NEEDED libraries must be installed (default: build/…)")
    a = ap.parse_args()
    bins = a.binary or [os.path.join(ROOT, b) for b in DEFAULT_BINARIES]
    errs = check(a.containerfile, bins)
    for e in errs:
        print("FAIL:", e)
    if not errs:
        print(f"ok: {a.containerfile} ({', '.join(os.path.basename(b) for b in bins)})")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
