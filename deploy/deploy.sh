#!/usr/bin/env bash
# Remote commands are built on this side on purpose (SC2029); ENV_DIR is exported
# only to the environment-install subshell (SC2030/SC2031).
# shellcheck disable=SC2029,SC2030,SC2031
#
# Deploy the IMPS box over SSH, and look after it.
#
#   deploy.sh deploy HOST [MODEL]   new release, env if needed, switch, restart, roll back on failure
#   deploy.sh fetch-logs HOST [DIR] pull the interaction logs into DIR (default logs/<host>)
#   deploy.sh status HOST           service state and recent journal lines
#   deploy.sh security              systemd-analyze verify + security exposure of the units
#   deploy.sh render-units OUTDIR   the unit templates with this box's paths
#   deploy.sh activate RELEASE [M]  (runs on the box, called by `deploy`)
#
# Settings (environment; the defaults are the box's layout, see docs/appliance.md):
#   IMPS_PREFIX=/opt/imps        releases/, envs/, current -> releases/<id>
#   IMPS_STATE=/var/lib/imps     logs/ and models/
#   IMPS_USER=imps               the service user
#   IMPS_CONFIG=/etc/imps/box.toml
#   IMPS_UNIT_DIR=/etc/systemd/system
#   IMPS_SSH_OPTS=               extra ssh options, e.g. "-p 2222 -i key"
#   IMPS_READY_TIMEOUT=60        seconds to wait for the service to come up
#   IMPS_SETTLE=3                seconds it must then stay up
#   IMPS_KEEP=5                  releases kept
#   IMPS_CONVERT=1               0: deploy an IMPSY MODEL as it is, not converted first
#   IMPS_WORK_PYTHON=.venv/work/bin/python   the workstation's Python that converts it
#   IMPS_WHEELS=                 (on the box) install the environment offline from this folder
#   IMPS_ENV_INSTALL=            test seam: shell command that creates the environment
#                                in "$ENV_DIR" (run in the release dir) instead of the
#                                real venv + pip install
set -euo pipefail

PREFIX=${IMPS_PREFIX:-/opt/imps}
STATE=${IMPS_STATE:-/var/lib/imps}
SERVICE_USER=${IMPS_USER:-imps}
CONFIG=${IMPS_CONFIG:-/etc/imps/box.toml}
UNIT_DIR=${IMPS_UNIT_DIR:-/etc/systemd/system}
READY_TIMEOUT=${IMPS_READY_TIMEOUT:-60}
SETTLE=${IMPS_SETTLE:-3}
KEEP=${IMPS_KEEP:-5}
SOURCE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UNITS=(imps-sound.service imps.service imps-web.service)

die() { echo "deploy: $*" >&2; exit 1; }
say() { echo "== $*"; }

# --- on the workstation ------------------------------------------------------

ssh_opts() { read -ra SSH_OPTS <<<"${IMPS_SSH_OPTS:-}"; SSH_OPTS+=(-o BatchMode=yes -o ConnectTimeout=5); }

need_host() {
  HOST=${1:-}
  [ -n "$HOST" ] || die "no HOST given: make $2 HOST=user@host (the box's ssh login)"
  ssh_opts
  local err
  if ! err=$(ssh "${SSH_OPTS[@]}" "$HOST" true 2>&1 </dev/null); then
    die "cannot reach $HOST over ssh: ${err:-no answer}
  (is the box on and on the network? does 'ssh $HOST' work without a password?)"
  fi
}

remote() { ssh "${SSH_OPTS[@]}" "$HOST" "$@" </dev/null; }

# The settings the box-side half needs, as a shell prefix.
remote_env() {
  local v
  for v in IMPS_PREFIX IMPS_STATE IMPS_USER IMPS_CONFIG IMPS_UNIT_DIR IMPS_READY_TIMEOUT \
           IMPS_SETTLE IMPS_KEEP IMPS_ENV_INSTALL; do
    [ -n "${!v+x}" ] && printf '%s=%q ' "$v" "${!v}"
  done
  return 0
}

