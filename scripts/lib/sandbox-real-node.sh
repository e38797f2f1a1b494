# shellcheck shell=bash
# Sourced by scripts/sandbox: the sandbox's real node (../shared/real-node-contract.md,
# docs/sandbox.md "The real node"): containerd + runc, kubelet, kube-proxy, a CNI bridge
# and a TCP relay that lets pods reach the API server, all started and removed here.
#
# Everything it makes is named after the sandbox (SANDBOX_PORT_BASE) or lives in its
# state folder, so `down` of one sandbox never touches another's. Only one real node can
# run on a machine at a time: kubelet and kube-proxy own the global KUBE-* iptables
# chains. SANDBOX_REAL_NODE=0 leaves it out (simulated nodes only).

REAL_NODE="${SANDBOX_REAL_NODE:-1}"
RN="$STATE/real-node"
RN_NAME=sandbox-real-1
RN_KEY=oz-worker.dev/sandbox-node
RN_BRIDGE="ozsb$PORT_BASE"
RN_NETWORK="oz-sandbox-$PORT_BASE"
RN_CHAIN="OZSB-$PORT_BASE"
RN_CGROUP="oz-sandbox-$PORT_BASE"
RN_OCTET=$(((PORT_BASE / 1000) % 256))
RN_SUBNET="10.200.$RN_OCTET.0/24"
RN_GW="10.200.$RN_OCTET.1"
RN_SERVICE_CIDR=10.96.0.0/16
RN_KUBELET_PORT=$((PORT_BASE + 240))
RN_KUBELET_HEALTHZ_PORT=$((PORT_BASE + 241))
RN_PROXY_HEALTHZ_PORT=$((PORT_BASE + 242))
RN_PROXY_METRICS_PORT=$((PORT_BASE + 243))
RN_SOCK="$RN/containerd/containerd.sock"
# Which sandbox (its state folder) runs this machine's real node.
RN_OWNER_FILE=/run/oz-worker-sandbox-real-node.owner
RUNC_VERSION=v1.4.4
CRICTL_VERSION=v1.34.0
RN_PARTS=(containerd kubelet kube-proxy api-relay)
if [[ "$REAL_NODE" == 1 ]]; then
  PARTS+=("${RN_PARTS[@]}")
  CMD_NAME+=([containerd]=containerd [kubelet]=kubelet [kube-proxy]=kube-proxy [api-relay]=socat)
fi

is_real_part() { [[ " ${RN_PARTS[*]} " == *" $1 "* ]]; }

# real_node_other_owner: prints the state folder of another sandbox whose real node runs.
real_node_other_owner() {
  local owner pid
  owner="$(cat "$RN_OWNER_FILE" 2>/dev/null || true)"
  [[ -n "$owner" && "$owner" != "$STATE" ]] || return 0
  for pid in $(cat "$owner/run/kubelet.pid" "$owner/run/containerd.pid" 2>/dev/null); do
    if kill -0 "$pid" 2>/dev/null; then
      echo "$owner"
      return 0
    fi
  done
}

# Refuses a second real node on this machine, before anything starts.
real_node_check_owner() {
  [[ "$REAL_NODE" == 1 ]] || return 0
  local other
  other="$(real_node_other_owner)"
  [[ -z "$other" ]] || die "the sandbox in $other runs the real node on this machine, and only one can (kubelet and kube-proxy own the machine's KUBE-* iptables chains): stop it, or run this sandbox with SANDBOX_REAL_NODE=0"
}

# ---------------------------------------------------------------- packages and builds

