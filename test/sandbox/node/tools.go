//go:build tools

// Package tools pins what scripts/sandbox builds from this module for the real
// node: kubelet and kube-proxy at the control plane's Kubernetes version (see
// docs/sandbox.md). The control plane's commands stay imported so that module
// resolution picks exactly the versions the control plane is built with, and
// shared packages come from the same Go build cache entries.
package tools

import (
	_ "go.etcd.io/etcd/server/v3/etcdmain"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