# An IMPSY model (a .keras, or a .tflite without the box's sidecar) becomes the box's own
# faster format first (`imps-train convert-impsy`, docs/impsy.md); prints the file to send.
# A .tflite it cannot convert is sent as it is (the box plays IMPSY's files unconverted).
convert_model() {
  local model=$1 python=${IMPS_WORK_PYTHON:-$SOURCE/.venv/work/bin/python} out err
  case $model in
    *.keras|*.h5) ;;
    *.tflite) if [ -f "${model%.*}.json" ] || [ "${IMPS_CONVERT:-1}" = 0 ]; then echo "$model"; return; fi ;;
    *) echo "$model"; return ;;
  esac
  if [ ! -x "$python" ]; then
    case $model in *.tflite) ;; *) die "MODEL=$model: converting it needs the workstation environment ($python): make setup" ;; esac
    echo "deploy: WARNING: no workstation environment ($python) to convert $model: it goes as it is (make setup, then deploy again, for the faster converted model)" >&2
    echo "$model"; return
  fi
  out=$SOURCE/build/models/$(basename "${model%.*}").tflite
  say "model $model has no sidecar: converting it to the box's own format (imps-train convert-impsy)" >&2
  # Its report goes to the terminal (stderr: stdout is the file name), its errors to $err.
  if { err=$("$python" -c 'import sys; from imps_train.cli import main; sys.argv[0] = "imps-train"; sys.exit(main())' \
             convert-impsy "$model" -o "$out" 2>&1 1>&3); } 3>&2; then
    say "converted: $out (and its sidecar), verified against $model" >&2
    echo "$out"
    return
  fi
  case $model in
    *.tflite) echo "deploy: $(tail -n 1 <<<"$err"); it goes as it is, unconverted" >&2
              echo "$model" ;;
    *) die "$(tail -n 1 <<<"$err")" ;;
  esac
}

cmd_deploy() {
  need_host "${1:-}" deploy
  local model=${2:-}
  [ -z "$model" ] || [ -f "$model" ] || die "MODEL=$model: no such file"
  [ -z "$model" ] || model=$(convert_model "$model")
  local rev id
  rev=$(git -C "$SOURCE" rev-parse --short HEAD 2>/dev/null || echo nogit)
  [ -z "$(git -C "$SOURCE" status --porcelain -- device deploy 2>/dev/null)" ] || rev+=-dirty
  id=$(date -u +%Y%m%dT%H%M%SZ)-$rev

  # A fresh, unique release directory; the current one seeds rsync's hard links.
  local paths release previous
  paths=$(remote "set -e; mkdir -p $(printf %q "$PREFIX")/releases; cd $(printf %q "$PREFIX")/releases
    d=$id; n=1; while ! mkdir \"\$d\" 2>/dev/null; do n=\$((n+1)); d=$id.\$n; done
    echo \"\$PWD/\$d\"; readlink -e ../current || true")
  release=$(sed -n 1p <<<"$paths"); previous=$(sed -n 2p <<<"$paths")
  say "release $release on $HOST"
  rsync -a --delete ${previous:+--link-dest="$previous"} -e "ssh ${SSH_OPTS[*]}" \
    --exclude __pycache__ --exclude '*.egg-info' --exclude '*.pyc' \
    "$SOURCE/device" "$SOURCE/deploy" "$SOURCE/docs" "$HOST:$release/"
  if [ -n "$model" ]; then
    local files=("$model") stem
    stem=$(basename "${model%.*}")
    if [ -f "${model%.*}.json" ]; then files+=("${model%.*}.json")
    else   # a sidecar left by an earlier model of this name (say, its converted twin) would not match
      remote "rm -f $(printf %q "$STATE/models/$stem.json")"
    fi
    say "model ${files[*]} -> $STATE/models/"
    rsync -t --chmod=F0644 -e "ssh ${SSH_OPTS[*]}" "${files[@]}" "$HOST:$STATE/models/"
  fi
  local wheels='' local_wheels='' rc=0
  if [ -z "${IMPS_ENV_INSTALL:-}" ] && local_wheels=$(fetch_wheels); then
    wheels=$PREFIX/wheels
    rsync -rt --delete -e "ssh ${SSH_OPTS[*]}" "$local_wheels/" "$HOST:$wheels/"
  fi
  remote "$(remote_env)${wheels:+IMPS_WHEELS=$(printf %q "$wheels") }bash $(printf %q "$release/deploy/deploy.sh") \
    activate $(printf %q "$release") $(printf %q "$(basename "${model:-}")")" || rc=$?
  # Wheels the box compiled from source come back, so no box of its kind compiles them again.
  if [ -n "$wheels" ]; then
    rsync -rt --ignore-existing --include='*.whl' --exclude='*' -e "ssh ${SSH_OPTS[*]}" \
      "$HOST:$wheels/" "$local_wheels/" || echo "deploy: warning: could not bring the box's built wheels back" >&2
  fi
  return $rc
}

