package main

import (
	"context"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

// simNode is one simulated node: a Node object kept Ready by status updates
// and Lease renewals, whose kubelet endpoint is served on 127.0.0.1:port.
type simNode struct {
	name    string
	port    int32
	version string
}

const (
	leaseDuration  = 40 // seconds
	leaseRenew     = 10 * time.Second
	statusInterval = 30 * time.Second
)

func (n *simNode) resources() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("8"),
		corev1.ResourceMemory:           resource.MustParse("32Gi"),
		corev1.ResourcePods:             resource.MustParse("500"),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
}

func (n *simNode) labels() map[string]string {
	return map[string]string{
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     "amd64",
		"kubernetes.io/hostname": n.name,
		"beta.kubernetes.io/os":  "linux",
		"sandbox.oz-worker/node": "true",
	}
}

func (n *simNode) status(now metav1.Time) corev1.NodeStatus {
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	return corev1.NodeStatus{
		Capacity:    n.resources(),
		Allocatable: n.resources(),
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
			cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "sandbox node simulator is posting ready status"),
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
			{Type: corev1.NodeHostName, Address: n.name},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: n.port}},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID:               "sandbox-" + n.name,
			SystemUUID:              "sandbox-" + n.name,
			BootID:                  "sandbox-" + n.name,
			KernelVersion:           "sandbox",
			OSImage:                 "oz-worker sandbox (simulated node)",
			ContainerRuntimeVersion: "sandbox://1.0.0",
			KubeletVersion:          n.version,
			KubeProxyVersion:        "",
			OperatingSystem:         "linux",
			Architecture:            "amd64",
		},
	}
}

// register creates the Node (or takes over an existing one) and marks it Ready.
func (n *simNode) register(ctx context.Context, c kubernetes.Interface) error {
	node, err := c.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: n.labels()}}
		node, err = c.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	} else if err == nil {
		if node.Labels == nil {
			node.Labels = map[string]string{}
		}
		for k, v := range n.labels() {
			node.Labels[k] = v
		}
		node, err = c.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
	}
	if err != nil {
		return err
	}
	return n.postStatus(ctx, c, node)
}

func (n *simNode) postStatus(ctx context.Context, c kubernetes.Interface, node *corev1.Node) error {
	now := metav1.Now()
	st := n.status(now)
	// keep transition times of conditions that did not change
	for i, nc := range st.Conditions {
		for _, old := range node.Status.Conditions {
			if old.Type == nc.Type && old.Status == nc.Status && !old.LastTransitionTime.IsZero() {
				st.Conditions[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	node.Status = st
	_, err := c.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

func (n *simNode) renewLease(ctx context.Context, c kubernetes.Interface, uid string) error {
	leases := c.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, n.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: n.name, Namespace: corev1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(n.name),
				LeaseDurationSeconds: ptr.To(int32(leaseDuration)),
				RenewTime:            &now,
			},
		}
		if uid != "" {
			lease.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.name, UID: types.UID(uid)}}
		}
		_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.HolderIdentity = ptr.To(n.name)
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(leaseDuration))
	lease.Spec.RenewTime = &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

// run keeps the node registered, Ready and its lease fresh until ctx ends.
func (n *simNode) run(ctx context.Context, c kubernetes.Interface, registered chan<- string) {
	first := true
	lastStatus := time.Time{}
	for {
		if err := n.heartbeat(ctx, c, time.Since(lastStatus) >= statusInterval); err != nil {
			klog.ErrorS(err, "node heartbeat failed", "node", n.name)
		} else {
			if time.Since(lastStatus) >= statusInterval {
				lastStatus = time.Now()
			}
			if first {
				first = false
				registered <- n.name
			}
		}
		wait := leaseRenew
		if first {
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (n *simNode) heartbeat(ctx context.Context, c kubernetes.Interface, withStatus bool) error {
	node, err := c.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if err := n.register(ctx, c); err != nil {
			return err
		}
		node, err = c.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
	}
	if err != nil {
		return err
	}
	ready := false
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	if withStatus || !ready || node.Status.DaemonEndpoints.KubeletEndpoint.Port != n.port {
		if err := n.postStatus(ctx, c, node); err != nil {
			return err
		}
	}
	return n.renewLease(ctx, c, string(node.UID))
}
