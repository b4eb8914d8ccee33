#!/bin/sh
# Installed by the baremetal.gpu role k3s_gpu_worker.
# Stop k3s and everything it started on this node: the k3s units, the containerd shims (k3s runs them with
# KillMode=process, so they outlive the service), the mounts under /run/k3s and the kubelet's directories,
# the CNI network namespaces and interfaces, and the iptables rules of kube-proxy, flannel and CNI.
# Prints KILLED / UNMOUNTED / REMOVED lines for what it did; safe to run when nothing is left.
set -u
[ "$(id -u)" -eq 0 ] || { echo "k3s-killall.sh: run as root" >&2; exit 1; }

DATA_DIR=${K3S_DATA_DIR:-/var/lib/rancher/k3s}

for unit in /etc/systemd/system/k3s*.service; do
    [ -s "$unit" ] || continue
    systemctl stop "$(basename "$unit")" 2>/dev/null || true
done

# Process ids of the containerd shims k3s started, and of all their descendants.
shims() {
    ps -e -o pid= -o args= | awk -v dir="$DATA_DIR/data/" \
        '{ pid = $1; $1 = ""; if (index($0, dir) && $0 ~ /\/bin\/containerd-shim/) print pid }'
}
descendants() {
    for pid in "$@"; do
        echo "$pid"
        # shellcheck disable=SC2046  # one argument per child pid
        descendants $(ps -e -o ppid= -o pid= | awk -v parent="$pid" '$1 == parent { print $2 }')
    done
}
# shellcheck disable=SC2046  # one argument per shim pid
pids=$(descendants $(shims))
if [ -n "$pids" ]; then
    # shellcheck disable=SC2086  # one argument per pid
    kill -9 $pids 2>/dev/null || true
    echo "KILLED $(echo "$pids" | wc -w) processes"
fi

# Unmount everything below a prefix, deepest first, and remove the mount points.
unmount_below() {
    awk -v prefix="$1" 'index($2, prefix) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r path; do
        umount -f "$path" 2>/dev/null || umount -l "$path" 2>/dev/null || continue
        rm -rf "$path"
        echo "UNMOUNTED $path"
    done
}
unmount_below /run/k3s
unmount_below /var/lib/kubelet/pods
unmount_below /var/lib/kubelet/plugins
unmount_below /run/netns/cni-

if command -v ip >/dev/null 2>&1; then
    for netns in $(ip netns list 2>/dev/null | awk '/^cni-/ { print $1 }'); do
        ip netns delete "$netns" && echo "REMOVED netns $netns"
    done
    for iface in $(ip -o link show 2>/dev/null | awk -F': ' '/master cni0/ { sub(/@.*/, "", $2); print $2 }'); do
        ip link delete "$iface" && echo "REMOVED interface $iface"
    done
    for iface in cni0 flannel.1 flannel-v6.1 kube-ipvs0 flannel-wg flannel-wg-v6; do
        if ip link show "$iface" >/dev/null 2>&1; then
            ip link delete "$iface" && echo "REMOVED interface $iface"
        fi
    done
fi

for tables in iptables ip6tables; do
    if ! command -v "$tables-save" >/dev/null 2>&1 || ! command -v "$tables-restore" >/dev/null 2>&1; then
        continue
    fi
    rules=$("$tables-save" 2>/dev/null) || continue
    if printf '%s\n' "$rules" | grep -q -e KUBE- -e CNI- -i -e flannel; then
        printf '%s\n' "$rules" | grep -v -e KUBE- -e CNI- | grep -iv flannel | "$tables-restore"
        echo "REMOVED $tables rules of kube-proxy, CNI and flannel"
    fi
done
exit 0