# Debian packages the real node needs; installed when a command or file is missing.
ensure_packages() {
  local -a missing=()
  local need
  for need in containerd:/usr/bin/containerd containerd:/usr/bin/ctr \
    containernetworking-plugins:/usr/lib/cni/bridge containernetworking-plugins:/usr/lib/cni/host-local \
    containernetworking-plugins:/usr/lib/cni/loopback busybox-static:/bin/busybox \
    iptables:/usr/sbin/iptables iptables:/usr/sbin/ip6tables socat:/usr/bin/socat \
    debootstrap:/usr/sbin/debootstrap pkg-config:/usr/bin/pkg-config \
    libseccomp-dev:/usr/include/seccomp.h iproute2:/usr/sbin/ip; do
    [[ -e "${need#*:}" ]] || missing+=("${need%%:*}")
  done
  ((${#missing[@]} == 0)) && return 0
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  say "installing Debian packages for the real node: ${missing[*]}"
  # services stay stopped (the sandbox runs its own containerd); dpkg waits for others
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
}

compute_node_keys() {
  local ident
  ident="$(go_ident)"
  NODE_KEY="$( (echo "node-v1 $ident"; cat "$MOD/node/go.mod" "$MOD/node/go.sum") | sha256sum | cut -c1-16)"
  NODE_BIN="$CACHE_ROOT/node-$NODE_KEY/bin"
  TOOLS_KEY="$( (echo "node-tools-v1 $ident runc $RUNC_VERSION crictl $CRICTL_VERSION"; pkg-config --modversion libseccomp 2>/dev/null) | sha256sum | cut -c1-16)"
  TOOLS_BIN="$CACHE_ROOT/node-tools-$TOOLS_KEY/bin"
}

# kubelet and kube-proxy from test/sandbox/node (a module of their own, so the control
# plane's cache key does not change), runc (cgo, seccomp) and crictl from the Go module
# proxy at fixed versions. Holds the control plane's build lock (fd 8) while building.
ensure_real_node_built() {
  ensure_packages
  compute_node_keys
  if [[ -x "$NODE_BIN/kubelet" && -x "$TOOLS_BIN/runc" && -x "$TOOLS_BIN/crictl" ]]; then return 0; fi
  exec 8>"$CACHE_ROOT/build.lock"
  if ! flock -n 8; then
    say "another build of the sandbox is running; waiting for it"
    flock 8
  fi
  if [[ ! -x "$NODE_BIN/kubelet" ]]; then
    say "building kubelet and kube-proxy $(k8s_version) for the real node into $NODE_BIN (first build only)"
    local tmp="$CACHE_ROOT/node-$NODE_KEY/bin.tmp.$$"
    rm -rf "$tmp"
    BUILD_MOD="$MOD/node" go_build_with_progress "$tmp" "$CACHE_ROOT/node-$NODE_KEY/build.log" \
      k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
    rm -rf "$NODE_BIN"
    mv "$tmp" "$NODE_BIN"
  fi
  if [[ ! -x "$TOOLS_BIN/runc" || ! -x "$TOOLS_BIN/crictl" ]]; then
    # Debian's runc 1.1.5 fails on this kernel ("can't get final child's PID from pipe")
    say "building runc $RUNC_VERSION (cgo, seccomp) and crictl $CRICTL_VERSION into $TOOLS_BIN (first build only)"
    local tmp="$CACHE_ROOT/node-tools-$TOOLS_KEY/bin.tmp.$$" start=$SECONDS
    rm -rf "$tmp"
    mkdir -p "$tmp"
    (cd "$tmp" && GOBIN="$tmp" CGO_ENABLED=1 GOFLAGS= go install -trimpath -tags seccomp \
      -ldflags "-s -w -X main.version=${RUNC_VERSION#v}" "github.com/opencontainers/runc@$RUNC_VERSION") \
      >"$CACHE_ROOT/node-tools-$TOOLS_KEY/build.log" 2>&1 ||
      { tail -n 20 "$CACHE_ROOT/node-tools-$TOOLS_KEY/build.log" >&2; die "building runc failed"; }
    (cd "$tmp" && GOBIN="$tmp" CGO_ENABLED=0 GOFLAGS= go install -trimpath \
      -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION") \
      >>"$CACHE_ROOT/node-tools-$TOOLS_KEY/build.log" 2>&1 ||
      { tail -n 20 "$CACHE_ROOT/node-tools-$TOOLS_KEY/build.log" >&2; die "building crictl failed"; }
    rm -rf "$TOOLS_BIN"
    mv "$tmp" "$TOOLS_BIN"
    say "  built in $((SECONDS - start)) s"
  fi
  flock -u 8
}

# ---------------------------------------------------------------- configuration

write_real_node_config() {
  mkdir -p "$RN/containerd/certs.d" "$RN/cni/net.d" "$RN/cni/networks" "$RN/kubelet" "$RN/pod-logs" "$RN/runc"
  # Pulls of images that were not built here must fail without any packet leaving the
  # machine: every registry the tests name points at a closed loopback port.
  local host
  for host in docker.io sandbox.local registry.k8s.io; do
    mkdir -p "$RN/containerd/certs.d/$host"
    printf 'server = "http://127.0.0.1:9"\n[host."http://127.0.0.1:9"]\n  capabilities = ["pull", "resolve"]\n' \
      >"$RN/containerd/certs.d/$host/hosts.toml"
  done
  cat >"$RN/containerd/config.toml" <<EOF
version = 2
root = "$RN/containerd/root"
state = "$RN/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$RN_SOCK"
[ttrpc]
  address = "$RN/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$RN/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "sandbox.local/pause:1"
  # no CAP_SYS_RESOURCE here: root cannot lower oom_score_adj
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$TOOLS_BIN/runc"
        Root = "$RN/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RN/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$RN/containerd/certs.d"
EOF
  # No default route in pods: they reach the bridge subnet, the gateway (this host's
  # sandbox address) and Services (10.96.0.0/16, DNATed by kube-proxy to the gateway).
  # isGateway is off so the plugin never turns on IP forwarding; the bridge and its
  # address are made by real_node_network before kubelet starts.
  cat >"$RN/cni/net.d/10-$RN_NETWORK.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$RN_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$RN_BRIDGE",
      "isGateway": false,
      "isDefaultGateway": false,
      "ipMasq": false,
      "hairpinMode": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "$RN/cni/networks",
        "ranges": [[{ "subnet": "$RN_SUBNET", "gateway": "$RN_GW" }]],
        "routes": [{ "dst": "$RN_SERVICE_CIDR", "gw": "$RN_GW" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true }, "snat": false }
  ]
}
EOF
  cat >"$RN/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $RN_GW
port: $RN_KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $RN_KUBELET_HEALTHZ_PORT
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: false }
  x509: { clientCAFile: $PKI/ca.crt }
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$RN_SOCK
cgroupDriver: cgroupfs
cgroupRoot: /$RN_CGROUP
failSwapOn: false
podLogsDir: $RN/pod-logs
makeIPTablesUtilChains: false
registerWithTaints:
- { key: $RN_KEY, value: real, effect: NoSchedule }
maxPods: 30
serializeImagePulls: false
# images are imported, never pulled: garbage collection must not remove them
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: { memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%" }
nodeStatusUpdateFrequency: 10s
clusterDomain: cluster.local
resolvConf: ""
featureGates:
  ImageVolume: true
EOF
  cat >"$RN/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: { kubeconfig: $STATE/kubeconfig }
hostnameOverride: $RN_NAME
bindAddress: $RN_GW
healthzBindAddress: 127.0.0.1:$RN_PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$RN_PROXY_METRICS_PORT
mode: iptables
clusterCIDR: $RN_SUBNET
detectLocalMode: ClusterCIDR
nodePortAddresses: ["$RN_GW/32"]
iptables: { localhostNodePorts: false, masqueradeAll: false }
# 0: leave the machine's conntrack sysctls alone
conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s }
EOF
}

# ---------------------------------------------------------------- network

ipt_chain_exists() { "$1" -w -t filter -S "$RN_CHAIN" >/dev/null 2>&1; }

# The bridge with the gateway address (kubelet's node IP), and the confinement rules:
# traffic from the bridge may reach the gateway address and other pods only.
real_node_network() {
  if ! ip link show "$RN_BRIDGE" >/dev/null 2>&1; then
    ip link add "$RN_BRIDGE" type bridge
  fi
  sysctl -qw "net.ipv6.conf.$RN_BRIDGE.disable_ipv6=1" >/dev/null 2>&1 || true
  ip addr replace "$RN_GW/24" dev "$RN_BRIDGE"
  ip link set "$RN_BRIDGE" up
  local ipt
  for ipt in iptables ip6tables; do
    ipt_chain_exists "$ipt" && continue
    "$ipt" -w -N "$RN_CHAIN"
    if [[ "$ipt" == iptables ]]; then
      "$ipt" -w -A "$RN_CHAIN" -i "$RN_BRIDGE" -s "$RN_SUBNET" -d "$RN_SUBNET" -j RETURN
      "$ipt" -w -A "$RN_CHAIN" -i "$RN_BRIDGE" -d "$RN_GW/32" -j RETURN
    fi
    # everything else from the bridge (forwarded, or to any other local address) drops
    "$ipt" -w -A "$RN_CHAIN" -i "$RN_BRIDGE" -j DROP
  done
  real_node_jumps
}

# Our chain first in INPUT and FORWARD (again after kube-proxy prepends its own).
real_node_jumps() {
  local ipt hook
  for ipt in iptables ip6tables; do
    for hook in INPUT FORWARD; do
      while "$ipt" -w -D "$hook" -i "$RN_BRIDGE" -j "$RN_CHAIN" 2>/dev/null; do :; done
      "$ipt" -w -I "$hook" 1 -i "$RN_BRIDGE" -j "$RN_CHAIN"
    done
  done
}

# remove_chains IPT PATTERN: deletes every rule jumping to a chain matching PATTERN (an
# ERE), then flushes and deletes those chains, in every table.
remove_chains() {
  local ipt="$1" pattern="$2" table line chain
  for table in filter nat mangle raw; do
    "$ipt" -w -t "$table" -S >/dev/null 2>&1 || continue
    while IFS= read -r line; do
      # shellcheck disable=SC2086 # the rule's own words
      eval "$ipt -w -t $table ${line/#-A /-D }" 2>/dev/null || true
    done < <("$ipt" -w -t "$table" -S | grep -E "^-A .* -j ($pattern)( |\$)" || true)
    for chain in $("$ipt" -w -t "$table" -S | awk '$1 == "-N" { print $2 }' | grep -E "^($pattern)\$" || true); do
      "$ipt" -w -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $("$ipt" -w -t "$table" -S | awk '$1 == "-N" { print $2 }' | grep -E "^($pattern)\$" || true); do
      "$ipt" -w -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
}

# ---------------------------------------------------------------- parts

real_node_args() {
  case "$1" in
    containerd)
      CMD=(/usr/bin/containerd --config "$RN/containerd/config.toml" --log-level warn)
      ;;
    kubelet)
      CMD=("$NODE_BIN/kubelet" --config "$RN/kubelet.yaml" --kubeconfig "$STATE/kubeconfig" \
        --root-dir "$RN/kubelet" --cert-dir "$RN/kubelet-pki" --hostname-override "$RN_NAME" \
        --node-ip "$RN_GW" --node-labels "$RN_KEY=real,kubernetes.io/os=linux" --v=1)
      ;;
    kube-proxy)
      CMD=("$NODE_BIN/kube-proxy" --config "$RN/kube-proxy.yaml" --v=1)
      ;;
    api-relay)
      # pods reach the API server at the gateway (the kubernetes Service's endpoint);
      # kube-apiserver itself listens on 127.0.0.1 only
      CMD=(/usr/bin/socat "TCP-LISTEN:$APISERVER_PORT,bind=$RN_GW,reuseaddr,fork" "TCP:127.0.0.1:$APISERVER_PORT")
      ;;
  esac
}

