#!/usr/bin/env bash
# Installs what Flatyard needs and is missing: Deno (from the npm package `deno`, into .tools/)
# and Debian packages. Idempotent: a second run installs nothing and says so.
#
# usage: scripts/setup.sh runtime|test
#   runtime  what `serve` needs (ostree, flatpak, flatpak-builder, git)
#   test     runtime + the real services and tools the test suite drives
set -euo pipefail

DENO_VERSION=2.9.6
top=$(cd "$(dirname "$0")/.." && pwd)
profile=${1:-runtime}

say() { printf '[setup] %s\n' "$*" >&2; }

runtime_pkgs=(ostree flatpak flatpak-builder bubblewrap git ca-certificates)
test_pkgs=(postgresql redis-server busybox-static)

packages=("${runtime_pkgs[@]}")
case "$profile" in
runtime) ;;
test) packages+=("${test_pkgs[@]}") ;;
*)
  say "unknown profile '$profile' (expected runtime or test)"
  exit 2
  ;;
esac

# --- Debian packages ---------------------------------------------------------
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo=(sudo); else
      say "need root (or sudo) to install: ${missing[*]}"
      exit 1
    fi
  fi
  say "installing Debian packages: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages present: ${packages[*]}"
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
