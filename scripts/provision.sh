#!/usr/bin/env bash
# Provisions a Debian 12 machine for the end-to-end tests (run as root).
#
# Idempotent. Installs the system packages (Docker 20.10 engine, containerd,
# runc, iptables, nftables, busybox, tools) WITHOUT starting any system Docker
# daemon, then fetches Docker 28.5.2 and Compose v2 from Debian unstable with a
# private apt configuration (the system's package lists stay untouched) and
# unpacks them under .cache/ in the repository. Test engines are later started
# by test/host/ inside network namespaces, never on the machine's own network.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$REPO/.cache"
ENGINE_28_VERSION="28.5.2"
SYSTEM_PACKAGES=(docker.io containerd runc iptables nftables ipset busybox-static curl iproute2 conntrack iperf3 socat)
export DEBIAN_FRONTEND=noninteractive

T0=$(date +%s)
step() { printf '[provision +%ss] %s\n' "$(($(date +%s) - T0))" "$*"; }

if [[ $(id -u) -ne 0 ]]; then
  echo "provision.sh must run as root" >&2
  exit 1
fi

# --- 1. system packages -----------------------------------------------------
missing=()
for p in "${SYSTEM_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  step "installing: ${missing[*]}"
  dockerd_before="$(pgrep -x dockerd || true)"
  # Forbid service starts during the install, so Debian's docker.io does not
  # launch a system dockerd that would rewrite the machine's firewall.
  own_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  cleanup_policy() { if ((own_policy)); then rm -f /usr/sbin/policy-rc.d; fi; }
  trap cleanup_policy EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  cleanup_policy
  trap - EXIT
  # Keep the system units from starting later (boot, socket activation).
  if [[ -d /run/systemd/system ]]; then
    systemctl disable docker.service docker.socket >/dev/null 2>&1 || true
    if [[ -z "$dockerd_before" ]]; then
      # Only a daemon that this install started may be stopped.
      systemctl stop docker.socket docker.service >/dev/null 2>&1 || true
    fi
  fi
  step "system packages installed"
else
  step "system packages already installed"
fi

v2010="$(dockerd --version)"
case "$v2010" in
  *" 20.10."*) ;;
  *) echo "expected Debian 12's Docker 20.10, got: $v2010" >&2; exit 1 ;;
esac