real_node_health() {
  case "$1" in
    containerd) /usr/bin/ctr --address "$RN_SOCK" version >/dev/null 2>&1 ;;
    kubelet) [[ "$(curl -s --max-time 2 "http://127.0.0.1:$RN_KUBELET_HEALTHZ_PORT/healthz" 2>/dev/null)" == ok ]] ;;
    kube-proxy) curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$RN_PROXY_HEALTHZ_PORT/livez" 2>/dev/null ;;
    api-relay) (exec 3<>"/dev/tcp/$RN_GW/$APISERVER_PORT") 2>/dev/null ;;
  esac
}

real_node_port() {
  case "$1" in
    containerd) echo "unix" ;;
    kubelet) echo "$RN_GW:$RN_KUBELET_PORT" ;;
    kube-proxy) echo "$RN_PROXY_HEALTHZ_PORT" ;;
    api-relay) echo "$RN_GW:$APISERVER_PORT" ;;
  esac
}

# The kubernetes Service's endpoint: the gateway (relay to the API server). The apiserver
# runs with --endpoint-reconciler-type none, so nothing else writes it.
real_node_endpoints() {
  kc apply -f - >/dev/null <<EOF
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kubernetes-sandbox
  namespace: default
  labels:
    kubernetes.io/service-name: kubernetes
    endpointslice.kubernetes.io/managed-by: sandbox.oz-worker
addressType: IPv4
endpoints:
- addresses: ["$RN_GW"]
  conditions: { ready: true }
ports:
- { name: https, port: $APISERVER_PORT, protocol: TCP }
EOF
}

