# shellcheck shell=bash
# Sourced by scripts/sandbox: the images of the sandbox's real node, built on this
# machine as OCI archives (no registry is reachable) and cached by their inputs.
# See docs/sandbox.md and ../shared/real-node-contract.md for what each image does.
#
#   pause.tar    sandbox.local/pause:1          containerd's sandbox_image
#   busybox.tar  docker.io/library/busybox:1.36 Debian's busybox-static
#   agent.tar    sandbox.local/agent:1          stand-in agent sidecar (/entrypoint.sh)
#   dev.tar      sandbox.local/dev:1            Debian bookworm minbase (debootstrap)

IMAGES_SUITE=bookworm
IMAGES_MIRROR="${SANDBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

# The stand-in agent's entrypoint. It runs from /agent in the task image (the root copy
# init container put the agent image's files there), so it uses /agent/bin/busybox for
# anything the task image may lack.
AGENT_ENTRYPOINT='#!/bin/sh
# sandbox.local/agent:1 entrypoint: see docs/sandbox.md ("The real node").
bb=/agent/bin/busybox
[ -x "$bb" ] || bb=/bin/busybox
# argv as a JSON array; awk gets each argument intact through ARGV
"$bb" awk '"'"'function q(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); gsub(/\n/, "\\n", s); gsub(/\r/, "\\r", s); gsub(/\t/, "\\t", s); return "\"" s "\"" }
BEGIN { out = ""; for (i = 1; i < ARGC; i++) out = out (i > 1 ? "," : "") q(ARGV[i]); print "sandbox-agent: argv=[" out "]" }'"'"' "$@"
names=$("$bb" awk '"'"'BEGIN { for (k in ENVIRON) print k }'"'"' | "$bb" sort | "$bb" paste -s -d, -)
echo "sandbox-agent: env=$names"
"$bb" mkdir -p /workspace
echo ran > /workspace/.sandbox-agent-ran
mode="${SANDBOX_AGENT:-ok}"
echo "sandbox-agent: mode=$mode"
case "$mode" in
  ok) exit 0 ;;
  exit-*) exit "${mode#exit-}" ;;
  sleep-*)
    trap "exit 143" TERM
    "$bb" sleep "${mode#sleep-}" &
    wait $!
    exit 0 ;;
  oom)
    # tail keeps the whole "line" of /dev/zero in memory until the kernel kills it
    exec "$bb" tail /dev/zero ;;
  ignore-term)
    trap "" TERM
    while :; do "$bb" sleep 1; done ;;
  *) echo "sandbox-agent: unknown SANDBOX_AGENT=$mode" >&2; exit 64 ;;
esac
'

