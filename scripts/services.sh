#!/usr/bin/env bash
# Starts throwaway PostgreSQL and Redis servers on free loopback ports in a temporary directory.
#   scripts/services.sh start DIR   starts both, writes DIR/env (shell exports), prints its path
#   scripts/services.sh stop DIR    stops both and removes DIR
# Used by scripts/test.sh and .ci/run; nothing here touches a system-wide cluster.
set -euo pipefail

say() { printf '[services] %s\n' "$*" >&2; }
free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] || { say "PostgreSQL server binaries not found (install postgresql)"; exit 1; }
  echo "$d"
}
# initdb and postgres refuse to run as root: run them as the postgres user then.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

action=${1:?usage: services.sh start|stop DIR}
dir=${2:?usage: services.sh start|stop DIR}

case "$action" in
start)
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir" && chmod 755 "$dir"
  bin=$(pg_bin)
  pg_port=$(free_port)
  say "starting PostgreSQL ($bin) on 127.0.0.1:$pg_port in $dir/pg"
  as_pg "$bin/initdb" -D "$dir/pg" -U flatyard --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  as_pg "$bin/pg_ctl" -D "$dir/pg" -l "$dir/pg.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $pg_port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null || { cat "$dir/pg.log" >&2; exit 1; }

  redis_port=$(free_port)
  say "starting Redis on 127.0.0.1:$redis_port"
  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir" </dev/null >/dev/null 2>&1
  for _ in $(seq 1 50); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  cat >"$dir/env" <<ENV
export FLATYARD_TEST_POSTGRES_URL=postgres://flatyard@127.0.0.1:$pg_port/postgres
export FLATYARD_TEST_REDIS_URL=redis://127.0.0.1:$redis_port
ENV
  echo "$dir/env"
  ;;
stop)
  if [ -f "$dir/redis.pid" ]; then kill "$(cat "$dir/redis.pid")" 2>/dev/null || true; fi
  if [ -d "$dir/pg" ]; then as_pg "$(pg_bin)/pg_ctl" -D "$dir/pg" -m immediate stop >/dev/null 2>&1 || true; fi
  rm -rf "$dir"
  say "stopped and removed $dir"
  ;;
*)
  say "unknown action '$action'"
  exit 2
  ;;
esac