# --- 2. Docker 28.5.2 and Compose v2 from Debian unstable ---------------------
ENGINE28="$CACHE/engines/$ENGINE_28_VERSION"
COMPOSE="$CACHE/compose"
if [[ ! -x "$ENGINE28/usr/sbin/dockerd" || ! -x "$ENGINE28/usr/bin/docker" || ! -x "$COMPOSE/usr/libexec/docker/cli-plugins/docker-compose" ]]; then
  step "downloading docker.io, docker-cli and docker-compose from Debian unstable"
  APTDIR="$CACHE/apt"
  mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$APTDIR/debs"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main" \
    >"$APTDIR/sources.list"
  apt_private=(
    -o "Dir::Etc::sourcelist=$APTDIR/sources.list"
    -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::Lists=$APTDIR/lists"
    -o "Dir::Cache=$APTDIR/cache"
    -o "Acquire::Languages=none"
    -o "APT::Get::List-Cleanup=0"
    -o "APT::Sandbox::User=root"
  )
  apt-get "${apt_private[@]}" update -qq
  (cd "$APTDIR/debs" && apt-get "${apt_private[@]}" download -qq docker.io docker-cli docker-compose)
  shopt -s nullglob
  engine_debs=("$APTDIR"/debs/docker.io_"$ENGINE_28_VERSION"*.deb)
  cli_debs=("$APTDIR"/debs/docker-cli_"$ENGINE_28_VERSION"*.deb)
  compose_debs=("$APTDIR"/debs/docker-compose_2.*.deb)
  shopt -u nullglob
  if ((${#engine_debs[@]} != 1 || ${#cli_debs[@]} != 1 || ${#compose_debs[@]} != 1)); then
    echo "Debian unstable no longer has docker.io/docker-cli $ENGINE_28_VERSION and docker-compose 2.x:" >&2
    ls "$APTDIR/debs" >&2
    exit 1
  fi
  rm -rf "$ENGINE28" "$COMPOSE"
  mkdir -p "$ENGINE28" "$COMPOSE"
  dpkg -x "${engine_debs[0]}" "$ENGINE28"
  dpkg -x "${cli_debs[0]}" "$ENGINE28"
  dpkg -x "${compose_debs[0]}" "$COMPOSE"
  step "unpacked $(basename "${engine_debs[0]}") $(basename "${cli_debs[0]}") $(basename "${compose_debs[0]}")"
else
  step "Docker $ENGINE_28_VERSION and Compose already unpacked"
fi

v28="$("$ENGINE28/usr/sbin/dockerd" --version)"
case "$v28" in
  *" $ENGINE_28_VERSION"*) ;;
  *) echo "unexpected dockerd in $ENGINE28: $v28" >&2; exit 1 ;;
esac

# Docker 20.10 gets the same layout (links to the system binaries), so the test
# library treats every engine alike: <engine>/usr/sbin/dockerd, <engine>/usr/bin/docker.
ENGINE20="$CACHE/engines/20.10"
mkdir -p "$ENGINE20/usr/sbin" "$ENGINE20/usr/bin"
for b in dockerd docker-proxy docker-init; do
  if [[ -x "/usr/sbin/$b" ]]; then ln -sfn "/usr/sbin/$b" "$ENGINE20/usr/sbin/$b"; fi
done
ln -sfn /usr/bin/docker "$ENGINE20/usr/bin/docker"

# --- 3. the busybox image root filesystem --------------------------------------
# No registry here: each test engine imports this tarball (`docker import`).
IMAGES="$CACHE/images"
ROOTFS_TAR="$IMAGES/busybox-rootfs.tar"
if [[ ! -s "$ROOTFS_TAR" || /bin/busybox -nt "$ROOTFS_TAR" || "${BASH_SOURCE[0]}" -nt "$ROOTFS_TAR" || "$REPO/scripts/image-serve.sh" -nt "$ROOTFS_TAR" || "$REPO/scripts/image-ready.sh" -nt "$ROOTFS_TAR" ]]; then
  step "building the busybox image root filesystem"
  work="$(mktemp -d)"
  mkdir -p "$work/bin" "$work/www" "$work/tmp" "$work/etc"
  cp /bin/busybox "$work/bin/busybox"
  for applet in sh httpd nc sleep cat echo grep printf ip ifconfig ls ps kill hostname true env; do
    ln -s busybox "$work/bin/$applet"
  done
  # busybox's nc has no UDP: socat (with the libraries it links) answers UDP.
  cp /usr/bin/socat "$work/bin/socat"
  ldd /usr/bin/socat | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$work$(dirname "$lib")"
    cp -L "$lib" "$work$lib"
  done
  cp "$REPO/scripts/image-serve.sh" "$work/bin/serve"
  cp "$REPO/scripts/image-ready.sh" "$work/bin/ready"
  chmod 755 "$work/bin/serve" "$work/bin/ready"
  echo "dockfw test page" >"$work/www/index.html"
  echo "root:x:0:0:root:/:/bin/sh" >"$work/etc/passwd"
  echo "root:x:0:" >"$work/etc/group"
  mkdir -p "$IMAGES"
  tar -C "$work" -cf "$ROOTFS_TAR.tmp" .
  mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  rm -rf "$work"
fi

# --- 4. summary -----------------------------------------------------------------
cat >"$CACHE/provisioned.json" <<JSON
{
  "engines": {
    "28.5": "$ENGINE28",
    "20.10": "$ENGINE20"
  },
  "composePlugin": "$COMPOSE/usr/libexec/docker/cli-plugins/docker-compose",
  "busyboxRootfs": "$ROOTFS_TAR",
  "dockerd28": "$v28",
  "dockerd2010": "$v2010"
}
JSON
step "done: $v28; $v2010"