real_node_ready() {
  [[ "$(kc get node "$RN_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

# Imports the image archives into containerd when they differ from the ones it has (a
# fresh containerd, or an image whose build inputs changed).
real_node_sync_images() {
  local archive
  ensure_images
  [[ "$(cat "$RN/images.list" 2>/dev/null)" == "${IMAGE_ARCHIVES[*]}" ]] && return 0
  for archive in "${IMAGE_ARCHIVES[@]}"; do
    /usr/bin/ctr --address "$RN_SOCK" -n k8s.io images import "$archive" >>"$LOGS/images.log" 2>&1 ||
      { tail -n 5 "$LOGS/images.log" >&2; die "could not import $archive into the real node's containerd"; }
  done
  echo "${IMAGE_ARCHIVES[*]}" >"$RN/images.list"
}

# cgroup v1 (and the v2 unified tree): one parent per sandbox for kubelet's cgroupRoot.
real_node_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/; do
    [[ -d "$d" && -w "$d" ]] && mkdir -p "$d$RN_CGROUP" 2>/dev/null || true
  done
}

# real_node_up: starts (or repairs) the real node; the control plane is running.
real_node_up() {
  [[ "$REAL_NODE" == 1 ]] || return 0
  local start=$SECONDS p
  real_node_check_owner
  mkdir -p "$RN"
  echo "$STATE" >"$RN_OWNER_FILE"
  [[ -f "$RN/kubelet.yaml" ]] || write_real_node_config
  real_node_network
  real_node_cgroups
  if ! healthy containerd; then
    stop_part containerd
    rm -f "$RN/images.list"
    start_part containerd
    wait_healthy containerd 30
  fi
  real_node_sync_images
  for p in kubelet kube-proxy api-relay; do
    healthy "$p" && continue
    stop_part "$p"
    start_part "$p"
  done
  wait_healthy api-relay 10
  real_node_endpoints
  wait_healthy kubelet 60
  wait_healthy kube-proxy 60
  real_node_jumps
  local deadline=$((SECONDS + 90))
  until real_node_ready; do
    alive kubelet || fail_part kubelet "exited"
    ((SECONDS < deadline)) || fail_part kubelet "did not bring node $RN_NAME Ready in 90 s"
    sleep 0.3
  done
  say "real node $RN_NAME ready in $((SECONDS - start)) s (pods on $RN_SUBNET, host address $RN_GW)"
}

# real_node_cleanup: removes everything a real node of this sandbox made, whether or not
# its processes still run. Safe to call when there is nothing to clean.
real_node_cleanup() {
  local pid i m p ipt owner
  owner="$(cat "$RN_OWNER_FILE" 2>/dev/null || true)"
  # nothing of ours: leave the machine (and another sandbox's real node) alone
  if [[ ! -d "$RN" && "$owner" != "$STATE" ]] && ! ip link show "$RN_BRIDGE" >/dev/null 2>&1; then return 0; fi
  compute_node_keys 2>/dev/null || true
  # kubelet first, so it does not restart what is removed next
  alive kubelet && stop_part kubelet
  # pods: CRI stops and removes each sandbox (CNI DEL, netns, shm and rootfs mounts)
  if alive containerd && [[ -x "$TOOLS_BIN/crictl" ]]; then
    timeout 60 "$TOOLS_BIN/crictl" --runtime-endpoint "unix://$RN_SOCK" --timeout 30s rmp -fa >/dev/null 2>&1 || true
  fi
  stop_all containerd kube-proxy api-relay
  # the relay forks one socat per connection; those outlive the listener
  for pid in $(pgrep -f -- "TCP-LISTEN:$APISERVER_PORT,bind=$RN_GW," || true); do kill -KILL "$pid" 2>/dev/null || true; done
  # shims and container processes that outlived containerd (a crash)
  for pid in $(pgrep -f -- "-address $RN_SOCK" || true); do kill -KILL "$pid" 2>/dev/null || true; done
  if [[ -d "$RN/runc" && -x "${TOOLS_BIN:-}/runc" ]]; then
    local root id
    for root in "$RN"/runc/*/; do
      [[ -d "$root" ]] || continue
      for id in $("$TOOLS_BIN/runc" --root "$root" list -q 2>/dev/null); do
        "$TOOLS_BIN/runc" --root "$root" delete -f "$id" >/dev/null 2>&1 || true
      done
    done
  fi
  # mounts under the state folder (kubelet's root bind mount, volumes, rootfs, shm,
  # netns), deepest first
  for ((i = 0; i < 5; i++)); do
    mapfile -t m < <(awk -v s="$RN/" 'index($5, s) == 1 || $5 == substr(s, 1, length(s) - 1) { print $5 }' /proc/self/mountinfo | sort -r)
    ((${#m[@]} == 0)) && break
    for p in "${m[@]}"; do umount "$p" 2>/dev/null || umount -l "$p" 2>/dev/null || true; done
  done
  # kube-proxy's rules (its own cleanup, then any KUBE-* chain left by it or kubelet) and ours
  if [[ -x "${NODE_BIN:-}/kube-proxy" ]] && iptables -w -t nat -S KUBE-SERVICES >/dev/null 2>&1; then
    "$NODE_BIN/kube-proxy" --cleanup --v=0 >/dev/null 2>&1 || true
  fi
  # the KUBE-* chains are the machine's real node's: removed unless another sandbox runs it
  local chains="$RN_CHAIN"
  [[ -z "$(real_node_other_owner)" ]] && chains="KUBE-[A-Z0-9-]+|$RN_CHAIN"
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    remove_chains "$ipt" "$chains"
  done
  # veths left on the bridge, then the bridge
  for m in $(ip -o link show master "$RN_BRIDGE" 2>/dev/null | awk -F': ' '{ print $2 }' | cut -d@ -f1); do
    ip link del "$m" 2>/dev/null || true
  done
  ip link del "$RN_BRIDGE" 2>/dev/null || true
  rm -f /var/lib/cni/results/"$RN_NETWORK"-* 2>/dev/null || true
  # the folders containerd and libcni create on first use, when nothing else uses them
  rmdir /var/lib/cni/results /var/lib/cni /run/containerd/s /run/containerd 2>/dev/null || true
  [[ "$(cat "$RN_OWNER_FILE" 2>/dev/null)" == "$STATE" ]] && rm -f "$RN_OWNER_FILE"
  # kubelet's cgroups under this sandbox's parent, deepest first
  local d
  for d in /sys/fs/cgroup/*/"$RN_CGROUP"; do
    [[ -d "$d" ]] || continue
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  return 0
}

# real_node_leftovers: prints what a real node of this sandbox left behind; exit 1 then.
# Run after down (its last step) or by hand: scripts/sandbox leftovers.
real_node_leftovers() {
  local out="" ipt x
  ip link show "$RN_BRIDGE" >/dev/null 2>&1 && out+="interface $RN_BRIDGE"$'\n'
  x="$(ip -o link show type veth 2>/dev/null | grep -F "master $RN_BRIDGE" || true)"
  [[ -n "$x" ]] && out+="veths: $x"$'\n'
  for ipt in iptables ip6tables; do
    command -v "$ipt-save" >/dev/null || continue
    if [[ -n "$(real_node_other_owner)" ]]; then
      x="$("$ipt-save" 2>/dev/null | grep -E "$RN_CHAIN" || true)"
    else
      x="$("$ipt-save" 2>/dev/null | grep -E "KUBE-|$RN_CHAIN" || true)"
    fi
    [[ -n "$x" ]] && out+="$ipt rules:"$'\n'"$x"$'\n'
  done
  x="$(awk -v s="$RN" 'index($5, s) == 1 { print $5 }' /proc/self/mountinfo)"
  [[ -n "$x" ]] && out+="mounts:"$'\n'"$x"$'\n'
  x="$(pgrep -a -f -- "$RN/|$RN_SOCK|bind=$RN_GW" || true)"
  [[ -n "$x" ]] && out+="processes:"$'\n'"$x"$'\n'
  x="$(ls -d /var/lib/cni/results/"$RN_NETWORK"-* /sys/fs/cgroup/*/"$RN_CGROUP" 2>/dev/null || true)"
  [[ "$(cat "$RN_OWNER_FILE" 2>/dev/null)" == "$STATE" ]] && x+="${x:+$'\n'}$RN_OWNER_FILE"
  [[ -n "$x" ]] && out+="files:"$'\n'"$x"$'\n'
  if [[ -n "$out" ]]; then
    printf '%s' "$out"
    return 1
  fi
}