# oci_archive ROOTFS REF OUT ENTRYPOINT_JSON CMD_JSON: a one-layer OCI image archive of
# ROOTFS named REF (ctr import reads the io.containerd.image.name annotation).
oci_archive() {
  local rootfs="$1" ref="$2" out="$3" entrypoint="$4" cmd="$5"
  local dir layer_digest layer_size config config_digest manifest manifest_digest
  dir="$(mktemp -d "$out.d.XXXXXX")"
  mkdir -p "$dir/blobs/sha256"
  tar --sort=name --mtime=@0 --numeric-owner --owner=0 --group=0 --xattrs-exclude='*' -C "$rootfs" -cf "$dir/layer.tar" .
  layer_digest="$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)"
  layer_size="$(stat -c %s "$dir/layer.tar")"
  mv "$dir/layer.tar" "$dir/blobs/sha256/$layer_digest"
  config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"],\"Entrypoint\":$entrypoint,\"Cmd\":$cmd,\"WorkingDir\":\"/\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$layer_digest\"]}}"
  config_digest="$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)"
  printf '%s' "$config" >"$dir/blobs/sha256/$config_digest"
  manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$config_digest\",\"size\":${#config}},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$layer_digest\",\"size\":$layer_size}]}"
  manifest_digest="$(printf '%s' "$manifest" | sha256sum | cut -d' ' -f1)"
  printf '%s' "$manifest" >"$dir/blobs/sha256/$manifest_digest"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest_digest" "${#manifest}" "$ref" "${ref##*:}" >"$dir/index.json"
  tar --sort=name --mtime=@0 --numeric-owner --owner=0 --group=0 -C "$dir" -cf "$out.tmp" oci-layout index.json blobs
  mv "$out.tmp" "$out"
  rm -rf "$dir"
}

# busybox_rootfs DIR: Debian's static busybox with a link per applet, and the files a
# shell expects.
busybox_rootfs() {
  local dir="$1" applet
  mkdir -p "$dir/bin" "$dir/etc" "$dir/tmp" "$dir/root" "$dir/workspace"
  chmod 1777 "$dir/tmp"
  cp /bin/busybox "$dir/bin/busybox"
  for applet in $("$dir/bin/busybox" --list); do
    [[ -e "$dir/bin/$applet" ]] || ln -s busybox "$dir/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
}

# build_small_images DIR: busybox, pause and agent archives into DIR.
build_small_images() {
  local out="$1" work
  work="$(mktemp -d "$out.work.XXXXXX")"
  mkdir -p "$out"
  [[ -x /bin/busybox ]] && /bin/busybox --list | grep -x awk >/dev/null || die "/bin/busybox (Debian's busybox-static) is missing"

  busybox_rootfs "$work/busybox"
  oci_archive "$work/busybox" docker.io/library/busybox:1.36 "$out/busybox.tar" null '["sh"]'

  mkdir -p "$work/pause"
  cp /bin/busybox "$work/pause/busybox"
  # PID 1 without handlers ignores TERM; containerd stops sandboxes with KILL anyway
  oci_archive "$work/pause" sandbox.local/pause:1 "$out/pause.tar" '["/busybox","sleep","2147483647"]' null

  busybox_rootfs "$work/agent"
  # The worker's root copy init container runs `tar --exclude=... | tar --no-same-owner ...`
  # with /bin/sh: GNU tar, and dash (busybox's sh would run its own applet tar, which lacks
  # those options), with the shared libraries they need.
  local bin lib
  for bin in tar dash; do
    rm -f "$work/agent/bin/$bin"
    cp -L "/bin/$bin" "$work/agent/bin/$bin"
    for lib in $(ldd "/bin/$bin" | awk '$1 ~ /^\// { print $1 } $3 ~ /^\// { print $3 }'); do
      mkdir -p "$work/agent$(dirname "$lib")"
      cp -L "$lib" "$work/agent$lib"
    done
  done
  ln -sf dash "$work/agent/bin/sh"
  printf '%s' "$AGENT_ENTRYPOINT" >"$work/agent/entrypoint.sh"
  chmod 755 "$work/agent/entrypoint.sh"
  oci_archive "$work/agent" sandbox.local/agent:1 "$out/agent.tar" '["/entrypoint.sh"]' null
  rm -rf "$work"
}

# build_dev_image DIR: dev.tar, a Debian minbase root file system, into DIR.
build_dev_image() {
  local out="$1" work
  work="$(mktemp -d "$out.work.XXXXXX")"
  mkdir -p "$out"
  say "  debootstrap --variant=minbase $IMAGES_SUITE for sandbox.local/dev:1 (from $IMAGES_MIRROR)"
  debootstrap --variant=minbase "$IMAGES_SUITE" "$work/dev" "$IMAGES_MIRROR" >"$out/debootstrap.log" 2>&1 ||
    { tail -n 20 "$out/debootstrap.log" >&2; die "debootstrap failed; log: $out/debootstrap.log"; }
  rm -rf "$work/dev/var/cache/apt/archives/"*.deb "$work/dev/var/lib/apt/lists/"* "$work/dev/var/log/"*
  mkdir -p "$work/dev/workspace"
  oci_archive "$work/dev" sandbox.local/dev:1 "$out/dev.tar" null '["/bin/sh"]'
  rm -rf "$work"
}

# cached_build NAME KEY_INPUT BUILDER FILE: prints the cache folder $CACHE_ROOT/NAME-<key>
# holding FILE, running BUILDER into it first when FILE is missing.
cached_build() {
  local name="$1" key dir
  key="$(printf '%s' "$2" | sha256sum | cut -c1-16)"
  dir="$CACHE_ROOT/$name-$key"
  if [[ ! -f "$dir/$4" ]]; then
    exec 7>"$CACHE_ROOT/images.lock"
    flock 7
    if [[ ! -f "$dir/$4" ]]; then
      local start=$SECONDS tmp="$dir.tmp.$$"
      say "building $name into $dir (first run only)"
      rm -rf "$tmp"
      "$3" "$tmp"
      rm -rf "$dir"
      mv "$tmp" "$dir"
      say "  $name built in $((SECONDS - start)) s"
    fi
    flock -u 7
  fi
  echo "$dir"
}

# ensure_images: sets IMAGE_ARCHIVES to every archive, building what is missing. Keys:
# the builders' own source (and Debian's busybox-static version), so editing the agent
# entrypoint does not re-run debootstrap.
ensure_images() {
  local small dev bb
  mkdir -p "$CACHE_ROOT"
  bb="$(dpkg-query -W -f '${Package} ${Version} ' busybox-static tar dash libc6 2>/dev/null || echo none)"
  small="$(cached_build images "small-v1 $bb $AGENT_ENTRYPOINT $(declare -f oci_archive busybox_rootfs build_small_images)" build_small_images agent.tar)"
  dev="$(cached_build image-dev "dev-v1 $IMAGES_SUITE $(declare -f oci_archive build_dev_image)" build_dev_image dev.tar)"
  IMAGE_ARCHIVES=("$small/pause.tar" "$small/busybox.tar" "$small/agent.tar" "$dev/dev.tar")
}
