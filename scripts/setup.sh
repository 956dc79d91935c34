#!/usr/bin/env bash
# Installs what Flatyard needs and is missing: Deno (from the npm package `deno`, into .tools/)
# and Debian packages. Idempotent: a second run installs nothing and says so.
#
# usage: scripts/setup.sh runtime|test|bench
#   runtime  what `serve` needs (ostree, flatpak, flatpak-builder, git)
#   bench    runtime + nginx and wrk, the reference server and load generator of bench/serve.ts
#   test     runtime + the real services and tools the test suite drives, and qemu-user for the
#            foreign architecture (aarch64 on x86_64 hosts, x86_64 on aarch64 ones) so flatpak
#            fixtures for both arches build and run (tests/support/flatpak_fixtures.ts)
set -euo pipefail

DENO_VERSION=2.9.6
top=$(cd "$(dirname "$0")/.." && pwd)
profile=${1:-runtime}

say() { printf '[setup] %s\n' "$*" >&2; }

runtime_pkgs=(ostree flatpak flatpak-builder bubblewrap git ca-certificates)
# busybox-static is the host arch's fixture runtime; the foreign arch's busybox-static is not
# installed (it would conflict): tests/support/fixture_arch.ts downloads and caches it on demand.
test_pkgs=(postgresql redis-server busybox-static qemu-user-static binfmt-support gnupg)
# bench/serve.ts runs its own nginx on a loopback port from a generated config.
bench_pkgs=(nginx-light wrk)

# The architecture fixtures are cross-built for, in dpkg's and in qemu's names.
case "$(uname -m)" in
x86_64) foreign_deb=arm64 foreign_qemu=aarch64 ;;
aarch64) foreign_deb=amd64 foreign_qemu=x86_64 ;;
*) foreign_deb='' foreign_qemu='' ;;
esac

# Runs a command as root, through sudo when needed.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    say "need root (or sudo) to run: $*"
    exit 1
  fi
}

packages=("${runtime_pkgs[@]}")
case "$profile" in
runtime) ;;
test) packages+=("${test_pkgs[@]}") ;;
bench) packages+=("${bench_pkgs[@]}") ;;
*)
  say "unknown profile '$profile' (expected runtime, test or bench)"
  exit 2
  ;;
esac

# --- foreign architecture (test) ------------------------------------------------
# dpkg must know it for `apt-get download busybox-static:<arch>`; the package lists are then
# refreshed once, here or with the install below.
apt_updated=false
if [ "$profile" = test ] && [ -n "$foreign_deb" ]; then
  if dpkg --print-foreign-architectures | grep -qx "$foreign_deb"; then
    say "dpkg architecture $foreign_deb present"
  else
    say "adding dpkg architecture $foreign_deb (fixtures download busybox-static:$foreign_deb)"
    as_root dpkg --add-architecture "$foreign_deb"
    as_root apt-get update -qq
    apt_updated=true
  fi
fi

# --- Debian packages ---------------------------------------------------------
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  $apt_updated || as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages present: ${packages[*]}"
fi

# --- qemu-user in binfmt_misc (test) -------------------------------------------
# Lets the kernel run the foreign arch's binaries, also inside flatpak's sandbox (Debian's entries
# carry the F flag: the interpreter is opened at registration). Containers often start without
# binfmt_misc mounted, and the package's own registration only happens where it is mounted.
# Warns rather than fails, so unrelated tests still run here; .ci/run insists on it.
ensure_binfmt() {
  local fs=/proc/sys/fs/binfmt_misc entry=/proc/sys/fs/binfmt_misc/qemu-$foreign_qemu
  if ! mountpoint -q "$fs"; then
    say "mounting binfmt_misc on $fs"
    as_root mount -t binfmt_misc binfmt_misc "$fs" || {
      say "WARNING: cannot mount binfmt_misc: $foreign_qemu fixtures will not run"
      return 0
    }
  fi
  if [ -e "$entry" ] && [ "$(head -n 1 "$entry")" = enabled ]; then
    say "qemu-$foreign_qemu registered in binfmt_misc"
    return 0
  fi
  if [ -e "$entry" ]; then
    say "enabling qemu-$foreign_qemu in binfmt_misc"
    echo 1 | as_root tee "$entry" >/dev/null || true
  else
    say "registering qemu-$foreign_qemu in binfmt_misc"
    as_root update-binfmts --enable "qemu-$foreign_qemu" ||
      as_root update-binfmts --import "qemu-$foreign_qemu" || true
  fi
  if ! { [ -e "$entry" ] && [ "$(head -n 1 "$entry")" = enabled ]; }; then
    say "WARNING: qemu-$foreign_qemu is not registered in binfmt_misc: $foreign_qemu fixtures will not run"
  fi
}
if [ "$profile" = test ] && [ -n "$foreign_qemu" ]; then
  ensure_binfmt
fi

# --- Deno ----------------------------------------------------------------------
# A deno 2.x already on PATH is used as is; otherwise the npm package is installed into
# .tools/ and its native binary linked as .tools/bin/deno (no node wrapper per call).
mkdir -p "$top/.tools/bin"
if [ -x "$top/.tools/bin/deno" ]; then
  say "Deno present: $("$top/.tools/bin/deno" --version | head -n 1)"
elif command -v deno >/dev/null && deno --version | head -n 1 | grep -q '^deno 2\.'; then
  ln -sf "$(command -v deno)" "$top/.tools/bin/deno"
  say "Deno present on PATH: $(deno --version | head -n 1)"
else
  say "installing Deno $DENO_VERSION from the npm package 'deno'"
  npm install --silent --no-audit --no-fund --prefix "$top/.tools" "deno@$DENO_VERSION" >/dev/null
  bin=$(find "$top/.tools/node_modules/@deno" -maxdepth 2 -type f -name deno | head -n 1)
  if [ -z "$bin" ]; then
    say "the npm package 'deno' brought no binary for $(uname -m)"
    exit 1
  fi
  ln -sf "$bin" "$top/.tools/bin/deno"
  say "Deno installed: $("$top/.tools/bin/deno" --version | head -n 1)"
fi

# --- npm dependencies, cached by Deno (pinned by deno.lock) ----------------------
say "caching dependencies (deno install)"
frozen=()
[ "${CI:-}" = "true" ] && frozen=(--frozen)
(cd "$top" && "$top/.tools/bin/deno" install "${frozen[@]}" -q)