# The box has no internet: fetch the wheels for its Python, CPU and glibc here
# (deploy/wheelhouse.py, cached in build/wheels/). Prints that folder, or fails
# (with a warning) when some package could not be fetched for the box: the box
# then uses the package index.
fetch_wheels() {
  local facts py machine glibc dir
  facts=$(remote "python3 -c 'import platform, sys; print(\"%d.%d\" % sys.version_info[:2], platform.machine(), platform.libc_ver()[1])'") ||
    die "cannot ask $HOST for its Python version (is python3 installed? make provision HOST=$HOST)"
  read -r py machine glibc <<<"$facts"
  dir=$SOURCE/build/wheels/cp${py/./}-$machine-glibc$glibc
  local python=${IMPS_DEVICE_PYTHON:-python3}
  [ -x "$python" ] || python=python3
  if ! "$python" "$SOURCE/deploy/wheelhouse.py" --python "$py" --machine "$machine" \
    --glibc "$glibc" "$dir" >&2; then
    echo "deploy: WARNING: not every package the box needs could be fetched here for Python $py on $machine;" \
      "the box installs its environment from the package index itself (it needs internet for that)" >&2
    return 1
  fi
  echo "$dir"
}

cmd_fetch_logs() {
  need_host "${1:-}" fetch-logs
  local dest=${2:-logs/${HOST#*@}}
  mkdir -p "$dest"
  rsync -a -e "ssh ${SSH_OPTS[*]}" "$HOST:$STATE/logs/" "$dest/"
  say "$(find "$dest" -type f | wc -l) log files in $dest"
}

cmd_status() {
  need_host "${1:-}" status
  remote "s=; [ \"\$(id -u)\" = 0 ] || s='sudo -n'
    \$s systemctl status --no-pager ${UNITS[*]} || true
    echo; \$s journalctl -u imps.service -n 30 --no-pager || true
    echo; echo release: \$(readlink $(printf %q "$PREFIX")/current)"
}

cmd_render_units() {
  local out=${1:?render-units OUTDIR} unit
  mkdir -p "$out"
  for unit in "${UNITS[@]}"; do
    sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@USER@|$SERVICE_USER|g" \
        -e "s|@CONFIG@|$CONFIG|g" -e "s|@STATE@|$STATE|g" \
        "$SOURCE/deploy/systemd/$unit" >"$out/$unit"
  done
}

# Render the units against a throwaway layout (so ExecStart exists), verify them
# and print their exposure.
cmd_security() {
  local tmp unit
  tmp=$(mktemp -d)
  mkdir -p "$tmp/current/bin" "$tmp/current/deploy/sound" "$tmp/state/logs" "$tmp/state/models"
  printf '#!/bin/sh\n' >"$tmp/current/bin/imps"; chmod +x "$tmp/current/bin/imps"
  touch "$tmp/current/deploy/sound/imps.pd"
  PREFIX=$tmp STATE=$tmp/state cmd_render_units "$tmp/units"
  for unit in "${UNITS[@]}"; do
    systemd-analyze verify "$tmp/units/$unit"
    printf '%-20s exposure %s\n' "$unit" "$(systemd-analyze security --offline=true --no-pager \
      "$tmp/units/$unit" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: //p')"
  done
  rm -rf "$tmp"
}

# --- on the box ----------------------------------------------------------------

# The device environment for this release: one per hash of its requirements,
# shared by every release with the same requirements.
install_env() {
  local release=$1 hash env
  hash=$(cat "$release/device/requirements.txt" "$release/device/pyproject.toml" | sha256sum | cut -c1-16)
  env=$PREFIX/envs/$hash
  if [ -f "$env/.complete" ]; then
    say "environment $hash: reused"
  else
    say "environment $hash: installing"
    rm -rf "$env"; mkdir -p "$PREFIX/envs"
    if ! (cd "$release" && export ENV_DIR="$env" && eval "${IMPS_ENV_INSTALL:-real_env_install}"); then
      rm -rf "$env"
      die "installing the device environment failed; nothing switched, $(readlink "$PREFIX/current" || echo 'no release') still runs"
    fi
    touch "$env/.complete"
  fi
  ln -sfn "$env" "$release/venv"
}

# The real install: a venv with device/requirements.txt and the `pi` extra.
# The release's own code is not installed: bin/imps puts it on PYTHONPATH.
# With IMPS_WHEELS (what `deploy` sends): offline, from those files only, with
# the pip wheel among them (a venv without pip is made much faster).
real_env_install() {
  if [ -n "${IMPS_WHEELS:-}" ]; then
    local pips=("$IMPS_WHEELS"/pip-*.whl) pip
    pip=${pips[-1]}/pip
    # (|| return: in deploy's `if ! ( ... )`, set -e does not stop a failed step)
    build_wheels "$pip" || return 1
    python3 -m venv --without-pip "$ENV_DIR" || return 1
    "$ENV_DIR/bin/python" "$pip" install -q --disable-pip-version-check --no-index \
      --find-links "$IMPS_WHEELS" -r "$IMPS_WHEELS/requirements.txt"
    return
  fi
  python3 -m venv "$ENV_DIR"
  "$ENV_DIR/bin/pip" install -q --upgrade pip
  python3 -c 'import tomllib, sys
extra = tomllib.load(open("device/pyproject.toml", "rb"))["project"]["optional-dependencies"]["pi"]
sys.stdout.write("\n".join(extra) + "\n")' >"$ENV_DIR/pi-requirements.txt"
  PYPI=1 "$ENV_DIR/bin/pip" install -q -r device/requirements.txt -r "$ENV_DIR/pi-requirements.txt"
}

# The sources in IMPS_WHEELS with no wheel beside them yet (packages without a
# wheel for this box) are compiled into wheels there, once, in a throwaway
# environment holding what builds them (build-requirements.txt); deploy takes
# the wheels back to the workstation.
build_wheels() {
  local pip=$1 tmp sources=()
  mapfile -t sources < <(python3 - "$IMPS_WHEELS" <<'EOF'
import re, sys
from pathlib import Path
folder = Path(sys.argv[1])
norm = lambda s: re.sub(r"[-_.]+", "_", s).lower()
built = {norm("-".join(w.name.split("-")[:2])) for w in folder.glob("*.whl")}
for src in sorted(folder.glob("*.tar.gz")) + sorted(folder.glob("*.zip")):
    stem = src.name[:-7] if src.name.endswith(".tar.gz") else src.name[:-4]
    name, _, version = stem.rpartition("-")
    if norm(name + "-" + version) not in built:
        print(src)
EOF
)
  [ ${#sources[@]} -gt 0 ] || return 0
  say "compiling ${sources[*]##*/} into wheels (once for this kind of box; minutes on a Pi)"
  tmp=$(mktemp -d)
  local pip_run=("$tmp/env/bin/python" "$pip" -q --disable-pip-version-check) rc=0
  python3 -m venv --without-pip "$tmp/env" || rc=1
  if [ $rc = 0 ] && grep -q . "$IMPS_WHEELS/build-requirements.txt"; then
    "${pip_run[@]}" install --no-index --find-links "$IMPS_WHEELS" -r "$IMPS_WHEELS/build-requirements.txt" || rc=1
  fi
  # PYPI=1: lgpio (no cp313 wheel) builds its C library in (needs swig, no liblgpio).
  [ $rc != 0 ] || PATH=$tmp/env/bin:$PATH PYPI=1 "${pip_run[@]}" wheel --no-index --find-links "$IMPS_WHEELS" \
    --no-build-isolation --no-deps -w "$IMPS_WHEELS" "${sources[@]}" || rc=1
  rm -rf "$tmp"
  return $rc
}

write_launcher() {
  mkdir -p "$1/bin"
  cat >"$1/bin/imps" <<'EOF'
#!/bin/sh
# The `imps` command of this release: its own code on its (shared) environment.
release=$(dirname "$(dirname "$(readlink -f "$0")")")
PYTHONPATH="$release/device${PYTHONPATH:+:$PYTHONPATH}" exec "$release/venv/bin/python" \
  -c 'import sys; from imps.cli import main; sys.argv[0] = "imps"; sys.exit(main())' "$@"
EOF
  chmod 0755 "$1/bin/imps"
}

# models/current.tflite (and .json, its sidecar) is the model box.toml names.
use_model() {
  local models=$STATE/models name=${1%.*} ext
  for ext in tflite json; do
    if [ -f "$models/$name.$ext" ]; then ln -sfn "$name.$ext" "$models/current.$ext"
    else rm -f "$models/current.$ext"; fi
  done
  say "model: $models/current.tflite -> $1"
}

switch_to() {
  ln -sfn "$1" "$PREFIX/current.tmp"
  mv -T "$PREFIX/current.tmp" "$PREFIX/current"
}

# Install the units in folder $1 (rendered) and have systemd read them.
install_units() {
  local unit
  for unit in "${UNITS[@]}"; do
    $SUDO install -m 0644 "$1/$unit" "$UNIT_DIR/$unit"
  done
  $SUDO systemctl daemon-reload
  $SUDO systemctl enable --quiet "${UNITS[@]}"
}

# What the running release was installed with, kept in folder $1 for a rollback: its units
# as installed, and models/current.* (links, or files) as they are.
save_installed() {
  local unit ext
  mkdir -p "$1/units" "$1/models"
  for unit in "${UNITS[@]}"; do
    if [ -f "$UNIT_DIR/$unit" ]; then cp "$UNIT_DIR/$unit" "$1/units/$unit"; fi
  done
  for ext in tflite json; do
    if [ -e "$STATE/models/current.$ext" ] || [ -L "$STATE/models/current.$ext" ]; then
      cp -P "$STATE/models/current.$ext" "$1/models/"
    fi
  done
}

# Put back what save_installed kept for release $2. A unit that was not installed (removed
# by hand) is rendered from that release's own templates.
restore_installed() {
  local saved=$1 previous=$2 unit ext
  for unit in "${UNITS[@]}"; do
    if [ ! -f "$saved/units/$unit" ]; then
      bash "$previous/deploy/deploy.sh" render-units "$saved/rendered"
      cp "$saved/rendered/$unit" "$saved/units/$unit"
    fi
  done
  install_units "$saved/units"
  # Only a link the deploy changed is put back: the provisioned link is root's, and the
  # admin may not remove it (the VM's rollback test: Permission denied).
  for ext in tflite json; do
    local now=$STATE/models/current.$ext was=$saved/models/current.$ext
    if [ -L "$was" ] && [ -L "$now" ] && [ "$(readlink "$was")" = "$(readlink "$now")" ]; then continue; fi
    if [ ! -e "$was" ] && [ ! -L "$was" ] && [ ! -e "$now" ] && [ ! -L "$now" ]; then continue; fi
    rm -f "$now"
    if [ -e "$was" ] || [ -L "$was" ]; then cp -P "$was" "$STATE/models/"; fi
  done
  say "units and model restored to those $(basename "$previous") ran with"
}

# Active (Type=notify: READY=1 was sent) and still active SETTLE seconds later.
wait_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT)) up_since=
  while [ $SECONDS -lt $deadline ]; do
    if [ "$($SUDO systemctl is-active imps.service || true)" = active ]; then
      up_since=${up_since:-$SECONDS}
      if [ $((SECONDS - up_since)) -ge "$SETTLE" ]; then
        echo "imps is up: $($SUDO systemctl show -p StatusText --value imps.service || true)"
        return 0
      fi
    else
      up_since=
    fi
    sleep 1
  done
  return 1
}

# systemctl restart waits for READY=1 and fails if the start fails: that is
# reported, and wait_ready (then the rollback) decides.
restart() {
  # A crash-looping release may have hit the start limit, which would refuse this start.
  $SUDO systemctl reset-failed "${UNITS[@]}" 2>/dev/null || true
  $SUDO systemctl restart "${UNITS[@]}" || echo "deploy: systemctl restart reported a failed start" >&2
}

prune() {
  local keep=("$(readlink -f "$PREFIX/current")" "$@") r e
  # shellcheck disable=SC2012  # release names are timestamps without spaces
  for r in $(ls -1d "$PREFIX"/releases/*/ 2>/dev/null | sed 's|/$||' | sort -r | tail -n +$((KEEP + 1))); do
    [[ " ${keep[*]} " == *" $r "* ]] || rm -rf "$r"
  done
  for e in "$PREFIX"/envs/*/; do
    e=${e%/}
    [ -d "$e" ] || continue
    if ! readlink "$PREFIX"/releases/*/venv | grep -qxF "$e"; then rm -rf "$e"; fi
  done
}

cmd_activate() {
  local release=${1:?activate RELEASE [MODEL]} model=${2:-} previous
  SUDO=; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  previous=$(readlink -e "$PREFIX/current" || true)
  [ "$previous" != "$release" ] || previous=
  install_env "$release"
  write_launcher "$release"
  # Byte-compile now: under ProtectSystem=strict the service cannot write __pycache__.
  "$release/venv/bin/python" -m compileall -q "$release/device/imps" >/dev/null ||
    echo "deploy: warning: some device code does not compile" >&2
  local saved rendered
  saved=$(mktemp -d); rendered=$(mktemp -d)
  save_installed "$saved"
  [ -z "$model" ] || use_model "$model"
  switch_to "$release"
  cmd_render_units "$rendered"
  install_units "$rendered"
  rm -rf "$rendered"
  say "restarting imps on $(basename "$release")"
  restart
  if wait_ready; then
    rm -rf "$saved"
    say "deployed $(basename "$release")"
    prune "$release" "$previous"
    return 0
  fi
  echo "deploy: release $(basename "$release") did not come up within ${READY_TIMEOUT}s; its last log lines:" >&2
  $SUDO journalctl -u imps.service -n 20 --no-pager >&2 || true
  if [ -z "$previous" ] || [ ! -d "$previous" ]; then
    rm -rf "$saved"
    die "no previous release to roll back to; the box is down"
  fi
  # The previous release runs again as it ran: its code, its units, its model.
  switch_to "$previous"
  restore_installed "$saved" "$previous"
  rm -rf "$saved"
  restart
  if wait_ready; then
    die "ROLLED BACK to $(basename "$previous"), which is running again; $(basename "$release") is kept for inspection"
  fi
  die "ROLLED BACK to $(basename "$previous"), but it did not come up either: check 'make status HOST=...'"
}

# Sourced (tests of the functions above): define them, run nothing.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

case ${1:-} in
  deploy) shift; cmd_deploy "$@" ;;
  fetch-logs) shift; cmd_fetch_logs "$@" ;;
  status) shift; cmd_status "$@" ;;
  security) cmd_security ;;
  render-units) shift; cmd_render_units "$@" ;;
  activate) shift; cmd_activate "$@" ;;
  *) sed -n '6,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
